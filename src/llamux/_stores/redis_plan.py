"""The Redis store's pure side: script texts, the keys and arguments of a reservation,
and turning what a script read back into llamux values (see ``redis.py``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import StoreError
from .._policy.performance import Performance
from .._policy.quota import Cooldown, Cost, Refusal, Snapshot, decide, kept_until, lease_until
from .._policy.rules import INDEX, METRICS, Rule, Scope
from .._policy.window import WINDOW_SECONDS, Window
from .redis_losses import WRITES_KEPT

BUCKET_MARGIN = 60.0
"""Seconds a bucket hash outlives the moment its newest bucket stops counting."""


def load_scripts() -> dict[str, str]:
    text = Path(__file__).with_name("redis.lua").read_text(encoding="utf-8")
    sections = re.split(r"^--- (\w+)\n", text, flags=re.MULTILINE)
    named = dict(zip(sections[1::2], sections[2::2], strict=True))
    common = named.pop("common")
    return {name: common + body for name, body in named.items()}


def ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True, slots=True)
class Plan:
    """What a reservation on some scopes touches: their tag, cool-down keys, one bucket hash
    per stored (scope, window) and the checks on them: per (scope, window as its rules reset)
    the rules and the smallest requests, tokens and micro-dollars limits (-1: none)."""

    tag: str
    cooldown_keys: tuple[str, ...]
    windows: tuple[tuple[str, Window, str], ...]
    """(scope, stored window, bucket hash key)."""
    checks: tuple[tuple[int, str, Window, tuple[Rule, ...], int, int, int], ...]
    """(index into ``windows``, scope, window, rules, requests, tokens and micro-dollars
    limits)."""
    leases: tuple[tuple[str, int, str], ...] = ()
    """(scope, concurrency limit, lease set key) of each scope with a concurrency limit."""
    writes: str = ""
    """The key counting the reservations written on the tag (see ``redis_losses``)."""

    @property
    def held_keys(self) -> tuple[str, ...]:
        """The keys a reservation's record names: its bucket hashes, then its lease sets."""
        return tuple(key for _, _, key in self.windows) + tuple(key for _, _, key in self.leases)


def import_redis() -> Any:
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:  # pragma: no cover - the [redis] extra is missing
        raise StoreError(
            "a redis:// store needs the redis package; install it with pip install 'llamux[redis]'"
        ) from exc
    return redis


def scoped_key(namespace: str, tag: str, kind: str, rest: str) -> str:
    """A key of the namespace, in the hash slot of ``tag``: ``P:{T}:KIND:REST``."""
    return f"{namespace}:{{{tag}}}:{kind}:{rest}"


def bucket_key(namespace: str, tag: str, scope: str, window: str) -> str:
    """The bucket hash of ``scope``'s ``window`` (a unit: minute, hour, day, month)."""
    return scoped_key(namespace, tag, "b", f"{window}:{scope}")


def make_plan(namespace: str, tag: str, scopes: Sequence[Scope]) -> Plan:
    windows: list[tuple[str, Window, str]] = []
    checks: list[tuple[int, str, Window, tuple[Rule, ...], int, int, int]] = []
    for scope in scopes:
        first = len(windows)
        for window in scope.windows:
            windows.append((scope.key, window, bucket_key(namespace, tag, scope.key, window.key)))
        stored = [w.key for w in scope.windows]
        for window, rules in scope.groups:
            limits = dict.fromkeys(METRICS, -1)
            for rule in rules:
                old = limits[rule.metric]
                limits[rule.metric] = rule.limit if old < 0 else min(old, rule.limit)
            index = first + stored.index(window.key)
            rlimit, tlimit, ulimit = (limits[metric] for metric in METRICS)
            checks.append((index, scope.key, window, rules, rlimit, tlimit, ulimit))
    cooldown_keys = tuple(scoped_key(namespace, tag, "c", scope.key) for scope in scopes)
    leases = tuple(
        (scope.key, scope.concurrency, lease_key(namespace, tag, scope.key))
        for scope in scopes
        if scope.concurrency is not None
    )
    writes = scoped_key(namespace, tag, "w", "")[:-1]
    return Plan(tag, cooldown_keys, tuple(windows), tuple(checks), leases, writes)


def lease_key(namespace: str, tag: str, scope: str) -> str:
    """The sorted set of ``scope``'s concurrency leases: reservation -> when it expires."""
    return scoped_key(namespace, tag, "f", scope)


