"""The report views, on small hand-made lakes written by the real writer.

Every expectation is written out by hand; nothing is recomputed by the SQL
under test. Datasets are API-shaped records so the flattener and the writer's
partitioning are part of what is checked.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.flatten import Lineage, flatten_source
from pipeline.lake import Lake
from pipeline.schema import (
    COMMAND_PLUGINS,
    INGEST_RUNS,
    INVOCATIONS,
    MANAGED_INSTANCES,
    QUARANTINE,
    TIMESTAMP,
)
from pipeline.views import connect
from tests.lakes import (
    ACCOUNT,
    REGION,
    at,
    commit_rows,
    expire,
    ingest,
    invocation,
    plugin,
    record_run,
)

EAST = "us-east-1"
SHELL = "AWS-RunShellScript"
PATCH = "AWS-RunPatchBaseline"
T = at("2024-03-05T10:00:00")
T2 = at("2024-03-05T02:00:00")
AS_OF = "TIMESTAMPTZ '2024-03-10 12:00:00+00'"
TIME_ZONES = ["UTC", "America/Los_Angeles"]
REPORT_VIEWS = [
    "compliance_daily",
    "instance_last_run",
    "failed_invocations",
    "plugin_failures",
    "invocation_durations",
    "patch_compliance",
]
REPORT_MACROS = [
    "compliance_between('2024-01-01', '2024-12-31')",
    f"patch_compliance_within(7, as_of := {AS_OF})",
]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# fmt: off
# One command per status bucket, plus a patch command and another region.
FLEET = [
    invocation("cmd-shell", "i-01", T, "Success", plugins=[
        plugin("aws:runShellScript", "Success", 0, start=T + s(1), seconds=10, output="ok"),
    ]),
    invocation("cmd-shell", "i-02", T, "Failed", instance_name="web-02", plugins=[
        plugin("download", "Success", 0, start=T + s(1), seconds=1),
        plugin("build", "Failed", 2, start=T + s(2), seconds=20, output="E" * 250),
        plugin("deploy", "Failed", 1, start=T + s(22), seconds=1, output="late"),
    ]),
    invocation("cmd-shell", "i-03", T, "TimedOut", details="ExecutionTimedOut", plugins=[
        plugin("aws:runShellScript", "TimedOut", -1, start=T + s(1), seconds=60, output="timeout"),
    ]),
    invocation("cmd-shell", "i-04", T, "Cancelled", plugins=[
        plugin("aws:runShellScript", "Cancelled"),
    ]),
    invocation("cmd-shell", "i-05", T, "Failed", details="Undeliverable"),
    invocation("cmd-shell", "i-06", T, "InProgress", plugins=[
        plugin("aws:runShellScript", "InProgress", start=T + s(1)),
    ]),
    invocation("cmd-shell", "i-07", T, "Pending"),
    invocation("cmd-shell", "i-08", T, "Delayed"),
    invocation("cmd-shell", "i-09", T, "Cancelling"),
    invocation("cmd-shell", "i-10", T, "Rebooting", plugins=[
        plugin("aws:runShellScript", "Success", 0, start=T + s(1), seconds=4),
    ]),
    invocation("cmd-patch", "i-01", T2, "Success", document=PATCH, plugins=[
        plugin("PatchLinux", "Success", 0, start=T2 + s(5), seconds=120),
    ]),
    invocation("cmd-patch", "i-02", T2, "Failed", document=PATCH, plugins=[
        plugin("PatchLinux", "Failed", 1, start=T2 + s(5), seconds=60, output="patch failed"),
    ]),
]
FLEET_EAST = [
    invocation("cmd-east", "i-99", at("2024-03-05T23:59:59.999"), "Success", plugins=[
        plugin("aws:runShellScript", "Success", 0),
    ]),
]

D1, D2, D3, D4, D5 = (at(f"2024-03-0{n}T06:00:00") for n in range(1, 6))
# Runs of a few instances over five days, for streaks and date ranges.
HISTORY = [
    invocation("c1", "i-01", D1, "Success"),
    invocation("c1", "i-02", D1, "Failed"),
    invocation("c1", "i-03", D1, "Failed"),
    invocation("c1", "i-04", D1, "Pending"),
    invocation("c2", "i-01", D2, "Failed"),
    invocation("c2", "i-02", D2, "Rebooting"),
    invocation("c2", "i-03", D2, "Success"),
    invocation("c3", "i-01", D3, "TimedOut"),
    invocation("c3", "i-02", D3, "Cancelled"),
    invocation("c4", "i-01", D4, "InProgress"),
    invocation("c4", "i-02", D4, "Failed"),
    invocation("c5", "i-01", D1, "Failed", document=PATCH),
    invocation("c6", "i-04", D5, "Delayed"),
]

# Patch history around AS_OF (2024-03-10 12:00 UTC, the day US clocks spring forward).
PATCHES = [
    invocation("p1", "i-01", at("2024-03-03T12:00:00"), "Success", document=PATCH),
    invocation("p2", "i-01", at("2024-03-09T12:00:00"), "Failed", document=PATCH),
    invocation("p3", "i-02", at("2024-03-03T11:59:59.999"), "Success", document=PATCH),
    invocation("s1", "i-03", at("2024-03-09T12:00:00"), "Success"),
    invocation("p4", "i-04", at("2024-03-01T12:00:00"), "Success", document=PATCH),
    invocation("p5", "i-04", at("2024-03-10T11:00:00"), "InProgress", document=PATCH),
    invocation("p6", "i-05", at("2024-03-10T13:00:00"), "Success", document=PATCH),
]
PATCHES_EAST = [
    invocation("p7", "i-01", at("2024-03-10T00:00:00"), "Success", document=PATCH),
]

BOUNDARY = [
    invocation("cmd-jan", "i-01", at("2024-01-31T23:59:59.999"), "Success", plugins=[
        plugin("aws:runShellScript", "Success", 0),
    ]),
    invocation("cmd-feb", "i-01", at("2024-02-01T00:00:00"), "Failed", plugins=[
        plugin("aws:runShellScript", "Failed", 1),
    ]),
]

# The same invocation fetched twice: later with another status and fewer plugins.
FIRST_SIGHTING = invocation("c1", "i-01", T, "InProgress", plugins=[
    plugin("download", "Success", 0),
    plugin("build", "InProgress"),
    plugin("deploy", "Pending"),
])
SECOND_SIGHTING = invocation("c1", "i-01", T, "Success", plugins=[
    plugin("fetch", "Success", 0),
    plugin("build", "Success", 0),
])
# fmt: on


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.create(tmp_path / "lake")


def open_lake(lake: Lake, time_zone: str = "UTC"):
    """Views on the lake, with the session TimeZone changed after connect."""
    con = connect(lake)
    con.execute(f"SET TimeZone = '{time_zone}'")
    return con


def rows(con, query: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM ({query}) ORDER BY ALL").fetchall()


@pytest.fixture
def fleet(lake):
    ingest(lake, FLEET)
    ingest(lake, FLEET_EAST, region=EAST)
    return open_lake(lake)


@pytest.fixture
def history(lake):
    ingest(lake, HISTORY)
    return open_lake(lake)


# --- base views -----------------------------------------------------------------

DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
    pa.date32(): "DATE",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.int64(): "BIGINT",
    pa.list_(pa.string()): "VARCHAR[]",
}


@pytest.mark.parametrize(
    ("view", "schema"),
    [
        (spec.name, spec.table_schema)
        for spec in (INVOCATIONS, COMMAND_PLUGINS, MANAGED_INSTANCES, QUARANTINE, INGEST_RUNS)
    ],
)
def test_base_views_have_the_schema_columns_and_types(fleet, view, schema):
    described = [(name, kind) for name, kind, *_ in fleet.execute(f"DESCRIBE {view}").fetchall()]
    assert described == [(f.name, DUCKDB_TYPES[f.type]) for f in schema]
    if "requested_month" in schema.names:  # the partition column, typed as text
        assert described[-1] == ("requested_month", "VARCHAR")


def test_account_id_keeps_its_leading_zero(fleet):
    assert fleet.execute("SELECT DISTINCT account_id FROM invocations").fetchall() == [
        ("012345678901",)
    ]


def test_a_reingested_invocation_shows_once_with_its_latest_state(lake):
    ingest(lake, [FIRST_SIGHTING], run_id="run-1", ingested_at=at("2024-06-01T00:00:00"))
    ingest(lake, [SECOND_SIGHTING], run_id="run-2", ingested_at=at("2024-06-02T00:00:00"))
    con = open_lake(lake)
    assert rows(con, "SELECT command_id, instance_id, status, run_id FROM invocations") == [
        ("c1", "i-01", "Success", "run-2")
    ]
    assert rows(con, "SELECT plugin_index, name, status, run_id FROM command_plugins") == [
        (0, "fetch", "Success", "run-2"),
        (1, "build", "Success", "run-2"),
    ]
    assert rows(con, "SELECT invocations, succeeded, open FROM compliance_daily") == [(1, 1, 0)]
    assert rows(con, "SELECT * FROM plugin_failures") == []


# --- every view and macro ---------------------------------------------------------


def test_report_views_and_macros_have_these_columns(lake):
    con = open_lake(lake)
    counts = [
        "invocations", "succeeded", "failed", "timed_out", "cancelled",
        "undeliverable", "open", "expired", "other", "finished",
    ]  # fmt: skip
    bucket_columns = [(c, "BIGINT") for c in counts] + [("success_rate", "DOUBLE")]
    group = [("account_id", "VARCHAR"), ("region", "VARCHAR"), ("document_name", "VARCHAR")]
    tz = "TIMESTAMP WITH TIME ZONE"
    expected = {
        "compliance_daily": [("requested_date", "DATE"), *group, *bucket_columns],
        REPORT_MACROS[0]: [*group, *bucket_columns],
        "instance_last_run": [
            ("account_id", "VARCHAR"),
            ("region", "VARCHAR"),
            ("instance_id", "VARCHAR"),
            ("document_name", "VARCHAR"),
            ("last_requested_date_time", tz),
            ("last_status", "VARCHAR"),
            ("last_outcome", "VARCHAR"),
            ("last_success_date_time", tz),
            ("consecutive_failures", "BIGINT"),
        ],
        "failed_invocations": [
            ("account_id", "VARCHAR"),
            ("region", "VARCHAR"),
            ("command_id", "VARCHAR"),
            ("instance_id", "VARCHAR"),
            ("instance_name", "VARCHAR"),
            ("document_name", "VARCHAR"),
            ("requested_date_time", tz),
            ("status", "VARCHAR"),
            ("status_details", "VARCHAR"),
            ("failed_plugin_name", "VARCHAR"),
            ("failed_plugin_response_code", "INTEGER"),
            ("failed_plugin_output", "VARCHAR"),
            ("failed_plugin_index", "INTEGER"),
            ("full_stdout_tail", "VARCHAR"),
            ("full_stderr_tail", "VARCHAR"),
        ],
        "plugin_failures": [
            ("document_name", "VARCHAR"),
            ("plugin_name", "VARCHAR"),
            ("response_code", "INTEGER"),
            ("failures", "BIGINT"),
            ("last_failed_date_time", tz),
        ],
        "invocation_durations": [
            ("document_name", "VARCHAR"),
            ("invocations", "BIGINT"),
            ("p50_seconds", "DOUBLE"),
            ("p95_seconds", "DOUBLE"),
            ("max_seconds", "DOUBLE"),
        ],
        "patch_compliance": [
            ("account_id", "VARCHAR"),
            ("region", "VARCHAR"),
            ("instance_id", "VARCHAR"),
            ("instance_name", "VARCHAR"),
            ("latest_patch_requested_date_time", tz),
            ("latest_patch_status", "VARCHAR"),
            ("latest_patch_status_details", "VARCHAR"),
            ("latest_patch_age_days", "DOUBLE"),
            ("last_success_date_time", tz),
            ("in_inventory", "BOOLEAN"),
            ("compliant", "BOOLEAN"),
        ],
    }
    expected[REPORT_MACROS[1]] = expected["patch_compliance"]
    for source, columns in expected.items():
        described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        assert [(name, kind) for name, kind, *_ in described] == columns, source


@pytest.mark.parametrize(
    "source", ["invocations", "command_plugins", *REPORT_VIEWS, *REPORT_MACROS]
)
def test_a_fresh_lake_gives_zero_rows(lake, source):
    con = open_lake(lake)
    assert con.execute(f"SELECT count(*) FROM {source}").fetchall() == [(0,)]


def test_views_give_the_same_answers_in_any_session_time_zone(lake):
    ingest(lake, FLEET, run_id="fleet")
    ingest(lake, FLEET_EAST, run_id="fleet", region=EAST)
    ingest(lake, HISTORY, run_id="history", account="000000000042")
    ingest(lake, BOUNDARY, run_id="boundary", region="eu-central-1")
    ingest(lake, PATCHES, run_id="patches", region="ap-south-1")
    sources = [v for v in REPORT_VIEWS if v != "patch_compliance"] + REPORT_MACROS
    in_utc = open_lake(lake)
    in_los_angeles = open_lake(lake, "America/Los_Angeles")
    for source in sources:
        expected = rows(in_utc, f"SELECT * FROM {source}")
        assert expected, source
        assert rows(in_los_angeles, f"SELECT * FROM {source}") == expected, source


# --- compliance_daily and compliance_between -----------------------------------------


def test_compliance_daily_counts_every_status_bucket(fleet):
    assert rows(fleet, "SELECT * FROM compliance_daily") == [
        # date, account, region, document, invocations, succeeded, failed, timed_out,
        # cancelled, undeliverable, open, expired, other, finished, success_rate
        (date(2024, 3, 5), ACCOUNT, REGION, PATCH, 2, 1, 1, 0, 0, 0, 0, 0, 0, 2, 0.5),
        (date(2024, 3, 5), ACCOUNT, REGION, SHELL, 10, 1, 2, 1, 1, 1, 4, 0, 1, 6, 1 / 6),
        (date(2024, 3, 5), ACCOUNT, EAST, SHELL, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1.0),
    ]


def test_compliance_daily_success_rate_is_null_with_nothing_finished(history):
    assert rows(
        history, "SELECT * FROM compliance_daily WHERE requested_date = DATE '2024-03-05'"
    ) == [(date(2024, 3, 5), ACCOUNT, REGION, SHELL, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, None)]


def test_a_missing_status_counts_as_other(lake):
    ingest(lake, [invocation("c1", "i-01", T, None), invocation("c1", "i-02", T, "Success")])
    con = open_lake(lake)
    assert rows(
        con, "SELECT invocations, succeeded, other, success_rate FROM compliance_daily"
    ) == [(2, 1, 1, 0.5)]


def test_compliance_between_sums_the_days_in_range(history):
    assert rows(history, "SELECT * FROM compliance_between('2024-03-01', '2024-03-03')") == [
        (ACCOUNT, REGION, PATCH, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0.0),
        (ACCOUNT, REGION, SHELL, 9, 2, 3, 1, 1, 0, 1, 0, 1, 8, 0.25),
    ]
    assert rows(history, "SELECT * FROM compliance_between(DATE '2024-03-04', '2024-03-05')") == [
        (ACCOUNT, REGION, SHELL, 3, 0, 1, 0, 0, 0, 2, 0, 0, 1, 0.0),
    ]
    assert rows(history, "SELECT * FROM compliance_between('2024-04-01', '2024-04-30')") == []


@pytest.mark.parametrize("time_zone", TIME_ZONES)
def test_a_millisecond_either_side_of_midnight_lands_in_its_utc_day_and_month(lake, time_zone):
    ingest(lake, BOUNDARY)
    con = open_lake(lake, time_zone)
    assert rows(con, "SELECT command_id, requested_date, requested_month FROM invocations") == [
        ("cmd-feb", date(2024, 2, 1), "2024-02"),
        ("cmd-jan", date(2024, 1, 31), "2024-01"),
    ]
    assert rows(con, "SELECT command_id, requested_date, requested_month FROM command_plugins") == [
        ("cmd-feb", date(2024, 2, 1), "2024-02"),
        ("cmd-jan", date(2024, 1, 31), "2024-01"),
    ]
    assert rows(con, "SELECT requested_date, succeeded, failed FROM compliance_daily") == [
        (date(2024, 1, 31), 1, 0),
        (date(2024, 2, 1), 0, 1),
    ]
    assert rows(con, "SELECT invocations FROM compliance_between('2024-02-01', '2024-02-29')") == [
        (1,)
    ]


# --- instance_last_run -----------------------------------------------------------------


def test_instance_last_run_counts_the_latest_finished_failures(history):
    assert rows(history, "SELECT * FROM instance_last_run") == [
        (ACCOUNT, REGION, "i-01", PATCH, D1, "Failed", "failed", None, 1),
        # the latest is open, skipped: Failed then TimedOut before it, after a success
        (ACCOUNT, REGION, "i-01", SHELL, D4, "InProgress", "open", D1, 2),
        # a cancelled run is skipped, an unknown status (Rebooting) ends the streak
        (ACCOUNT, REGION, "i-02", SHELL, D4, "Failed", "failed", None, 1),
        (ACCOUNT, REGION, "i-03", SHELL, D2, "Success", "succeeded", D2, 0),
        (ACCOUNT, REGION, "i-04", SHELL, D5, "Delayed", "open", None, 0),
    ]


# --- failed_invocations and plugin_failures --------------------------------------------


def test_failed_invocations_name_their_first_failed_plugin(fleet):
    assert rows(fleet, "SELECT * FROM failed_invocations") == [
        (ACCOUNT, REGION, "cmd-patch", "i-02", None, PATCH, T2, "Failed", "Failed",
         "PatchLinux", 1, "patch failed", 0, None, None),
        (ACCOUNT, REGION, "cmd-shell", "i-02", "web-02", SHELL, T, "Failed", "Failed",
         "build", 2, "E" * 200, 1, None, None),
        (ACCOUNT, REGION, "cmd-shell", "i-03", None, SHELL, T, "TimedOut", "ExecutionTimedOut",
         "aws:runShellScript", -1, "timeout", 0, None, None),
        (ACCOUNT, REGION, "cmd-shell", "i-05", None, SHELL, T, "Failed", "Undeliverable",
         None, None, None, None, None, None),
    ]  # no full output stored here (--full-output: tests/test_full_output.py)  # fmt: skip


def test_plugin_failures_by_document_plugin_and_code(fleet):
    assert rows(fleet, "SELECT * FROM plugin_failures") == [
        (PATCH, "PatchLinux", 1, 1, T2),
        (SHELL, "aws:runShellScript", -1, 1, T),  # timed out while executing
        # not failures: i-04's cancelled plugin, i-06's running one
        (SHELL, "build", 2, 1, T),
        (SHELL, "deploy", 1, 1, T),
    ]


def test_plugin_failures_count_every_failed_run(lake):
    first, second = at("2024-03-01T00:00:00"), at("2024-03-02T00:00:00")
    ingest(lake, [
        invocation("c1", "i-01", first, "Failed", plugins=[plugin("step", "Failed", 1)]),
        invocation("c2", "i-01", second, "Failed", plugins=[plugin("step", "Failed", 1)]),
        invocation("c2", "i-02", first, "Failed", plugins=[plugin("step", "Failed", 1)]),
        invocation("c3", "i-01", second, "Success", plugins=[plugin("step", "Success", 0)]),
    ])  # fmt: skip
    con = open_lake(lake)
    # three failed runs of "step": i-01's on two nights count apart, and i-02's
    assert rows(con, "SELECT * FROM plugin_failures") == [(SHELL, "step", 1, 3, second)]


# --- invocation_durations ------------------------------------------------------------------


def test_invocation_durations_span_first_start_to_last_finish(fleet):
    # PatchBaseline runs: 120 s, 60 s. Shell runs with both times: 10, 22, 60, 4 s.
    assert rows(fleet, "SELECT * FROM invocation_durations") == [
        (PATCH, 2, 90.0, 117.0, 120.0),
        (SHELL, 4, 16.0, 54.3, 60.0),
    ]


# --- patch_compliance ---------------------------------------------------------------------


@pytest.mark.parametrize("time_zone", TIME_ZONES)
def test_patch_compliance_within_days_of_as_of(lake, time_zone):
    ingest(lake, PATCHES)
    ingest(lake, PATCHES_EAST, region=EAST)
    con = open_lake(lake, time_zone)
    no_inventory = f"SELECT count(*) FROM patch_compliance_within(7, as_of := {AS_OF}) WHERE in_inventory IS NOT NULL"
    assert rows(con, no_inventory) == [(0,)], "without a snapshot, inventory says nothing"
    columns = "* EXCLUDE (instance_name, latest_patch_status_details, in_inventory)"
    assert rows(con, f"SELECT {columns} FROM patch_compliance_within(7, as_of := {AS_OF})") == [
        # a success exactly 7 days before as_of counts; the later failure does not undo it
        (ACCOUNT, REGION, "i-01", at("2024-03-09T12:00:00"), "Failed", 1.0,
         at("2024-03-03T12:00:00"), True),
        # one millisecond too early
        (ACCOUNT, REGION, "i-02", at("2024-03-03T11:59:59.999"), "Success",
         604_800_001 / 86_400_000, at("2024-03-03T11:59:59.999"), False),
        # never patched
        (ACCOUNT, REGION, "i-03", None, None, None, None, False),
        (ACCOUNT, REGION, "i-04", at("2024-03-10T11:00:00"), "InProgress",
         3_600_000 / 86_400_000, at("2024-03-01T12:00:00"), False),
        # patched only after as_of
        (ACCOUNT, REGION, "i-05", None, None, None, None, False),
        (ACCOUNT, EAST, "i-01", at("2024-03-10T00:00:00"), "Success", 0.5,
         at("2024-03-10T00:00:00"), True),
    ]  # fmt: skip
    assert rows(con, f"SELECT instance_id FROM patch_compliance_within(10, as_of := {AS_OF})") == [
        ("i-01",), ("i-01",), ("i-02",), ("i-03",), ("i-04",), ("i-05",),
    ]  # fmt: skip
    assert rows(
        con,
        f"SELECT instance_id FROM patch_compliance_within(10, as_of := {AS_OF}) WHERE compliant",
    ) == [("i-01",), ("i-01",), ("i-02",), ("i-04",)]


def test_patch_compliance_is_the_last_seven_days_until_now(lake):
    now = datetime.now(UTC)
    ingest(lake, [
        invocation("p1", "i-01", now - timedelta(days=1), "Success", document=PATCH),
        invocation("p2", "i-02", now - timedelta(days=8), "Success", document=PATCH),
        invocation("s1", "i-03", now - timedelta(days=1), "Success"),
    ])  # fmt: skip
    con = open_lake(lake)
    assert rows(
        con, "SELECT instance_id, latest_patch_status, compliant FROM patch_compliance"
    ) == [
        ("i-01", "Success", True),
        ("i-02", "Success", False),
        ("i-03", None, False),
    ]


# --- data_freshness --------------------------------------------------------------------


def _ledger_row(run_id, region, finished, status, error=None, purged=None) -> dict:
    return {
        "run_id": run_id, "account_id": ACCOUNT, "region": region,
        "started_at": finished - s(60), "finished_at": finished,
        "window_start": None, "window_end": None, "pages": 0, "invocations": 0, "plugins": 0,
        "quarantined": 0, "status": status, "error": error, "watermark": None,
        "purged_months": purged, "commands": None, "managed_instances": None,
    }  # fmt: skip


def test_data_freshness_shows_every_region_the_ledger_or_the_data_knows(lake):
    """A failing region, a region never succeeded and a region with data but no ledger."""
    day1, day2, day3 = (
        at("2024-03-06T03:00:00"),
        at("2024-03-07T03:00:00"),
        at("2024-03-08T03:00:00"),
    )
    ingest(lake, FLEET)  # newest invocation at T
    ingest(lake, FLEET_EAST, region="ap-south-1")  # data the ledger does not know
    record_run(lake, _ledger_row("run-1", REGION, day1, "succeeded"))
    record_run(lake, _ledger_row("run-2", REGION, day2, "failed", error="AccessDenied: no"))
    record_run(lake, _ledger_row("purge-1", REGION, day3, "succeeded", purged=["2023-01"]))
    record_run(lake, _ledger_row("run-2", EAST, day2, "failed", error="throttled"))
    assert rows(open_lake(lake), "SELECT * FROM data_freshness") == [
        # the purge is not a run: the last run is the failed one, the last success before it
        (ACCOUNT, "ap-south-1", None, None, None, None, None, at("2024-03-05T23:59:59.999")),
        (ACCOUNT, REGION, "run-2", day2, "failed", "AccessDenied: no", day1, T),
        (ACCOUNT, EAST, "run-2", day2, "failed", "throttled", None, None),
    ]


# --- the README's SQL recipes -------------------------------------------------------------


def test_every_sql_recipe_in_the_readme_runs(fleet):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("### SQL recipes", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    recipes = [statement for statement in block.split(";") if statement.strip()]
    assert len(recipes) >= 7
    for recipe in recipes:
        fleet.sql(recipe).fetchall()  # a typo in a column or view name raises here


# --- open, finished, expired while open (see sql/invocation_outcome.sql) -----------------


def test_an_invocation_that_expired_while_open_is_neither_open_nor_finished(lake):
    opened = at("2024-03-01T06:00:00")
    ingest(lake, [
        invocation("p1", "i-01", opened, "InProgress", document=PATCH),
        invocation("p1", "i-02", opened, "Success", document=PATCH),
        invocation("p2", "i-01", at("2024-02-20T06:00:00"), "Success", document=PATCH),
        invocation("c1", "i-01", at("2024-03-02T06:00:00"), "Failed"),
        invocation("c2", "i-01", at("2024-03-03T06:00:00"), "Pending"),
    ])  # fmt: skip
    expire(lake, [("p1", "i-01", opened), ("c2", "i-01", at("2024-03-03T06:00:00"))], when=T)
    con = open_lake(lake)
    assert rows(con, "SELECT command_id, status, expired_while_open_at FROM invocations") == [
        ("c1", "Failed", None),
        ("c2", "Pending", T),  # the last state is kept, and marked
        ("p1", "InProgress", T),
        ("p1", "Success", None),
        ("p2", "Success", None),
    ]
    assert rows(
        con,
        "SELECT document_name, open, expired, finished, success_rate FROM "
        "compliance_between('2024-03-01', '2024-03-31')",
    ) == [(PATCH, 0, 1, 1, 1.0), (SHELL, 0, 1, 1, 0.0)]
    assert rows(
        con,
        "SELECT document_name, last_status, last_outcome, last_success_date_time, "
        "consecutive_failures FROM instance_last_run WHERE instance_id = 'i-01'",
    ) == [
        (PATCH, "InProgress", "expired", at("2024-02-20T06:00:00"), 0),
        (SHELL, "Pending", "expired", None, 1),  # skipped: the failure before it still counts
    ]
    assert rows(con, "SELECT command_id FROM failed_invocations") == [("c1",)]


def test_plugins_that_did_not_run_to_a_failure_are_not_failures(lake):
    ingest(lake, [
        invocation("c1", "i-01", T, "TimedOut", details="DeliveryTimedOut", plugins=[
            {**plugin("step", "TimedOut", -1), "StatusDetails": "DeliveryTimedOut"},
        ]),
        invocation("c1", "i-02", T, "Pending", plugins=[plugin("step", "Pending", -1)]),
        invocation("c1", "i-03", T, "Cancelled", plugins=[plugin("step", "Cancelled", -1)]),
        invocation("c1", "i-04", T, "InProgress", plugins=[plugin("step", "InProgress", -1)]),
        invocation("c1", "i-05", T, "Failed", plugins=[plugin("step", "Failed", 1)]),
        invocation("c1", "i-06", T, "TimedOut", details="ExecutionTimedOut", plugins=[
            {**plugin("step", "TimedOut", 124), "StatusDetails": "ExecutionTimedOut"},
        ]),
    ])  # fmt: skip
    con = open_lake(lake)
    assert rows(con, "SELECT * FROM plugin_failures") == [
        (SHELL, "step", 1, 1, T),
        (SHELL, "step", 124, 1, T),
    ]
    assert rows(con, "SELECT instance_id, failed_plugin_name FROM failed_invocations") == [
        ("i-01", None),  # never delivered: a failed invocation without a failed plugin
        ("i-05", "step"),
        ("i-06", "step"),
    ]


def test_durations_are_whole_milliseconds(lake):
    start = at("2024-03-05T00:00:00")
    ingest(lake, [
        invocation(f"c{n}", "i-01", start, "Success", plugins=[
            plugin("step", "Success", 0, start=start, seconds=seconds),
        ])
        for n, seconds in enumerate((10.1, 20.2))
    ])  # fmt: skip
    # unrounded, the median is 15.149999999999999 and the p95 19.694999999999997
    assert rows(
        open_lake(lake), "SELECT p50_seconds, p95_seconds, max_seconds FROM invocation_durations"
    ) == [(15.15, 19.695, 20.2)]


def test_patch_compliance_names_each_instance(lake):
    ingest(lake, [
        invocation("p1", "i-01", T, "Success", document=PATCH, instance_name="web-01"),
        invocation("p2", "i-01", T2, "Success", document=PATCH, instance_name=""),
        invocation("p1", "i-02", T, "Failed", document=PATCH),
    ])  # fmt: skip
    lineage = Lineage(ACCOUNT, REGION, "run-inventory", 1_710_000_000_000)
    inventory = [
        {"InstanceId": "i-02", "ComputerName": "db-02.corp"},
        {"InstanceId": "i-03", "Name": "kiosk-03", "ComputerName": "kiosk"},
    ]
    rows_ = flatten_source("managed_instances", inventory, lineage)[0]
    commit_rows(lake, [(MANAGED_INSTANCES, rows_)], run_id="run-inventory")
    assert rows(open_lake(lake), "SELECT instance_id, instance_name FROM patch_compliance") == [
        ("i-01", "web-01"),  # the latest non-empty InstanceName
        ("i-02", "db-02.corp"),  # the inventory's when invocations have none
        ("i-03", "kiosk-03"),
    ]
