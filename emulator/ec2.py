"""EC2 DescribeRegions: which regions a walk should visit, opt-in ones included."""

from __future__ import annotations

from .ssm import ApiError

STANDARD_REGIONS = (
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1",
    "ap-southeast-2", "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2",
    "eu-west-3", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2",
)  # fmt: skip
OPT_IN_REGIONS = (
    "af-south-1", "ap-east-1", "ap-south-2", "ap-southeast-3", "eu-central-2", "eu-south-1",
    "il-central-1", "me-central-1", "me-south-1",
)  # fmt: skip
_EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def describe_regions(
    params: dict[str, str], enabled: tuple[str, ...], disabled: tuple[str, ...], request_id: str
) -> str:
    """DescribeRegions' XML: RegionNames, AllRegions and the three filters AWS documents."""
    rows = [(name, "opt-in-not-required") for name in STANDARD_REGIONS]
    rows += [(name, "opted-in") for name in enabled if name not in STANDARD_REGIONS]
    if params.get("AllRegions", "").lower() == "true":
        rows += [(name, "not-opted-in") for name in disabled]
    rows.sort()
    wanted = _indexed(params, "RegionName")
    if wanted:
        unknown = sorted(set(wanted) - {name for name, _ in rows} - set(disabled))
        if unknown:
            raise ApiError("InvalidParameterValue", f"Invalid region: {unknown[0]}")
        every = rows + [(n, "not-opted-in") for n in disabled]
        rows = sorted({row for row in every if row[0] in wanted})
    for index in range(1, 100):
        name = params.get(f"Filter.{index}.Name")
        if name is None:
            break
        values = set(_indexed(params, f"Filter.{index}.Value"))
        column = {"region-name": 0, "opt-in-status": 1, "endpoint": 2}.get(name)
        if column is None:
            raise ApiError("InvalidParameterValue", f"The filter '{name}' is invalid")
        rows = [r for r in rows if (*r, f"ec2.{r[0]}.amazonaws.com")[column] in values]
    items = "".join(
        f"<item><regionName>{name}</regionName><regionEndpoint>ec2.{name}.amazonaws.com"
        f"</regionEndpoint><optInStatus>{status}</optInStatus></item>"
        for name, status in rows
    )
    return (
        f'<DescribeRegionsResponse xmlns="{_EC2_NS}"><requestId>{request_id}</requestId>'
        f"<regionInfo>{items}</regionInfo></DescribeRegionsResponse>"
    )


def _indexed(params: dict[str, str], prefix: str) -> list[str]:
    values: list[str] = []
    for index in range(1, 1000):
        value = params.get(f"{prefix}.{index}")
        if value is None:
            return values
        values.append(value)
    return values
