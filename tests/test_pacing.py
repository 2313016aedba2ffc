"""The pacer: a token bucket that starts at the assumed rate and follows SSM's throttling."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.errors import Interrupted
from pipeline.extract import AwsSettings
from pipeline.pacing import ASSUMED_RATE, Pacer

REGION = "us-east-1"


class FakeTime:
    """A clock that only moves when told, and a sleep that records instead of sleeping."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


class CountingPacer(Pacer):
    """A pacer that also counts the requests that asked it for a turn."""

    waits = 0
    _counting = threading.Lock()

    def wait(self) -> float:
        with self._counting:  # called from several threads
            self.waits += 1
        return super().wait()


def pacer(rate: float | None = 10.0, burst: float | None = None) -> tuple[Pacer, FakeTime]:
    fake = FakeTime()
    return Pacer(rate, burst, clock=fake.clock, sleep=fake.sleep), fake


def test_a_burst_goes_at_once_then_requests_queue_at_the_rate():
    p, fake = pacer(rate=10.0, burst=3)
    waits = [p.wait() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3])  # each takes the next free slot
    assert fake.slept == pytest.approx([0.1, 0.2, 0.3])


def test_the_bucket_refills_at_the_rate_up_to_the_burst():
    p, fake = pacer(rate=8.0, burst=2)
    p.wait(), p.wait()
    fake.now += 0.125
    assert p.wait() == 0.0  # one token came back
    assert p.wait() == pytest.approx(0.125)
    fake.now += 60
    assert [p.wait() for _ in range(3)][:2] == [0.0, 0.0]  # never more than the burst


def test_a_throttle_cuts_the_rate_to_what_the_api_served_and_empties_the_bucket():
    p, fake = pacer(rate=20.0, burst=20)
    for _ in range(12):  # the API served four requests a second, for three seconds
        p.wait()
        p.served()
        fake.now += 0.25
    p.throttled()
    assert p.rate == pytest.approx(4.0)  # below 20 * 0.95: the served rate wins
    assert p.wait() == pytest.approx(0.25)  # no burst right after a throttle
    assert p.throttles == 1


def test_a_throttle_early_in_a_walk_measures_since_its_first_request():
    p, fake = pacer(rate=40.0, burst=40)
    for _ in range(5):  # five served in the first quarter second: 20 a second
        p.wait()
        p.served()
        fake.now += 0.05
    p.throttled()
    assert p.rate == pytest.approx(20.0)


def test_one_cut_per_burst_of_throttles_and_never_below_the_floor():
    p, fake = pacer(rate=10.0, burst=10)
    p.throttled()
    p.throttled()  # the same second: the same overload
    assert p.rate == pytest.approx(10.0 * Pacer.DECREASE)
    for _ in range(200):
        fake.now += Pacer.WINDOW
        p.throttled()
    assert p.rate == Pacer.FLOOR
    assert p.throttles == 202


def test_the_rate_grows_only_while_senders_wait_for_it():
    p, fake = pacer(rate=10.0, burst=10)
    for _ in range(10):  # within the burst: the callers, not the pacer, set the pace
        p.wait()
        p.served()
    assert p.rate == 10.0
    p.wait()  # the eleventh waits
    p.served()
    assert p.rate == pytest.approx(10.0 + Pacer.INCREASE / 10.0)


def test_no_pacing_until_the_first_throttle_then_the_rate_the_api_served():
    p, fake = pacer(rate=None)
    for _ in range(100):  # an API that does not throttle is not slowed down
        assert p.wait() == 0.0
        p.served()
    fake.now += 2.0
    for _ in range(20):  # 20 served in the last second
        fake.now += 0.05
        p.wait()
        p.served()
    p.throttled()
    assert p.rate == pytest.approx(20.0)
    assert p.wait() == pytest.approx(1 / 20.0)


def test_a_first_request_throttled_starts_pacing_at_the_assumed_rate():
    p, _ = pacer(rate=None)
    p.wait()
    p.throttled()
    assert p.rate == ASSUMED_RATE


def test_a_rate_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        Pacer(0)


def test_every_attempt_through_botocore_is_paced_and_throttles_bring_the_rate_down(emulator):
    """An unpaced start against a throttling API: botocore's retries absorb the throttles,
    every attempt (retries included) waits for the pacer, and the pacer hears every
    throttle and starts pacing."""
    emulator.set_faults(
        {"seed": 1, "regions": {REGION: {"throttle_rate": 20, "throttle_burst": 2}}}
    )
    # Enough botocore attempts that no call runs out of them however the four threads are
    # scheduled (with the default 3, a slow machine could see one call throttled 3 times).
    settings = AwsSettings(endpoint_url=emulator.url, max_attempts=10)
    client = settings.client(settings.session(), "ssm", REGION)
    client.list_commands(MaxResults=1)  # another operation: not paced
    p = CountingPacer().attach(client)
    pages: list[int] = []

    def walk() -> None:
        for _ in range(8):
            pages.append(len(client.list_command_invocations(MaxResults=2)["CommandInvocations"]))

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pages == [2] * 32  # every call succeeded in the end
    hot = [e for e in emulator.request_log if e.get("operation") == "ListCommandInvocations"]
    throttled = [e for e in hot if e.get("fault") == "throttle"]
    assert p.waits == len(hot)  # each attempt waited its turn, retries included
    assert p.throttles == len(throttled) > 0
    assert p.rate is not None


def test_a_stop_ends_a_wait_at_once():
    stop = threading.Event()
    p = Pacer(0.1, burst=1, stop=stop)
    assert p.wait() == 0.0  # the burst; the next turn is ten seconds away
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        p.wait()
    assert time.monotonic() - started < 1.0


def test_no_attempt_goes_once_the_stop_is_set(emulator):
    stop = threading.Event()
    settings = AwsSettings(endpoint_url=emulator.url)
    client = settings.client(settings.session(), "ssm", REGION)
    Pacer(stop=stop).attach(client)
    client.list_command_invocations(MaxResults=1)
    stop.set()
    with pytest.raises(Interrupted):
        client.list_command_invocations(MaxResults=1)
    assert sum(e["operation"] == "ListCommandInvocations" for e in emulator.request_log) == 1
