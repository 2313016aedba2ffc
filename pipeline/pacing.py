"""Pace one account's and region's ListCommandInvocations just under SSM's throttle.

SSM throttles each account and region with a token bucket. botocore's
adaptive retry mode answers a throttle by cutting its send rate to 70% of
what it measured and climbing back along a CUBIC curve over several
seconds; against a 20 requests/s bucket a region's walk held about 17
requests/s that way, in waves of 8 to 34. A walk has many time slices
waiting to send, so what costs throughput is not a throttled request (it is
retried, another slice uses the token) but sending below the bucket's rate.

`Pacer` is therefore an AIMD token bucket. It does not pace until the
first throttle (an API that never throttles is read as fast as the slices
go), then paces at what the API served in the last second; it gives back
5% at each further throttle (at most once a second, and never above what
the API actually served in the last second), and takes back half a
request per second for every second in which senders had to wait for it.
Throttles stay rare, and each costs one retried request. Retries themselves
stay botocore's (standard mode), and their attempts wait for the pacer like
any other request. Given the walk's stop event, the pacer ends a wait as soon
as it is set, and lets no attempt go after it (Interrupted instead).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from botocore.retries.standard import RetryEventAdapter, ThrottlingErrorDetector

from .paging import check, pause

OPERATION = "ListCommandInvocations"
ASSUMED_RATE = 20.0
"""Requests per second SSM serves one account and region, roughly (what slices are sized
for); where pacing starts if the very first request is throttled."""

_is_throttle = ThrottlingErrorDetector(retry_event_adapter=RetryEventAdapter()).is_throttling_error


class Pacer:
    """A token bucket whose rate follows the API's throttling. Thread-safe.

    Without a starting rate it does not pace at all until the first throttle:
    an API that never throttles is read as fast as the slices can go.
    """

    DECREASE = 0.95
    INCREASE = 0.5
    """Requests per second gained per second of senders waiting for the pacer."""
    FLOOR = 0.5
    WINDOW = 1.0
    """Seconds between two cuts, and over which the API's served rate is measured."""

    def __init__(
        self,
        rate: float | None = None,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"a pacer's rate must be positive, not {rate!r}")
        self.rate = None if rate is None else float(rate)
        self._burst = burst
        self._clock = clock
        self._stop = stop
        self._sleep = sleep or (lambda seconds: pause(seconds, stop))
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._filled = clock()
        self._last_cut = float("-inf")
        self._started: float | None = None
        self._waited = False
        self._served: deque[float] = deque()
        self.throttles = 0

    @property
    def burst(self) -> float:
        """Requests that may go at once after a pause: as given, or one second's worth."""
        if self._burst is not None:
            return float(self._burst)
        return max(1.0, self.rate or 1.0)

    def wait(self) -> float:
        """Block until this request may go; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            if self._started is None:
                self._started = now
            if self.rate is None:
                return 0.0
            self._refill(now)
            self._tokens -= 1  # a debt is a place in the queue
            delay = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self._waited = self._waited or delay > 0
        if delay > 0:
            self._sleep(delay)
        return delay

    def served(self) -> None:
        """A response that was not a throttle."""
        with self._lock:
            now = self._clock()
            self._served.append(now)
            self._forget(now)
            if self.rate is not None and self._waited:  # the pacer limits the rate
                self.rate += self.INCREASE / self.rate
                self._waited = False

    def throttled(self) -> None:
        """A throttle: the API's bucket is empty, so is ours, and the rate comes down."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            self._refill(now)
            self._tokens = min(self._tokens, 0.0)
            if now - self._last_cut < self.WINDOW:
                return  # the same burst of throttles: one cut is enough
            self._last_cut = now
            self._forget(now)
            # What the API served in the last second (or since the first request).
            span = 0.0 if self._started is None else min(self.WINDOW, now - self._started)
            measured = len(self._served) / span if span > 0 else 0.0
            if self.rate is None:  # the first throttle: pacing starts
                self.rate = max(self.FLOOR, measured or ASSUMED_RATE)
            else:
                cut = self.rate * self.DECREASE
                self.rate = max(self.FLOOR, min(cut, measured) if measured else cut)

    def _refill(self, now: float) -> None:
        rate = self.rate or 0.0
        self._tokens = min(self.burst, self._tokens + (now - self._filled) * rate)
        self._filled = now

    def _forget(self, now: float) -> None:
        while self._served and self._served[0] < now - self.WINDOW:
            self._served.popleft()

    def attach(self, client: Any, operation: str = OPERATION) -> Pacer:
        """Pace every attempt of `operation` by `client` (retries included)."""
        service = client.meta.service_model.service_id.hyphenize()

        def before_send(**_: Any) -> None:
            check(self._stop)
            self.wait()

        def needs_retry(**kwargs: Any) -> None:
            response = kwargs.get("response")
            if response is None:
                return  # a connection error says nothing about the rate
            if _is_throttle(**kwargs):
                self.throttled()
            elif response[0].status_code < 300:
                self.served()

        client.meta.events.register(f"before-send.{service}.{operation}", before_send)
        client.meta.events.register(f"needs-retry.{service}.{operation}", needs_retry)
        return self
