"""The record of how a request was served: which endpoint, after which attempts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Attempt:
    """One endpoint considered for a request.

    ``outcome``: ``served``, ``refused`` (no quota or cooling down), ``skipped`` (no key,
    too large) or ``failed`` (the provider answered an error or nothing).
    """

    endpoint: str
    outcome: str
    reason: str = ""
    status: int | None = None
    latency: float | None = None


@dataclass(frozen=True, slots=True)
class Served:
    """Which endpoint served a completion, what it cost, and every attempt before it."""

    endpoint: str
    provider: str
    model: str
    reservation: str
    estimated_tokens: int
    tokens: int | None
    attempts: tuple[Attempt, ...]
    usd: float | None = None
    """What it cost in dollars at the endpoint's ``input_cost`` / ``output_cost``: priced
    from its usage's prompt and completion tokens when known, else the estimate; None for
    an endpoint without prices."""


_ATTRIBUTE = "_llamux_served"


def attach(response: Any, served: Served) -> None:
    """Record ``served`` on ``response`` (an SDK model) without changing its JSON."""
    object.__setattr__(response, _ATTRIBUTE, served)


def served_by(response: Any) -> Served | None:
    """How ``response`` (returned by ``Router.completion``) was served, or ``None``."""
    found = getattr(response, _ATTRIBUTE, None)
    return found if isinstance(found, Served) else None
