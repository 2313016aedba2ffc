"""The emulator's other APIs over HTTP: DescribeInstanceInformation, ListCommands, AssumeRole, ListAccounts."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import ClientError
from botocore.session import get_session

from emulator import Emulator, FleetSpec
from tests.conftest_emulator import DUMMY_CREDENTIALS, EMULATOR_ACCOUNT, EMULATOR_NOW, EMULATOR_SPEC
from tests.test_emulator import _aws

ACCOUNT, REGION, OTHER = EMULATOR_ACCOUNT, "us-east-1", "210987654321"
ROLE = f"arn:aws:iam::{OTHER}:role/ssm-etl-reader"
_CONFIG = Config(retries={"total_max_attempts": 1})
_TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}


def _error(call, **params) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def _wire(value):
    """botocore's parsed values back to the JSON the emulator sent."""
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000) / 1000
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _walk(client, operation: str, key: str, **params) -> list[dict]:
    pages = client.get_paginator(operation).paginate(**params)
    return [record for page in pages for record in page[key]]


def _client(emulator: Emulator, service: str, credentials=None, region: str = REGION, **config):
    credentials = credentials or {
        "aws_access_key_id": DUMMY_CREDENTIALS["aws_access_key_id"],
        "aws_secret_access_key": DUMMY_CREDENTIALS["aws_secret_access_key"],
    }
    return boto3.session.Session(**credentials).client(
        service,
        region_name=region,
        endpoint_url=emulator.url,
        config=_CONFIG.merge(Config(**config)),
    )


def _assume(emulator: Emulator, role: str = ROLE, **params) -> dict:
    answer = _client(emulator, "sts").assume_role(RoleArn=role, RoleSessionName="etl", **params)
    credentials = answer["Credentials"]
    return {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }


@pytest.fixture(scope="module")
def big():
    """A fleet large enough to have chronically unreachable instances."""
    spec = FleetSpec(seed=3, now=EMULATOR_NOW, regions=(REGION,), instances_per_region=60)
    with Emulator(spec) as running:
        yield running


# ---- DescribeInstanceInformation ------------------------------------------------------


def test_instance_information_pages_equal_ground_truth(emulator, emulator_client):
    pages = list(
        emulator_client()
        .get_paginator("describe_instance_information")
        .paginate(PaginationConfig={"PageSize": 5})
    )
    records = [r for page in pages for r in page["InstanceInformationList"]]
    assert len(pages) >= 2 and all(len(p["InstanceInformationList"]) == 5 for p in pages[:-1])
    assert _wire(records) == emulator.instances_ground_truth(ACCOUNT, REGION)
    assert [r["InstanceId"] for r in records] == sorted(r["InstanceId"] for r in records)


def test_instance_information_defaults_to_ten_per_page(big):
    first = _client(big, "ssm").describe_instance_information()
    assert len(first["InstanceInformationList"]) == 10 and first["NextToken"]


def test_every_instance_that_ran_a_command_is_listed_plus_some_that_never_did(emulator):
    for region in EMULATOR_SPEC.regions:
        listed = {r["InstanceId"]: r for r in emulator.instances_ground_truth(ACCOUNT, region)}
        ran = {r["InstanceId"] for r in emulator.ground_truth(ACCOUNT, region)}
        assert ran <= set(listed)
        fresh = set(listed) - ran
        assert 1 <= len(fresh) <= 3
        assert all(listed[i]["AssociationStatus"] == "Pending" for i in fresh)
        assert all(listed[i]["LastPingDateTime"] > EMULATOR_NOW.timestamp() - 86_400 for i in fresh)


def test_instance_information_fields(emulator):
    now = EMULATOR_NOW.timestamp()
    records = emulator.instances_ground_truth(ACCOUNT, REGION)
    for record in records:
        managed = record["InstanceId"].startswith("mi-")
        assert record["ResourceType"] == ("ManagedInstance" if managed else "EC2Instance")
        assert record["SourceId"] == record["InstanceId"]
        assert record["SourceType"] == (
            "AWS::SSM::ManagedInstance" if managed else "AWS::EC2::Instance"
        )
        assert ("Name" in record) <= managed and ("ActivationId" in record) == managed
        assert record["IsLatestVersion"] == (record["AgentVersion"] == "3.3.1142.0")
        assert record["PlatformType"] in ("Linux", "Windows", "MacOS")
        if record["PingStatus"] == "Online":
            assert now - 300 <= record["LastPingDateTime"] <= now
    assert {"EC2Instance", "ManagedInstance"} == {r["ResourceType"] for r in records}
    assert any("Name" in r for r in records)