def reserve_args(
    plan: Plan,
    endpoint: str,
    cost: Cost,
    at: float,
    buckets: Sequence[int],
    rid: str = "",
    flight: float = 0.0,
) -> list[object]:
    """The reserve script's ARGV (see redis.lua); ``rid`` names the reservation's leases."""
    per_window: list[object] = []
    charged = []
    for (_, window, key), bucket in zip(plan.windows, buckets, strict=True):
        life = window.kept_until(bucket) - at + BUCKET_MARGIN
        per_window += [bucket, window.keep_from(at), ms(life)]
        charged.append([key, str(bucket), window.key])
    per_check: list[object] = []
    for index, _, window, _, *limits in plan.checks:
        per_check += [index + 1, window.oldest_counted(at), *limits]
    deadline = kept_until(at, flight)
    made: dict[str, object] = {"e": endpoint, "t": cost.tokens, "c": charged, "d": deadline}
    if cost.usd:
        made["u"] = cost.usd
    per_lease: list[object] = [len(plan.leases)]
    if plan.leases:
        until = lease_until(at, flight)
        made.update(i=rid, l=[key for _, _, key in plan.leases])
        per_lease += [rid, repr(until), ms(until - at + BUCKET_MARGIN)]
        per_lease += [limit for _, limit, _ in plan.leases]
    record = json.dumps(made, separators=(",", ":"))
    head = [repr(at), cost.requests, cost.tokens, ms(deadline - at), record, cost.usd]
    counts = [len(plan.cooldown_keys), len(plan.windows), len(plan.checks)]
    return [*head, *counts, *per_window, *per_check, *per_lease, ms(WRITES_KEPT)]


def move_args(mode: str, tokens: int | None, at: float, usd: int | None = None) -> list[object]:
    """The move script's ARGV: what to do, the real tokens and micro-dollars (None: keep the
    estimate), ``at`` (a record past its deadline is dropped unmoved), and per window unit
    the bucket a charge moves to when the outcome is learned at ``at`` (with its hash's
    life)."""
    targets: list[object] = []
    for unit in WINDOW_SECONDS:
        window = Window(unit)
        bucket = window.charge_bucket(at)
        targets += [unit, str(bucket), ms(window.kept_until(bucket) - at + BUCKET_MARGIN)]
    paid = "" if usd is None else max(0, usd)
    return [mode, "" if tokens is None else max(0, tokens), paid, repr(at), *targets]


def remaining_of(plan: Plan, sums: Sequence[Any], cost: Cost) -> tuple[tuple[str, str, int], ...]:
    """What each rule has left once ``cost`` is charged, from the counted sums the reserve
    script read (requests, tokens and micro-dollars per check)."""
    out = []
    per_check = zip(plan.checks, sums[::3], sums[1::3], sums[2::3], strict=True)
    for check, r, t, u in per_check:
        totals = (int(r), int(t), int(u))
        for rule in check[3]:
            used = totals[INDEX[rule.metric]] + cost.of(rule.metric)
            out.append((check[1], rule.name, max(0, rule.limit - used)))
    return tuple(out)


def refusal_of(
    endpoint: str, scopes: Sequence[Scope], plan: Plan, reply: Any, cost: Cost, at: float
) -> Refusal | None:
    """The refusal ``decide`` gives on what the reserve script read (``{0, cool-downs,
    bucket hashes}``)."""
    cooling = {
        scope.key: Cooldown(scope.key, float(row[0]), row[2] or "", row[1] or "cooldown")
        for scope, row in zip(scopes, reply[1], strict=True)
        if row[0] is not None
    }
    held = reply[3] if len(reply) > 3 else []
    leases = {
        scope: [float(score) for score in flat[1::2]]
        for (scope, _, _), flat in zip(plan.leases, held, strict=True)
    }
    return decide(endpoint, scopes, snapshot_of(plan, reply[2]), cooling, cost, at, leases)


def shifted(moment: float | None, shift: float) -> float | None:
    return None if moment is None else moment + shift


def snapshot_of(plan: Plan, flats: Sequence[Sequence[str]]) -> Snapshot:
    """The bucket rows read by a script, one flat field/value list per window of ``plan``."""
    snapshot: dict[tuple[str, str], dict[int, tuple[int, int, int]]] = {}
    for (scope, window, _), flat in zip(plan.windows, flats, strict=True):
        buckets: dict[int, list[int]] = {}
        for field, value in zip(flat[::2], flat[1::2], strict=True):
            row = buckets.setdefault(int(field[1:]), [0, 0, 0])
            row[_FIELDS[field[0]]] = int(value)
        snapshot[(scope, window.key)] = {b: (r, t, u) for b, (r, t, u) in buckets.items()}
    return snapshot


_FIELDS = {"r": 0, "t": 1, "u": 2}
"""A bucket hash field's first letter -> its place in a bucket's counts."""


def performance_of(row: dict[str, str]) -> Performance:
    def number(name: str) -> float | None:
        return float(row[name]) if name in row else None

    return Performance(number("latency"), number("tps"), number("ttft"), int(row.get("samples", 0)))
