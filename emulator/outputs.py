"""What plugins print: the text of Run Command outputs, capped the way SSM caps them.

Every function draws from the caller's `random.Random` in a fixed order, so the
same schedule always prints the same text.
"""

from __future__ import annotations

import random

OUTPUT_CAP = 2500
TRUNCATED = "\n---Output truncated---"
NAMES = ("web", "api", "db", "batch", "build", "cache", "kiosk", "edge", "etl", "vpn")

_SHELL = (
    "Filesystem      Size  Used Avail Use% Mounted on\n/dev/nvme0n1p1   20G  8.1G   12G  41% /\n",
    "active\n",
    "Größe des Caches: 512 MiB — bereinigt ✅\n",
    "ログローテーション完了 (日本語)\n",
    "uptime: 12 days, load average: 0.42, 0.37, 0.31\n",
    "deploy ok 🚀 revision 4f2a9c1\n",
    "",
)
_POWERSHELL = (
    "Status   Name               DisplayName\n------   ----               -----------\n"
    "Running  AmazonSSMAgent     Amazon SSM Agent\n",
    "Freier Speicher auf C: 41,2 GB (Größe 100 GB)\n",
    "KB5034441 installed.\n",
)
LOCK_HELD = "Package manager lock held"
NO_DISK = "Insufficient disk space"


def cap(text: str) -> str:
    """SSM keeps the first 2,500 characters, marker included."""
    if len(text) <= OUTPUT_CAP:
        return text
    return text[: OUTPUT_CAP - len(TRUNCATED)] + TRUNCATED


def patch_output(rng: random.Random, platform: str, operation: str) -> str:
    count = rng.choice((0, 0, 1, 3, 8, 20, 45, 90))
    if platform == "Windows":
        lines = ["Patch Summary for PatchGroup : prod", f"Operation : {operation}"]
        lines += [
            f"KB50{rng.randint(10000, 99999)} Größe: {rng.randint(1, 900)} MB" for _ in range(count)
        ]
    elif platform == "MacOS":
        lines = [f"brew {operation.lower()}: {count} formulae"]
        lines += [
            f"==> Upgrading {rng.choice(NAMES)}lib 1.{rng.randint(0, 40)} 🍺" for _ in range(count)
        ]
    else:
        lines = ["/usr/bin/python3", f"Patch Baseline Operation: {operation}"]
        lines += [
            f"Installed: kernel-5.10.{rng.randint(100, 240)}-{rng.randint(100, 300)}.amzn2.x86_64"
            for _ in range(count)
        ]
    lines.append(f"{operation} finished: {count} patches")
    return cap("\n".join(lines) + "\n")


def patch_failure_output(rng: random.Random, platform: str, cause: str) -> str:
    """A chronically failing AWS-RunPatchBaseline: the same cause every night."""
    if cause == LOCK_HELD:
        pid = rng.randint(900, 32000)
        detail = (
            f"{LOCK_HELD}: another process (pid {pid}, yum-cron) has held "
            "/var/run/yum.pid for 600 seconds"
        )
    else:
        drive = "C:" if platform == "Windows" else "/"
        free = rng.randint(40, 480)
        detail = f"{NO_DISK} on {drive} ({free} MB free, 2048 MB needed to stage patches)"
    header = "Patch Baseline Operation: Install"
    return cap(
        f"{header}\nERROR: {detail}\n----------ERROR-------\nfailed to run commands: exit status 1\n"
    )


def skipped(platform: str, step: str) -> str:
    return (
        "Step execution skipped due to unsatisfied preconditions: "
        f"'\"StringEquals\": [platformType, {platform}]'. Step name: {step}"
    )


def output(rng: random.Random, document: str, platform: str, label: str, step: str) -> str:
    """A successful plugin's output; `label` is how the instance names itself."""
    if document == "AWS-RunPatchBaseline":
        return patch_output(rng, platform, rng.choice(("Scan", "Install")))
    if document == "AWS-RunPowerShellScript":
        return rng.choice(_POWERSHELL)
    if document == "AWS-UpdateSSMAgent":
        version = f"3.3.{rng.randint(1000, 1900)}.0"
        return f"Updating amazon-ssm-agent from 3.2.2303.0 to {version}\nSuccessfully updated."
    if step == "collectInventory":
        rows = rng.choice((2, 10, 200))
        body = "".join(f"pkg-{i:03d}\t1.{i}.0\tGröße {i * 37} KiB\n" for i in range(rows))
        return cap(f"Inventur für {label} 📦\n{body}")
    if step == "uploadInventory":
        return "upload complete: s3://acme-inventory/日本語/inventory.json\n"
    return rng.choice(_SHELL)
