"""The fake provider's ingress holds and its trace of admissions.

A real provider counts a request when it *arrives*, which can be a few hundred milliseconds
after the client sent it (a cold TLS connection, a slow network). The fake can hold a request
before counting it (see :class:`~llamux._fake_provider.FakeEndpoint` ``ingress`` and
:meth:`~llamux._fake_provider.FakeProvider.set_ingress`) and keeps, per endpoint, a
:class:`FakeAdmission` for each request: when it counted or refused it, and why.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FakeAdmission", "FakeHold", "hold_on_clock"]


@dataclass(frozen=True)
class _Entry:
    """How a request came in: the fake's clock then, its hold, its x-request-id."""

    entered: float
    held: float
    request_id: str


@dataclass(frozen=True)
class FakeAdmission:
    """What the fake did with one request (of any kind), read from its trace.

    ``at`` is the fake's clock when it counted the request against its limits (admitted) or
    checked and refused it, after any ingress hold; for an injected fault, when it failed it.
    ``status`` is 200 when admitted (``cut`` tells an answer cut mid-way), 429 when a limit
    refused it (``limit`` names it: ``rpm``, ``tpd``, ...; ``retry_in`` is the seconds until it
    would fit, None if never), or the injected status (0: dropped). ``tokens`` is what it
    charged (admitted: prompt plus completion) or asked for (refused: prompt plus the output
    budget). ``entered`` is the fake's clock when the request came in, ``held`` the seconds it
    was held before being counted. ``kind`` is the request's: ``chat``, ``embeddings``,
    ``responses`` or ``completions``; status 404 (tokens 0) is a kind the endpoint does not
    serve.
    """

    endpoint: str
    at: float
    status: int
    limit: str | None
    tokens: int
    entered: float
    held: float
    request_id: str
    cut: bool = False
    retry_in: float | None = None
    kind: str = "chat"

    @property
    def admitted(self) -> bool:
        """Counted against the endpoint's limits (served, or cut after admission)."""
        return self.status == 200


@dataclass(frozen=True)
class FakeHold:
    """One ingress hold, passed to a ``hold`` hook: ``seconds`` for a request to ``endpoint``
    that came in at ``entered`` on the fake's clock."""

    endpoint: str
    seconds: float
    entered: float


class _Advancing(Protocol):
    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


def hold_on_clock(clock: _Advancing) -> Callable[[FakeHold], None]:
    """A ``hold`` hook that passes ingress holds on ``clock`` (a FakeClock) instead of sleeping.

    Each hold moves the clock forward to at least ``entered + seconds``, never back: held one
    after another, requests of 0.4 s arrive 0.4 s apart; held at once (several threads), they
    all arrive 0.4 s after the first came in, as on a real network. Share the clock with the
    router (``FakeProvider(..., clock=clock.now, hold=hold_on_clock(clock))`` and
    ``Router(..., clock=clock)``) so the router sees the answer come back after the hold.
    """
    lock = threading.Lock()

    def hold(h: FakeHold) -> None:
        with lock:
            clock.advance(max(0.0, h.entered + h.seconds - clock.now()))

    return hold


def check_seconds(what: str, seconds: float) -> None:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"{what} must be a finite number of seconds >= 0, not {seconds!r}")
