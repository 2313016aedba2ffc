"""What plugins print: full stdout and stderr, and the shortened forms SSM shows of them.

Every function draws from the caller's `random.Random` in a fixed order, so the
same schedule always prints the same text. A plugin's text comes in two parts:
what the schedule generates (`stdout`, `stderr`), and for some long outputs a
long log (`long_log(seed)`) printed after stdout, or after stderr by a plugin
that failed, built on demand because it runs to tens of kilobytes. It is only
added to a stdout already longer than SSM's 2,500-character cut, so it never
changes what ListCommandInvocations shows.
"""

from __future__ import annotations

import random
from functools import lru_cache

OUTPUT_CAP = 2500
TRUNCATED = "\n---Output truncated---"
ERROR_TITLE = "\n----------ERROR-------\n"
# GetCommandInvocation's StandardOutputContent/StandardErrorContent limits, and the
# suffix the agent puts on a cut (amazon-ssm-agent pluginutil.StringPrefix, called from
# runpluginutil.go; the agent counts bytes, we count characters).
STDOUT_CONTENT, STDERR_CONTENT = 24_000, 8_000
CONTENT_TRUNCATED = "--output truncated--"
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
_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+"


def cap(text: str) -> str:
    """SSM keeps the first 2,500 characters, marker included."""
    if len(text) <= OUTPUT_CAP:
        return text
    return text[: OUTPUT_CAP - len(TRUNCATED)] + TRUNCATED


def shown(stdout: str, stderr: str) -> str:
    """ListCommandInvocations' `Output`: stdout, then the error title and stderr, capped."""
    return cap(stdout + (ERROR_TITLE + stderr if stderr else ""))


def content(text: str, limit: int) -> str:
    """GetCommandInvocation's cut: the text, or its start and the agent's suffix."""
    if len(text) < limit:
        return text
    return text[: limit - len(CONTENT_TRUNCATED)] + CONTENT_TRUNCATED


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
    return "\n".join(lines) + "\n"


def patch_failure_output(rng: random.Random, platform: str, cause: str) -> tuple[str, str]:
    """A chronically failing AWS-RunPatchBaseline: (stdout, stderr), the same cause every night."""
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
    return f"{header}\nERROR: {detail}", "failed to run commands: exit status 1\n"


def skipped(platform: str, step: str) -> str:
    return (
        "Step execution skipped due to unsatisfied preconditions: "
        f"'\"StringEquals\": [platformType, {platform}]'. Step name: {step}"
    )


def output(rng: random.Random, document: str, platform: str, label: str, step: str) -> str:
    """A successful plugin's stdout; `label` is how the instance names itself."""
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
        return f"Inventur für {label} 📦\n{body}"
    if step == "uploadInventory":
        return "upload complete: s3://acme-inventory/日本語/inventory.json\n"
    return rng.choice(_SHELL)


# ---- long logs ------------------------------------------------------------------------

_LOG_LINES = (
    "DEBUG resolving dependencies for {pkg}-{major}.{minor}.{patch} (Größe {size} KiB)",
    "INFO  verified checksum of {pkg}-{major}.{minor}.{patch}: sha256 ok",
    "WARN  retrying mirror https://mirror-{n}.acme.example/{pkg} (attempt {attempt}/5)",
    "DEBUG transaction step {n}: unpack {pkg} → /opt/{pkg}/{major}.{minor}",
    "INFO  {pkg}: {n} files written, {size} KiB ✓",
)


def planted_secret(seed: int) -> tuple[str, str] | None:
    """(access key id, secret access key) that `long_log(seed)` prints, or None.

    About one long log in three dumps its environment with AWS credentials in it,
    the way a debug flag left on does; they look real and are random.
    """
    rng = random.Random(f"{seed}:secret")
    if rng.random() >= 1 / 3:
        return None
    key_id = "AKIA" + "".join(rng.choice(_KEY_CHARS) for _ in range(16))
    secret = "".join(rng.choice(_SECRET_CHARS) for _ in range(40))
    return key_id, secret


@lru_cache(maxsize=64)
def long_log(seed: int) -> str:
    """A verbose log of 25,000 to 60,000 characters that a plugin printed after its output."""
    rng = random.Random(f"{seed}:log")
    target = rng.randint(25_000, 60_000)
    secret = planted_secret(seed)
    at = rng.randint(40, 300)  # the line the environment dump follows, if any
    lines: list[str] = []
    size = 0
    while size < target:
        if secret is not None and len(lines) == at:
            block = [
                "DEBUG environment at failure:",
                "  HOME=/root",
                f"  AWS_ACCESS_KEY_ID={secret[0]}",
                f"  AWS_SECRET_ACCESS_KEY={secret[1]}",
                "  AWS_DEFAULT_REGION=us-east-1",
            ]
        else:
            block = [
                rng.choice(_LOG_LINES).format(
                    pkg=rng.choice(NAMES) + "lib",
                    major=rng.randint(0, 9),
                    minor=rng.randint(0, 40),
                    patch=rng.randint(0, 99),
                    size=rng.randint(1, 90_000),
                    n=len(lines),
                    attempt=rng.randint(1, 5),
                )
            ]
        lines += block
        size += sum(len(line) + 1 for line in block)
    return "\n".join(lines) + "\n"
