"""What a decision passes without reading buckets, and how candidates reach a store.

A store's step walks :class:`Candidate` endpoints in order (``QuotaStore.reserve_first``)
and returns a :class:`Pick`. A candidate cooling down is refused from its cool-down alone
(:func:`cooling`); one whose quota refused a request by a rule that frees nothing before a
known moment is remembered (:class:`Spent`) and refused from that memory until then, for any
request at least as large (:func:`still_spent`), unless usage in it is given back first (the
store forgets it then). Pure: the stores keep the state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from .quota import (
    Cooldown,
    Cost,
    Leases,
    Refusal,
    Reservation,
    Snapshot,
    charges,
    cooling_refusal,
    decide,
    later,
)
from .rules import USD, Scope

MADE_LIMIT = 10_000
"""Refusals a store keeps ready for resting endpoints, at most (then it starts over)."""


class Candidate(NamedTuple):
    """One endpoint a request may be reserved on: its scopes and what it would charge.

    ``ready``, if given, is called by the store once this candidate admits, before its
    charge is written: it readies the client the call will use (it must be quick). (A
    named tuple, not a dataclass: a decision makes one per endpoint it passes, and a tuple
    is made in a third of the time.)"""

    endpoint: str
    scopes: Sequence[Scope]
    cost: Cost
    ready: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Pick:
    """What one store step over candidates in order found: the reservation on the first that
    admitted (``None``: none did) and the refusals of those passed before it."""

    reservation: Reservation | None
    refusals: tuple[Refusal, ...]
    generation: int | None = None
    """The store's count of moments when something it refused could fit sooner (usage
    given back where a refusal was remembered, a reset), as this step saw it; None for a
    store that keeps none (Redis): no prefix is learned from its steps."""


def cooling(
    candidate: Candidate,
    cooldowns: Mapping[str, Cooldown],
    now: float,
    made: dict[tuple[str, Cooldown], Refusal] | None = None,
) -> Refusal | None:
    """The refusal of a candidate one of whose scopes is cooling down (or parked, or
    disabled): decided without reading its buckets. ``retry_at`` is the cool-down's end.
    ``made``: refusals already made, by endpoint and cool-down (a store's cache)."""
    if not cooldowns:
        return None
    worst: Refusal | None = None
    for scope in candidate.scopes:
        rest = cooldowns.get(scope.key)
        if rest is not None and rest.until > now:
            refusal = made.get((candidate.endpoint, rest)) if made is not None else None
            if refusal is None:
                refusal = cooling_refusal(candidate.endpoint, rest, candidate.cost)
                if made is not None:
                    if len(made) > MADE_LIMIT:
                        made.clear()
                    made[(candidate.endpoint, rest)] = refusal
            worst = later(worst, refusal)
    return worst


@dataclass(frozen=True, slots=True)
class Spent:
    """A scope that refused ``cost`` by a rule that frees nothing before ``refusal.retry_at``:
    until then it refuses any cost at least as large, unless usage in it is given back
    (a settle or release forgets it). Lets a decision pass a spent endpoint unread."""

    refusal: Refusal
    window: str
    """The refusing rule's window (its label: rolling and calendar ones differ)."""
    requests: int
    tokens: int


def spent(refusal: Refusal, scopes: Sequence[Scope], cost: Cost) -> Spent | None:
    """What a bucket refusal teaches for later decisions (None: nothing to remember)."""
    if refusal.rule is None or refusal.retry_at is None:
        return None
    for scope in scopes:
        if scope.key == refusal.scope:
            rule = scope.named.get(refusal.rule)
            if rule is not None and rule.metric != USD:  # a price is not ordered by tokens
                return Spent(refusal, rule.window.label, cost.requests, cost.tokens)
    return None


def still_spent(candidate: Candidate, memo: Mapping[str, Spent], now: float) -> Refusal | None:
    """The remembered refusal of one of ``candidate``'s scopes that still holds: before its
    ``retry_at``, for a cost at least as large, under the same rule and limit."""
    if not memo:
        return None
    cost = candidate.cost
    for scope in candidate.scopes:
        known = memo.get(scope.key)
        if known is None:
            continue
        refusal = known.refusal
        if refusal.retry_at is None or now >= refusal.retry_at:
            continue
        if cost.requests < known.requests or cost.tokens < known.tokens:
            continue
        rule = scope.named.get(refusal.rule or "")
        if rule is None or rule.limit != refusal.limit or rule.window.label != known.window:
            continue  # another config's limits: decide afresh
        if refusal.endpoint != candidate.endpoint:  # a pool's, learned through a sibling
            refusal = replace(refusal, endpoint=candidate.endpoint)
        return refusal
    return None


def walk(
    candidates: Iterable[Candidate],
    generation: int | None,
    now: float,
    one: Callable[[Candidate, bool], Reservation | Refusal],
) -> Pick:
    """A store's step over ``candidates``: a prefix they know refused first (for a store that
    keeps a ``generation``; None: it keeps none), then each in order until ``one`` (told
    whether a prefix was passed) admits one. Candidates that may know a refused prefix of
    themselves (``_engine/walk.Walk``) have ``begin(generation, now)``: it returns that
    prefix's refusals if it still holds, and iterating them then starts after it."""
    begin = getattr(candidates, "begin", None) if generation is not None else None
    refusals: list[Refusal] = list(begin(generation, now)) if begin is not None else []
    passed = bool(refusals)
    for candidate in candidates:
        outcome = one(candidate, passed)
        if isinstance(outcome, Reservation):
            return Pick(outcome, tuple(refusals), generation)
        refusals.append(outcome)
    return Pick(None, tuple(refusals), generation)


def single(pick: Pick) -> Reservation | Refusal:
    """The outcome of a step over one candidate."""
    return pick.reservation or pick.refusals[0]


def judge(
    candidate: Candidate,
    snapshot: Snapshot,
    now: float,
    flight: float,
    leases: Leases | None = None,
) -> tuple[Reservation | Refusal, Spent | None]:
    """The decision on one candidate from its buckets and, for scopes with a concurrency
    limit, its ``leases`` (its cool-downs already checked): a reservation to record (its
    client readied first, ``Candidate.ready``; it leases the scopes in ``leases``), or a
    refusal and what to remember of it (nothing for a concurrency refusal: a lease may be
    given back any moment)."""
    endpoint, scopes, cost = candidate.endpoint, candidate.scopes, candidate.cost
    remaining: list[tuple[str, str, int]] = []
    refusal = decide(endpoint, scopes, snapshot, {}, cost, now, leases, remaining)
    if refusal is not None:
        return refusal, spent(refusal, scopes, cost)
    if candidate.ready is not None:
        candidate.ready()
    made = Reservation(
        os.urandom(16).hex(),
        endpoint,
        cost.tokens,
        now,
        charges(scopes, now, flight),
        tuple(remaining),
        leased(scopes),
        cost.usd,
    )
    return made, None


def leased(scopes: Sequence[Scope]) -> tuple[str, ...]:
    """The keys of the scopes a reservation on ``scopes`` takes a lease in."""
    return tuple([scope.key for scope in scopes if scope.concurrency is not None])
