"""One decision's walk over its candidates, and what it learns for the next decisions.

A decision walks the endpoints in the strategy's order until one admits. When the first of
them were all refused until known moments (out of quota, cooling down), the next decision
for the same candidates, strategy and output budget (a request at least as large) can pass
them all at once, without making them or asking the store about each: the store checks, in
its step, that nothing since could let them admit sooner (its generation is unchanged) and
that the soonest of those moments has not come.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .served import Attempt

if TYPE_CHECKING:
    from .._config.load import Endpoint
    from .._policy.passing import Candidate, Pick
    from .._policy.quota import Refusal

PREFIXES_KEPT = 256
"""Prefixes a router keeps (one per candidate set, strategy and output budget), at most."""


@dataclass(frozen=True, slots=True)
class Prefix:
    """The first endpoints of one order, each refused until a known moment."""

    candidates: Sequence[Endpoint]
    """The candidate sequence it was learned for (kept: prefixes are found by its id)."""
    generation: int
    prompt: int
    """The prompt tokens of the request it was learned from: it holds for larger ones."""
    until: float
    """The soonest moment one of them may admit again."""
    ids: frozenset[str]
    refusals: tuple[Refusal, ...]
    attempts: tuple[Attempt, ...]


def prefix_key(
    candidates: Sequence[Endpoint], strategy: object, params: Mapping[str, Any], needs: object
) -> tuple[object, ...]:
    """What a prefix depends on besides time and the store: the candidates, the strategy's
    order, the output budget asked for, the capabilities needed."""
    budget = (params.get("max_completion_tokens"), params.get("max_tokens"), params.get("n"))
    return (id(candidates), id(strategy), budget, needs)


def learned(
    pick: Pick, candidates: Sequence[Endpoint], prompt: int, attempts: Sequence[Attempt]
) -> Prefix | None:
    """The prefix a decision's refusals make (``attempts``: theirs, in order), if every one
    has a moment when it may admit again."""
    refusals = pick.refusals
    if pick.generation is None:  # a store that keeps none can never let a prefix pass
        return None
    if not refusals or any(r.retry_at is None for r in refusals):
        return None
    until = min(r.retry_at for r in refusals if r.retry_at is not None)
    ids = frozenset(r.endpoint for r in refusals)
    return Prefix(candidates, pick.generation, prompt, until, ids, refusals, tuple(attempts))


class Walk:
    """The candidates of one decision, made as the store asks for them (see ``quota.Walk``).

    ``first`` was made ahead (its client readied before the step); ``rest`` makes the
    others and passes over the ids in ``skip``, which :meth:`begin` fills when ``prefix``
    still holds."""

    def __init__(
        self,
        first: Candidate,
        rest: Iterator[Candidate],
        prefix: Prefix | None,
        skip: set[str],
    ) -> None:
        self.first = first
        self.rest = rest
        self.prefix = prefix
        self.skip = skip
        self.used: Prefix | None = None
        """The prefix the store let this walk pass, if any."""

    def begin(self, generation: int, now: float) -> tuple[Refusal, ...]:
        prefix = self.prefix
        if prefix is None or prefix.generation != generation or now >= prefix.until:
            return ()
        self.skip.update(prefix.ids)
        self.used = prefix
        return prefix.refusals

    def __iter__(self) -> Iterator[Candidate]:
        if self.first.endpoint not in self.skip:
            yield self.first
        yield from self.rest