def test_unreachable_instances_have_lost_their_connection(big):
    records = big.instances_ground_truth(ACCOUNT, REGION)
    lost = [r for r in records if r["PingStatus"] == "ConnectionLost"]
    offline = datetime.combine(big.spec.offline_since, datetime.min.time(), UTC).timestamp()
    assert len(lost) == 1 and lost[0]["LastPingDateTime"] < offline
    undeliverable = {
        r["Status"] + "/" + r["StatusDetails"]
        for r in big.ground_truth(ACCOUNT, REGION)
        if r["InstanceId"] == lost[0]["InstanceId"] and r["RequestedDateTime"] >= offline
    }
    assert undeliverable == {"Failed/Undeliverable"}


def test_instance_information_filters_and_together(big):
    client = _client(big, "ssm")
    records = big.instances_ground_truth(ACCOUNT, REGION)

    def ids(**params) -> set[str]:
        return {
            r["InstanceId"]
            for r in _walk(
                client, "describe_instance_information", "InstanceInformationList", **params
            )
        }

    linux = {r["InstanceId"] for r in records if r["PlatformType"] == "Linux"}
    assert ids(Filters=[{"Key": "PlatformTypes", "Values": ["Linux"]}]) == linux
    online_ec2_linux = {
        r["InstanceId"] for r in records
        if r["PingStatus"] == "Online" and r["ResourceType"] == "EC2Instance" and r["PlatformType"] == "Linux"
    }  # fmt: skip
    both = [
        {"Key": "PingStatus", "Values": ["Online"]},
        {"Key": "ResourceType", "Values": ["EC2Instance"]},
        {"Key": "PlatformTypes", "Values": ["Linux"]},
    ]
    assert ids(Filters=both) == online_ec2_linux and online_ec2_linux < linux
    some = sorted(linux)[:3]
    assert ids(Filters=[{"Key": "InstanceIds", "Values": some}]) == set(some)
    legacy = [
        {"key": "InstanceIds", "valueSet": some},
        {"key": "PlatformTypes", "valueSet": ["Windows"]},
    ]
    assert ids(InstanceInformationFilterList=legacy) == set()
    assert ids(Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost", "Inactive"]}]) == {
        r["InstanceId"] for r in records if r["PingStatus"] != "Online"
    }


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"MaxResults": 4}, "ValidationException"),
        ({"MaxResults": 51}, "ValidationException"),
        ({"Filters": [{"Key": "PingStatus", "Values": []}]}, "ValidationException"),
        ({"InstanceInformationFilterList": [{"key": "Bogus", "valueSet": ["x"]}]}, "ValidationException"),
        ({"Filters": [{"Key": "Bogus", "Values": ["x"]}]}, "InvalidFilterKey"),
        ({"Filters": [{"Key": "PingStatus", "Values": ["Asleep"]}]}, "InvalidInstanceInformationFilterValue"),
        ({"Filters": [{"Key": "ResourceType", "Values": ["EC2Instance", "ManagedInstance"]}]}, "InvalidInstanceInformationFilterValue"),
        ({"Filters": [{"Key": "InstanceIds", "Values": ["i-123"]}]}, "InvalidInstanceInformationFilterValue"),
        (
            {
                "Filters": [{"Key": "PingStatus", "Values": ["Online"]}],
                "InstanceInformationFilterList": [{"key": "PingStatus", "valueSet": ["Online"]}],
            },
            "InvalidInstanceInformationFilterValue",
        ),
        ({"NextToken": "garbage"}, "InvalidNextToken"),
    ],
)  # fmt: skip
def test_instance_information_refuses_bad_requests(emulator_client, params, code):
    client = emulator_client(parameter_validation=False)
    assert _error(client.describe_instance_information, **params)[:2] == (code, 400)


