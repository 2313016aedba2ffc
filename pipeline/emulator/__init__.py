"""A wire-level stand-in for AWS SSM, STS and EC2: the demo's, the tests' and users' offline AWS."""

from .faults import FaultSpec, RegionFaults
from .fleet import Clock, FleetSpec
from .server import Emulator

__all__ = ["Clock", "Emulator", "FaultSpec", "FleetSpec", "RegionFaults"]
