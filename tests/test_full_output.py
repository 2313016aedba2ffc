"""--full-output (issue 15): the full stdout and stderr of selected plugins, in plugin_outputs.

Real nights of the Prefect flow against the emulator; what the lake holds is
compared with the emulator's own model of what each plugin printed
(`Emulator.output_ground_truth`) and with its request log.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from html import escape
from typing import Any
from urllib.parse import urlsplit

import pytest

from emulator import Emulator
from flows.cli import main
from pipeline.lake import Lake
from pipeline.outputs import LOG_PAGES, REQUESTS_PER_PLUGIN
from pipeline.report import build_report
from pipeline.views import connect
from tests.nights import ACCOUNT, night, spec

REGION = "us-east-1"
OUTPUT_REQUESTS = {
    ("ssm", "GetCommandInvocation"),
    ("s3", "GetObject"),
    ("logs", "GetLogEvents"),
}
SUFFIX = "--output truncated--"
LIMITS = {"stdout": 24_000, "stderr": 8_000}


def _rows(lake: Any, sql: str) -> list[dict[str, Any]]:
    con = connect(Lake.open(lake))
    try:
        relation = con.sql(sql)
        return [dict(zip(relation.columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()


def _outputs(lake: Any) -> list[dict[str, Any]]:
    return _rows(
        lake, "SELECT * FROM plugin_outputs ORDER BY command_id, instance_id, plugin_index"
    )


def _truth(emulator: Emulator, row: dict[str, Any]) -> dict[str, Any]:
    return emulator.output_ground_truth(
        ACCOUNT, REGION, row["command_id"], row["instance_id"], row["name"]
    )


def _output_requests(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in log if (e["service"], e["operation"]) in OUTPUT_REQUESTS]


class Night:
    """One night with --full-output all over a fresh lake, and the requests it made."""

    def __init__(self, emulator: Emulator, lake: Any, **options: Any) -> None:
        first = len(emulator.request_log)
        self.summary = night(emulator, lake, regions=(REGION,), full_output="all", **options)
        self.log = emulator.request_log[first:]
        self.lake = lake
        self.rows = _outputs(lake)


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(spec(regions=(REGION,))) as running:
        yield running


@pytest.fixture(scope="module")
def full(emulator, prefect_api, tmp_path_factory) -> Night:
    return Night(emulator, tmp_path_factory.mktemp("full") / "lake")


def test_full_text_equals_each_source(emulator, full):
    by_source: Counter = Counter()
    longer_than_the_api: Counter = Counter()
    for row in full.rows:
        truth = _truth(emulator, row)
        for stream in ("stdout", "stderr"):
            source, text = row[f"{stream}_source"], row[stream]
            by_source[source] += 1
            assert row[f"{stream}_capped_at"] is None
            if source in ("s3", "cloudwatch"):
                assert text == truth[stream], (source, row["command_id"], stream)
                assert row[f"{stream}_bytes"] == len(truth[stream].encode())
                assert not row[f"{stream}_truncated"]
                if len(text) > LIMITS[stream]:
                    longer_than_the_api[source] += 1
            elif source == "get_command_invocation":
                whole = truth[stream]
                cut = len(whole) >= LIMITS[stream]
                expected = whole[: LIMITS[stream] - len(SUFFIX)] + SUFFIX if cut else whole
                assert text == expected
                assert row[f"{stream}_truncated"] == cut
                assert row[f"{stream}_truncated_at"] == (LIMITS[stream] if cut else None)
                longer_than_the_api["cut"] += cut
            else:  # nothing printed, as the Output shows
                assert (text, truth[stream]) == ("", ""), (row["command_id"], stream)
    assert by_source["s3"] and by_source["cloudwatch"] and by_source["get_command_invocation"]
    assert longer_than_the_api["s3"] and longer_than_the_api["cloudwatch"], longer_than_the_api
    assert longer_than_the_api["cut"], "some outputs only GetCommandInvocation had, cut"


def test_selected_plugins_are_the_finished_ones_whose_output_is_not_whole(emulator, full):
    plugins = _rows(
        full.lake,
        """
        SELECT p.command_id, p.instance_id, p.plugin_index, p.output, p.output_s3_bucket_name,
               i.cloud_watch_output_enabled
        FROM command_plugins AS p JOIN invocations AS i
            USING (account_id, region, command_id, instance_id)
        WHERE i.status IN ('Success', 'Failed', 'TimedOut', 'Cancelled')
            AND p.response_finish_date_time IS NOT NULL
        """,
    )
    expected = {
        (p["command_id"], p["instance_id"], p["plugin_index"])
        for p in plugins
        if (p["output"] or "").endswith("---Output truncated---")
        or "\n----------ERROR-------\n" in (p["output"] or "")
        or p["output_s3_bucket_name"]
        or p["cloud_watch_output_enabled"]
    }
    stored = {(r["command_id"], r["instance_id"], r["plugin_index"]) for r in full.rows}
    assert stored == expected and len(stored) < len(plugins)


def test_a_denied_bucket_is_counted_and_the_run_succeeds(emulator, full):
    assert full.summary.exit_code == 0
    denied = [
        r
        for r in full.rows
        if r["stdout_unavailable"] and "AccessDenied" in r["stdout_unavailable"]
    ]
    expected = [
        r
        for r in full.rows
        if _truth(emulator, r)["s3"] == "denied" and _truth(emulator, r)["stdout"]
    ]
    assert denied and len(denied) == len(expected)
    for row in denied:
        assert row["stdout_unavailable"] == "s3 AccessDenied"
        assert row["stdout_source"] == "get_command_invocation"
        assert row["stdout"] == _truth(emulator, row)["stdout"]
    (result,) = full.summary.results
    assert result.ok and result.outputs is not None
    assert result.outputs.reasons["s3 AccessDenied"] == len(denied)
    assert f"s3 AccessDenied: {len(denied)}" in full.summary.render()
    (ledger,) = _rows(full.lake, "SELECT * FROM ingest_runs")
    assert ledger["status"] == "succeeded"
    assert ledger["outputs_fetched"] == len(full.rows)
    assert f"s3 AccessDenied: {len(denied)}" in ledger["outputs_unavailable_reasons"]
    assert ledger["outputs_unavailable"] == sum(
        int(reason.rsplit(": ", 1)[1]) for reason in ledger["outputs_unavailable_reasons"]
    )
    assert ledger["outputs_unavailable"] >= len(denied)


def _plugin_of(entry: dict[str, Any], urls: dict[str, tuple]) -> tuple:
    params = entry["params"]
    if entry["service"] == "ssm":
        return params["CommandId"], params["InstanceId"], params["PluginName"]
    if entry["service"] == "s3":
        return urls[f"{params['Bucket']}/{params['Key']}"]
    command, instance, plugin, _ = params["logStreamName"].split("/")
    return command, instance, plugin


def test_requests_are_bounded_by_the_selected_plugins_and_follow_the_walk(full):
    urls: dict[str, tuple] = {}
    names: dict[tuple, str] = {}
    for row in _rows(full.lake, "SELECT * FROM command_plugins"):
        ids = (row["command_id"], row["instance_id"], row["name"])
        for url in (row["standard_output_url"], row["standard_error_url"]):
            if url:
                urls[urlsplit(url).path.lstrip("/")] = ids
        names[(row["command_id"], row["instance_id"], row["name"].replace(":", "-"))] = row["name"]
    selected = {(r["command_id"], r["instance_id"], r["name"]) for r in full.rows}
    requests = _output_requests(full.log)
    per_plugin: dict[tuple, Counter] = {}
    for entry in requests:
        command, instance, plugin = _plugin_of(entry, urls)
        key = (command, instance, names.get((command, instance, plugin), plugin))
        assert key in selected, key
        per_plugin.setdefault(key, Counter())[entry["service"]] += 1
    for counts in per_plugin.values():
        assert counts["ssm"] <= 1 and counts["s3"] <= 2 and counts["logs"] <= 2 * LOG_PAGES
    assert 0 < len(requests) <= REQUESTS_PER_PLUGIN * len(selected)
    # The walk is done before the first output is read: it never waits for them.
    walk = [i for i, e in enumerate(full.log) if e["operation"] == "ListCommandInvocations"]
    first = min(full.log.index(e) for e in requests)
    assert max(walk) < first


def test_redaction_applies_before_anything_is_stored(emulator, prefect_api, tmp_path):
    redacted = Night(emulator, tmp_path / "lake", redact=("aws",))
    secrets = emulator.planted_secrets(ACCOUNT, REGION)
    stored = {(r["command_id"], r["instance_id"], r["name"]): r for r in redacted.rows}
    checked = 0
    everything = "".join((r["stdout"] or "") + (r["stderr"] or "") for r in redacted.rows)
    for secret in secrets:
        assert secret["access_key_id"] not in everything
        assert secret["secret_access_key"] not in everything
        row = stored.get((secret["CommandId"], secret["InstanceId"], secret["PluginName"]))
        if row is not None and len(row[secret["stream"]] or "") > secret["offset"] + 40:
            text = row[secret["stream"]]
            assert "AWS_ACCESS_KEY_ID=[REDACTED]" in text
            assert "AWS_SECRET_ACCESS_KEY=[REDACTED]" in text
            checked += 1
    assert checked, "a planted secret was within a stored output"


def test_the_cap_cuts_each_output_and_is_recorded(emulator, prefect_api, tmp_path):
    cap = 4096
    capped = Night(emulator, tmp_path / "lake", output_cap=cap)
    seen = Counter()
    for row in capped.rows:
        truth = _truth(emulator, row)
        for stream in ("stdout", "stderr"):
            text, source = row[stream], row[f"{stream}_source"]
            if source is None:
                continue
            whole = truth[stream].encode()
            if source == "get_command_invocation":
                whole = _cut(truth[stream], LIMITS[stream]).encode()
            if len(whole) > cap:
                assert row[f"{stream}_capped_at"] == cap
                assert len(text.encode()) <= cap and whole.startswith(text.encode())
                assert len(text.encode()) > cap - 4  # cut at a character boundary
                assert row[f"{stream}_bytes"] == len(whole)
                seen[source] += 1
            else:
                assert row[f"{stream}_capped_at"] is None and text.encode() == whole
    assert seen["s3"] and seen["cloudwatch"] and seen["get_command_invocation"], seen


def _cut(text: str, limit: int) -> str:
    return text if len(text) < limit else text[: limit - len(SUFFIX)] + SUFFIX


def test_failed_invocations_report_and_output_command_show_the_full_output(emulator, full, capsys):
    failures = _rows(
        full.lake,
        "SELECT * FROM failed_invocations WHERE full_stderr_tail <> '' ORDER BY command_id",
    )
    assert failures
    failure = failures[0]
    (row,) = [
        r
        for r in full.rows
        if (r["command_id"], r["instance_id"], r["plugin_index"])
        == (failure["command_id"], failure["instance_id"], failure["failed_plugin_index"])
    ]
    lines = row["stderr"].rstrip("\n").split("\n")
    assert failure["full_stderr_tail"] == "\n".join(lines[-20:])

    assert main(["output", "--lake", str(full.lake), row["command_id"], row["instance_id"]]) == 0
    printed = capsys.readouterr().out
    assert row["stderr"].rstrip("\n") in printed and (row["stdout"] or "").rstrip("\n") in printed
    assert re.search(rf"plugin {row['plugin_index']} {re.escape(row['name'])}: ", printed)

    assert main(["output", "--lake", str(full.lake), row["command_id"], "i-0000000000"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no full output stored" in error

    requested = failure["requested_date_time"].date()
    html = build_report(Lake.open(full.lake), start=requested, end=requested)
    assert 'id="failure-outputs"' in html and "Last lines of" in html
    assert "No full output stored" not in html
    same_day = [f for f in failures if f["requested_date_time"].date() == requested]
    assert any(escape(f["full_stderr_tail"]) in html for f in same_day)


def test_output_requests_are_paced_under_a_throttle(prefect_api, tmp_path):
    """GetCommandInvocation throttled at 4 requests/s (its own bucket): its pacer holds the
    readers near that rate, so no output is given up and the run succeeds."""
    with Emulator(spec(regions=(REGION,))) as throttled:
        throttled.set_faults({"regions": {REGION: {"throttle_rate": 4, "throttle_burst": 1}}})
        first = len(throttled.request_log)
        summary = night(throttled, tmp_path / "lake", regions=(REGION,), full_output="failed")
        log = throttled.request_log[first:]
    asked = [e for e in log if e["operation"] == "GetCommandInvocation"]
    refused = [e for e in asked if e["fault"] and "throttl" in e["fault"]]
    assert summary.exit_code == 0 and summary.results[0].outputs is not None
    assert summary.results[0].outputs.fetched and not [
        r for r in summary.results[0].outputs.reasons if "Throttl" in r
    ]
    # Paced: about a third are throttled, mostly before the pacer has measured the rate;
    # without the pacer, about two thirds (and twice the requests).
    assert len(asked) >= 10 and 2 * len(refused) <= len(asked), (len(refused), len(asked))


# Last: it adds two nights to the shared lake.
def test_a_quiet_night_reads_nothing_again_and_a_changed_state_is_read_again(emulator, full):
    again = Night(emulator, full.lake)
    assert again.summary.results[0].invocations > 0  # the lookback re-read invocations
    assert _output_requests(again.log) == []
    assert again.rows == full.rows
    # A day later: only plugins of invocations not stored before, or whose status changed.
    before = {(r["command_id"], r["instance_id"], r["plugin_index"]): r for r in again.rows}
    now = emulator.clock.now()
    emulator.clock.advance(timedelta(days=1))
    try:
        later = Night(emulator, full.lake)
    finally:
        emulator.clock.set(now)
    read = [r for r in later.rows if r["run_id"] == later.summary.run_id]
    assert read and _output_requests(later.log)
    for row in read:
        old = before.get((row["command_id"], row["instance_id"], row["plugin_index"]))
        assert old is None or old["invocation_status"] != row["invocation_status"]
    kept = [r for r in later.rows if r["run_id"] != later.summary.run_id]
    assert kept and all(
        r == before[(r["command_id"], r["instance_id"], r["plugin_index"])] for r in kept
    )