def test_instance_information_messages(emulator_client):
    client = emulator_client(parameter_validation=False)
    _, _, message = _error(client.describe_instance_information, MaxResults=4)
    assert message == (
        "1 validation error detected: Value '4' at 'maxResults' failed to satisfy constraint: "
        "Member must have value greater than or equal to 5"
    )
    two = [{"Key": "ResourceType", "Values": ["EC2Instance", "ManagedInstance"]}]
    assert _error(client.describe_instance_information, Filters=two)[2] == (
        "ResourceType filter may contain only one value."
    )


def test_tokens_do_not_cross_operations(emulator_client):
    client = emulator_client()
    token = client.list_command_invocations(MaxResults=5)["NextToken"]
    assert _error(client.describe_instance_information, NextToken=token)[0] == "InvalidNextToken"
    assert _error(client.list_commands, NextToken=token)[0] == "InvalidNextToken"


# ---- ListCommands ---------------------------------------------------------------------


def test_list_commands_pages_equal_ground_truth_newest_first(emulator, emulator_client):
    client = emulator_client()
    commands = _walk(client, "list_commands", "Commands", PaginationConfig={"PageSize": 7})
    truth = emulator.commands_ground_truth(ACCOUNT, REGION)
    assert _wire(commands) == truth and len(truth) > 50
    requested = [c["RequestedDateTime"] for c in truth]
    assert requested == sorted(requested, reverse=True)
    first = client.list_commands()
    assert len(first["Commands"]) == 50 and first["NextToken"]


def test_commands_agree_with_their_invocations(emulator):
    for region in EMULATOR_SPEC.regions:
        commands = {c["CommandId"]: c for c in emulator.commands_ground_truth(ACCOUNT, region)}
        invocations: dict[str, list[dict]] = {}
        for record in emulator.ground_truth(ACCOUNT, region):
            invocations.setdefault(record["CommandId"], []).append(record)
        assert set(invocations) == set(commands)
        for command_id, records in invocations.items():
            command = commands[command_id]
            statuses = [r["Status"] for r in records]
            assert command["DocumentName"] == records[0]["DocumentName"]
            assert command["RequestedDateTime"] == records[0]["RequestedDateTime"]
            assert command["TargetCount"] == len(records)
            assert command["CompletedCount"] == sum(s in _TERMINAL for s in statuses)
            assert command["ErrorCount"] == sum(
                r["Status"] == "Failed" or r["StatusDetails"] == "ExecutionTimedOut"
                for r in records
            )
            assert command["DeliveryTimedOutCount"] == sum(
                r["StatusDetails"] == "DeliveryTimedOut" for r in records
            )
            if not set(statuses) <= _TERMINAL:
                assert command["Status"] in ("Pending", "InProgress")
            elif set(statuses) == {"Success"}:
                assert (command["Status"], command["StatusDetails"]) == ("Success", "Success")
            else:
                assert command["Status"] in ("Failed", "TimedOut")
            if command["Targets"]:
                assert command["InstanceIds"] == []
            else:
                assert command["InstanceIds"] == [r["InstanceId"] for r in records]


def test_patch_commands_say_install_or_scan(emulator):
    patch = [
        c
        for region in EMULATOR_SPEC.regions
        for c in emulator.commands_ground_truth(ACCOUNT, region)
        if c["DocumentName"] == "AWS-RunPatchBaseline"
    ]
    operations = Counter(c["Parameters"]["Operation"][0] for c in patch)
    assert set(operations) == {"Install", "Scan"} and operations["Scan"] < operations["Install"]
    assert all(c["Parameters"]["RebootOption"] == ["RebootIfNeeded"] for c in patch)
    assert all(
        c["Targets"] == [{"Key": "tag:PatchGroup", "Values": ["prod", "stage", "dev", "qa"]}]
        for c in patch
    )
    shell = [
        c
        for c in emulator.commands_ground_truth(ACCOUNT, REGION)
        if c["DocumentName"] == "AWS-RunShellScript"
    ]
    assert all(c["Parameters"]["commands"] and c["InstanceIds"] for c in shell)


