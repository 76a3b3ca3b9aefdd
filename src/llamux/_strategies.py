"""Strategies order the candidate endpoints; the quota store alone decides admission.

A strategy is any object with ``order(endpoints, request, now)`` returning the endpoints in
the order to try them. Pure: no I/O, ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import ConfigError

if TYPE_CHECKING:
    from ._config import Endpoint


@dataclass(frozen=True, slots=True)
class Request:
    """What a strategy may look at: the request and its estimated prompt tokens."""

    messages: Sequence[Mapping[str, Any]]
    params: Mapping[str, Any]
    prompt_tokens: int
    extra: Mapping[str, Any] = field(default_factory=dict)


class Strategy(Protocol):
    """Orders candidate endpoints for one request."""

    name: str

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, now: float
    ) -> Sequence[Endpoint]: ...


class Preference:
    """The seed's rule: explicit ``priority`` (lower first) when given, else table order."""

    name = "preference"

    def order(
        self, endpoints: Sequence[Endpoint], request: Request, now: float
    ) -> Sequence[Endpoint]:
        ranked = sorted(
            enumerate(endpoints),
            key=lambda pair: (pair[1].priority is None, pair[1].priority or 0, pair[0]),
        )
        return [endpoint for _, endpoint in ranked]

    def __repr__(self) -> str:
        return "Preference()"


STRATEGIES: Mapping[str, type[Preference]] = {"preference": Preference}


def strategy_from(value: str | Strategy | None) -> Strategy:
    """A strategy from its name (``preference``) or the object itself."""
    if value is None:
        return Preference()
    if isinstance(value, str):
        cls = STRATEGIES.get(value.strip().lower())
        if cls is None:
            known = ", ".join(sorted(STRATEGIES))
            raise ConfigError(f"unknown strategy {value!r}; use one of: {known}")
        return cls()
    return value
