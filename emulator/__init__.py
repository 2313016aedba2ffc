"""A wire-level stand-in for AWS SSM, S3, CloudWatch Logs, STS, EC2 and Organizations: the demo's, the tests' and users' offline AWS."""

from .clock import Clock
from .faults import FaultSpec, RegionFaults
from .fleet import FleetSpec
from .server import Emulator

__all__ = ["Clock", "Emulator", "FaultSpec", "FleetSpec", "RegionFaults"]