def test_a_command_is_in_progress_until_its_last_invocation_settles(emulator):
    in_flight = [
        c for c in emulator.commands_ground_truth(ACCOUNT, REGION) if c["Status"] == "InProgress"
    ]
    assert in_flight and any(c["Comment"].startswith("full backup") for c in in_flight)


def test_list_commands_filters(emulator, emulator_client):
    client = emulator_client()
    truth = emulator.commands_ground_truth(ACCOUNT, REGION)

    def ids(*filters: tuple[str, str], **params) -> set[str]:
        pairs = [{"key": k, "value": v} for k, v in filters]
        extra = {"Filters": pairs} if pairs else {}
        return {
            c["CommandId"] for c in _walk(client, "list_commands", "Commands", **extra, **params)
        }

    executing = ids(("ExecutionStage", "Executing"))
    complete = ids(("ExecutionStage", "Complete"))
    assert executing and complete and not executing & complete
    assert executing | complete == {c["CommandId"] for c in truth}
    assert ids(("Status", "Failed")) == {c["CommandId"] for c in truth if c["Status"] == "Failed"}
    patch = {c["CommandId"] for c in truth if c["DocumentName"] == "AWS-RunPatchBaseline"}
    assert ids(("DocumentName", "AWS-RunPatchBaseline")) == patch
    middle = truth[len(truth) // 2]
    moment = datetime.fromtimestamp(middle["RequestedDateTime"], UTC).isoformat()
    newer = {c["CommandId"] for c in truth if c["RequestedDateTime"] >= middle["RequestedDateTime"]}
    assert ids(("InvokedAfter", moment)) == newer
    assert ids(CommandId=middle["CommandId"]) == {middle["CommandId"]}
    instance = emulator.ground_truth(ACCOUNT, REGION)[0]["InstanceId"]
    ran = {
        r["CommandId"]
        for r in emulator.ground_truth(ACCOUNT, REGION)
        if r["InstanceId"] == instance
    }
    assert ids(InstanceId=instance) == ran


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"MaxResults": 0}, "ValidationException"),
        ({"MaxResults": 51}, "ValidationException"),
        ({"CommandId": "abc"}, "ValidationException"),
        ({"InstanceId": "i-123"}, "ValidationException"),
        ({"Filters": [{"key": "ExecutionStage", "value": "Running"}]}, "ValidationException"),
        ({"Filters": [{"key": "Status", "value": "Delayed"}]}, "ValidationException"),
        ({"Filters": [{"key": "InvokedAfter", "value": "yesterday"}]}, "ValidationException"),
        ({"NextToken": "garbage"}, "InvalidNextToken"),
    ],
)
def test_list_commands_refuses_bad_requests(emulator_client, params, code):
    client = emulator_client(parameter_validation=False)
    assert _error(client.list_commands, **params)[:2] == (code, 400)


def test_the_aws_cli_lists_commands(emulator, tmp_path):
    done = _aws(
        emulator, tmp_path, "ssm", "list-commands", "--region", "eu-west-1", "--output", "json",
        "--page-size", "20",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = json.loads(done.stdout)["Commands"]
    truth = emulator.commands_ground_truth(ACCOUNT, "eu-west-1")
    assert [c["CommandId"] for c in commands] == [c["CommandId"] for c in truth]


# ---- STS AssumeRole -------------------------------------------------------------------


def test_assumed_role_credentials_act_on_the_other_account(emulator):
    answer = _client(emulator, "sts").assume_role(
        RoleArn=ROLE, RoleSessionName="etl", ExternalId="acme-etl", DurationSeconds=900
    )
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and credentials["SessionToken"]
    left = credentials["Expiration"] - datetime.now(UTC)
    assert timedelta(seconds=890) < left <= timedelta(seconds=900)
    arn = f"arn:aws:sts::{OTHER}:assumed-role/ssm-etl-reader/etl"
    assert answer["AssumedRoleUser"]["Arn"] == arn
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":etl")
    other = _assume(emulator)
    identity = _client(emulator, "sts", other).get_caller_identity()
    assert (identity["Account"], identity["Arn"]) == (OTHER, arn)
    ssm = _client(emulator, "ssm", other)
    records = _walk(ssm, "list_command_invocations", "CommandInvocations")
    theirs = emulator.ground_truth(OTHER, REGION)
    assert [r["CommandId"] for r in records] == [r["CommandId"] for r in theirs]
    ours = {r["InstanceId"] for r in emulator.ground_truth(ACCOUNT, REGION)}
    instances = _walk(ssm, "describe_instance_information", "InstanceInformationList")
    assert {r["InstanceId"] for r in instances}.isdisjoint(ours)
    assert _wire(_walk(ssm, "list_commands", "Commands")) == emulator.commands_ground_truth(
        OTHER, REGION
    )
    assert _client(emulator, "sts").get_caller_identity()["Account"] == ACCOUNT


