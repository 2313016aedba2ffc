"""Emulated fleets sized by invocation count, with a fixed clock so runs compare.

The emulator's fleet averages about 41 invocations per instance over SSM's
30-day retention (nightly patching on ~92% of instances, inventory on ~30%,
weekly agent updates, a few scripts), about 2.4 plugins each.
"""

from __future__ import annotations

from datetime import UTC, datetime

from emulator import FaultSpec, FleetSpec

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
"""The wall clock's hour: the pipeline cuts backfill slices from its own clock."""
ACCOUNT = "123456789012"
INVOCATIONS_PER_INSTANCE = 41.3
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def fleet(
    invocations: int,
    regions: tuple[str, ...] = REGIONS[:1],
    *,
    page_delay: float = 0.0,
    faults: FaultSpec | None = None,
) -> FleetSpec:
    """About `invocations` per region, all within retention."""
    instances = max(1, round(invocations / INVOCATIONS_PER_INSTANCE))
    return FleetSpec(
        now=NOW,
        regions=regions,
        instances_per_region=instances,
        account_id=ACCOUNT,
        days=30,
        page_delay=page_delay,
        faults=faults,
    )
