"""The demo's traffic: a few clients send requests through one Router on simulated time.

Each client (a thread) sends a request, waits for its answer (the router may wait for
capacity, on the demo's clock), pauses, and sends the next. In the rush they pause little:
together they offer more than the endpoints admit, so traffic moves down the preference
order and waits; in the calm at the end they pause long, below what the preferred endpoint
admits alone, so traffic settles back on it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from .._clock import ScaledClock
from .._engine.served import served_by
from .._errors import LlamuxError
from .._router import Router

CLIENTS = 4
MAX_TOKENS = 120
RUSH_PAUSE = 8.0
"""Simulated seconds a client pauses between two requests in the rush: four clients offer
about 27 a minute, more than the endpoints admit together."""
CALM_PAUSE = 60.0
"""Simulated seconds a client pauses in the calm: about 4 a minute, at most one per client
in any minute, fewer than the preferred endpoint admits alone."""
CALM_REQUESTS = 6
"""Requests of the calm at the end (at most a sixth of them all)."""
LATENCY = 1.0
"""About how long an answer takes (simulated seconds), for the paces said."""


def pace(pause: float) -> int:
    """About how many requests a minute the clients send when each pauses ``pause``."""
    return round(CLIENTS * 60 / (pause + LATENCY))


class WaitingClock(ScaledClock):
    """The demo's clock: simulated time ``speed`` times faster than real time, where every
    ``sleep`` is the router waiting for capacity, counted for the thread that waits."""

    def __init__(self, speed: float) -> None:
        super().__init__(speed)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sleeping = 0

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._local.waited = self.waited() + seconds
        with self._lock:
            self._sleeping += 1
        try:
            super().sleep(seconds)
        finally:
            with self._lock:
                self._sleeping -= 1

    def waited(self) -> float:
        """Simulated seconds this thread has waited since :meth:`restart`."""
        waited: float = getattr(self._local, "waited", 0.0)
        return waited

    def restart(self) -> None:
        """Count this thread's waits from zero."""
        self._local.waited = 0.0

    @property
    def sleeping(self) -> int:
        """How many threads wait for capacity now."""
        with self._lock:
            return self._sleeping


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request: times in simulated seconds since the demo began."""

    number: int
    endpoint: str | None
    """Who served it; None if nobody did."""
    sent: float
    done: float
    waited: float
    """Seconds it waited for capacity inside the router."""
    skipped: tuple[str, ...] = ()
    """``endpoint reason`` for each endpoint passed over (``fast-a rpm 12/12``)."""
    failed: tuple[str, ...] = ()
    """Endpoints that answered an error, so the request failed over."""
    error: str = ""


class Traffic:
    """The demo's requests, sent by ``CLIENTS`` threads; outcomes collected under a lock.

    Times are simulated seconds since the traffic was made (:meth:`now`); no request
    waits past ``deadline``.
    """

    def __init__(self, router: Router, clock: WaitingClock, requests: int, deadline: float) -> None:
        self.router, self.clock = router, clock
        self.requests, self.deadline = requests, deadline
        self.origin = clock.elapsed()
        self.calm = min(CALM_REQUESTS, requests // 6)
        """The last requests, sent at the calm pace."""
        self.calm_since: float | None = None
        """When the first client slowed down (simulated seconds), None during the rush."""
        self._outcomes: list[Outcome] = []
        self._next = 1
        self._lock = threading.Lock()
        self._stopped = False
        self._wake = threading.Event()
        """Set when the clients' pauses should end: every request is taken, or a stop."""

    def now(self) -> float:
        """Simulated seconds since the traffic was made."""
        return self.clock.elapsed() - self.origin

    def outcomes(self) -> list[Outcome]:
        """The outcomes so far, in the order the answers came."""
        with self._lock:
            return list(self._outcomes)

    def drive(self, tick: Callable[[], None], every: float) -> None:
        """Run the clients, calling ``tick`` every ``every`` real seconds until all are done."""
        pool = ThreadPoolExecutor(CLIENTS, thread_name_prefix="llamux-demo")
        try:
            futures = [pool.submit(self._client, n) for n in range(CLIENTS)]
            while wait(futures, timeout=every).not_done:
                tick()
            for future in futures:
                future.result()
        finally:
            self._stopped = True
            self._wake.set()
            pool.shutdown(wait=True, cancel_futures=True)
        tick()

    def _client(self, index: int) -> None:
        self._pause(index * RUSH_PAUSE / CLIENTS)  # the clients start one after another
        while not self._stopped:
            with self._lock:
                number, self._next = self._next, self._next + 1
            if number >= self.requests:
                self._wake.set()  # the others need not pause for more
            if number > self.requests:
                return
            self._send(number)
            self._pause(self._pause_after(number))

    def _pause_after(self, number: int) -> float:
        if number <= self.requests - self.calm:
            return RUSH_PAUSE
        with self._lock:
            if self.calm_since is None:
                self.calm_since = self.now()
        return CALM_PAUSE

    def _pause(self, seconds: float) -> None:
        """A client's own pause: simulated seconds, not a wait for capacity."""
        self._wake.wait(seconds / self.clock.speed)

    def _send(self, number: int) -> None:
        self.clock.restart()
        sent = self.now()
        messages = [{"role": "user", "content": f"Request {number}: say something kind."}]
        budget = max(0.0, self.deadline - sent)
        try:
            response = self.router.completion(messages, max_tokens=MAX_TOKENS, wait=budget)
        except LlamuxError as error:
            done = self.now()
            outcome = Outcome(number, None, sent, done, self.clock.waited(), error=str(error))
        else:
            outcome = _outcome(number, response, sent, self.now(), self.clock.waited())
        with self._lock:
            self._outcomes.append(outcome)


def _outcome(number: int, response: Any, sent: float, done: float, waited: float) -> Outcome:
    served = served_by(response)
    if served is None:
        return Outcome(number, "?", sent, done, waited)
    attempts = served.attempts
    skipped = tuple(
        f"{a.endpoint} {a.reason.removesuffix(' used')}" for a in attempts if a.outcome == "refused"
    )
    failed = tuple(a.endpoint for a in attempts if a.outcome == "failed")
    return Outcome(number, served.endpoint, sent, done, waited, skipped, failed)