def test_expired_and_forged_credentials_are_refused(emulator):
    other = _assume(emulator)
    assert emulator.expire_credentials() == 1
    code, status, message = _error(_client(emulator, "ssm", other).list_commands)
    assert (code, status, message) == (
        "ExpiredTokenException",
        400,
        "The security token included in the request is expired",
    )
    assert _error(_client(emulator, "sts", other).get_caller_identity)[:2] == ("ExpiredToken", 403)
    forged = {**_assume(emulator), "aws_session_token": "not-the-token"}
    code, _, _ = _error(_client(emulator, "ssm", forged).describe_instance_information)
    assert code == "UnrecognizedClientException"


def test_short_lived_credentials_expire_and_refresh(emulator):
    emulator.set_credential_seconds(1)
    sts = _client(emulator, "sts")
    answer = sts.assume_role(RoleArn=ROLE, RoleSessionName="etl", DurationSeconds=3600)
    assert answer["Credentials"]["Expiration"] - datetime.now(UTC) <= timedelta(seconds=1)
    fixed = _client(emulator, "ssm", _assume(emulator))
    time.sleep(1.1)
    assert _error(fixed.list_commands)[0] == "ExpiredTokenException"

    def refresh() -> dict:
        credentials = sts.assume_role(RoleArn=ROLE, RoleSessionName="etl")["Credentials"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = RefreshableCredentials.create_from_metadata(
        refresh(), refresh, "assume-role"
    )
    refreshing = boto3.session.Session(botocore_session=botocore_session).client(
        "ssm", region_name=REGION, endpoint_url=emulator.url, config=_CONFIG
    )
    before = sum(e["operation"] == "AssumeRole" for e in emulator.request_log)
    for _ in range(2):
        time.sleep(1.1)
        assert refreshing.list_commands(MaxResults=1)["Commands"]
    assert sum(e["operation"] == "AssumeRole" for e in emulator.request_log) > before


def test_denied_accounts_and_bad_requests(emulator):
    spec = FleetSpec(**{**EMULATOR_SPEC.__dict__, "deny_assume_role": ("222222222222",)})
    with Emulator(spec) as denying:
        code, status, message = _error(
            _client(denying, "sts").assume_role,
            RoleArn="arn:aws:iam::222222222222:role/ssm-etl-reader",
            RoleSessionName="etl",
        )
        assert (code, status) == ("AccessDenied", 403)
        assert message == (
            f"User: arn:aws:iam::{ACCOUNT}:user/emulator is not authorized to perform: "
            "sts:AssumeRole on resource: arn:aws:iam::222222222222:role/ssm-etl-reader"
        )
    closed = next(a for a in emulator.organization if a.state == "CLOSED")
    role = f"arn:aws:iam::{closed.id}:role/ssm-etl-reader"
    assert (
        _error(_client(emulator, "sts").assume_role, RoleArn=role, RoleSessionName="etl")[0]
        == "AccessDenied"
    )
    loose = _client(emulator, "sts", parameter_validation=False)
    code, status, message = _error(
        loose.assume_role, RoleArn=ROLE, RoleSessionName="etl", DurationSeconds=899
    )
    assert (code, status) == ("ValidationError", 400)
    assert message == (
        "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 900"
    )
    bad = {"RoleArn": "arn:aws:iam::12345:role/ssm-etl", "RoleSessionName": "etl"}
    assert _error(loose.assume_role, **bad)[:3] == (
        "ValidationError",
        400,
        "Request ARN is invalid",
    )
    assert _error(loose.assume_role, RoleArn=ROLE, RoleSessionName="a/b")[0] == "ValidationError"
    chained = _client(emulator, "sts", _assume(emulator))
    code, _, message = _error(
        chained.assume_role, RoleArn=ROLE, RoleSessionName="etl", DurationSeconds=7200
    )
    assert code == "ValidationError" and "role chaining" in message


# ---- Organizations ListAccounts -------------------------------------------------------


def test_list_accounts_pages_through_the_default_organization(emulator):
    client = _client(emulator, "organizations")
    pages = list(client.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": 4}))
    accounts = [a for page in pages for a in page["Accounts"]]
    assert [len(p["Accounts"]) for p in pages] == [4, 2]
    assert accounts[0]["Id"] == ACCOUNT and len({a["Id"] for a in accounts}) == 6
    states = {a["Name"]: (a["Status"], a["State"]) for a in accounts}
    assert sorted(states.values()).count(("ACTIVE", "ACTIVE")) == 3
    assert states["acme-sandbox"] == ("SUSPENDED", "SUSPENDED")
    assert states["acme-legacy"] == ("PENDING_CLOSURE", "PENDING_CLOSURE")
    assert states["acme-retired"] == ("SUSPENDED", "CLOSED")
    assert all(
        a["Arn"].startswith(f"arn:aws:organizations::{ACCOUNT}:account/o-")
        and a["Arn"].endswith(a["Id"])
        for a in accounts
    )
    assert len(client.list_accounts()["Accounts"]) == 6


def test_list_accounts_errors(emulator):
    loose = _client(emulator, "organizations", parameter_validation=False)
    with pytest.raises(ClientError) as caught:
        loose.list_accounts(MaxResults=21)
    error = caught.value.response["Error"]
    assert (error["Code"], caught.value.response["Reason"]) == (
        "InvalidInputException",
        "MAX_VALUE_EXCEEDED",
    )
    assert _error(loose.list_accounts, NextToken="garbage")[0] == "InvalidInputException"
    member = _client(emulator, "organizations", _assume(emulator))
    assert _error(member.list_accounts)[:2] == ("AccessDeniedException", 400)


def test_a_configured_organization_and_none(emulator):
    accounts = ({"Id": ACCOUNT, "Name": "root"}, {"Id": OTHER, "State": "CLOSED"})
    with Emulator(FleetSpec(**{**EMULATOR_SPEC.__dict__, "organization": accounts})) as configured:
        listed = _client(configured, "organizations").list_accounts()["Accounts"]
        assert [(a["Id"], a["Status"], a["State"]) for a in listed] == [
            (ACCOUNT, "ACTIVE", "ACTIVE"), (OTHER, "SUSPENDED", "CLOSED")
        ]  # fmt: skip
    with Emulator(FleetSpec(**{**EMULATOR_SPEC.__dict__, "organization": ()})) as alone:
        code = _error(_client(alone, "organizations").list_accounts)[0]
        assert code == "AWSOrganizationsNotInUseException"
    with pytest.raises(ValueError, match="12 digits"):
        FleetSpec(organization=({"Id": "123"},))


# ---- the admin API --------------------------------------------------------------------


def _admin(url: str, path: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_admin_ground_truths_and_credentials(emulator):
    url = emulator.url
    assert _admin(url, f"/_emulator/commands?region={REGION}") == emulator.commands_ground_truth(
        ACCOUNT, REGION
    )
    assert _admin(url, f"/_emulator/instances?region={REGION}&account={OTHER}") == (
        emulator.instances_ground_truth(OTHER, REGION)
    )
    assert _admin(url, "/_emulator/credentials") == {"seconds": None}
    assert _admin(url, "/_emulator/credentials", "POST", {"seconds": 5}) == {"seconds": 5}
    _assume(emulator)
    assert _admin(url, "/_emulator/credentials", "DELETE") == {"expired": 1}
