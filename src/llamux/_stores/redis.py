"""The shared store: one Redis for every process of every machine (extra ``[redis]``).

Every operation that decides or counts is one Lua script (``redis.lua`` beside this file),
run with ``EVALSHA``, so a reservation checks and charges every rule of its endpoint and
pool atomically against all machines. Python does the window and calendar arithmetic of
``_quota`` and passes its results to the scripts; a script's reply is turned back into the
same ``Reservation`` or ``Refusal`` the memory store gives, by the same ``_quota`` functions.

Key layout (``P`` is the namespace, ``llamux`` unless configured; ``{T}`` a Redis Cluster hash
tag: the key of the endpoint's pool scope, ``pool:NAME``, when it has one, else the
endpoint's own quota key, so that everything one reservation touches lives in one slot)::

    P:{T}:b:UNIT:SCOPE     hash  fields r<start>, t<start>, u<start>: requests, tokens and
                                 micro-dollars (only where a priced request was charged: an
                                 absent u is 0) per bucket of the minute, hour, day or month
                                 (rolling and calendar rules share them); expires when its
                                 newest bucket stops counting in any window of the unit
                                 (``Window.kept_until``, +60 s)
    P:{T}:c:SCOPE          hash  a cool-down: until, kind, reason; expires at its end (+1 s)
    P:{T}:r:UUID           str   a reservation (JSON: endpoint "e", tokens "t", micro-dollars
                                 "u" if priced, [hash, bucket, unit] charged "c", and its
                                 lease sets); expires at its settle deadline
                                 (``kept_until``: SETTLE_DEADLINE after the charge, or
                                 after the flight deadline)
    P:{T}:f:SCOPE          zset  concurrency leases: UUID -> when its lease expires (the
                                 call's flight deadline, or QUERY_LEASE for a query); the
                                 expired are pruned by the reserve script; the set expires
                                 60 s after its newest lease
    P:{ENDPOINT}:p         hash  measured performance (moving averages); expires after 30 days
    P:{SCOPE}:l            hash  rule -> a limit the provider stated (JSON: limit, when, source);
                                 expires 30 days after the last one learned
    P:{KEY}:n              str   a counter (round robin); expires after 30 days unused
    P:{T}:w                str   the count of reservations written on the tag: one that went
                                 back means the server lost data (``redis_losses``); expires
                                 WRITES_KEPT after the last; ``reset`` keeps it
    P:scopes               hash  scope -> its tag (to find a scope named alone, and cool-downs)
    P:quotas               hash  scope -> the limits a config last gave it (to warn of others)
    P:lost                 hash  tag -> a note of lost data (when noticed, the counts), shown by
                                 ``status``; expires NOTE_KEPT after the last

A reservation id is ``UUID@T``. Old buckets are pruned inside the reserve script; every key
expires, so nothing grows without bound. ``reset`` scans the namespace (not atomic; rare).
The untagged keys are each read or written alone, so on a Redis Cluster
(``redis_cluster.py``) every step still touches one slot.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from typing import Any

from .._errors import StoreError
from .._policy.known_limits import Learned
from .._policy.passing import Candidate, Pick, walk
from .._policy.performance import ALPHA, Performance, Sample
from .._policy.quota import (
    Charge,
    Cooldown,
    Cost,
    Refusal,
    Reservation,
    RuleUsage,
    read_now,
    rule_usage,
)
from .._policy.rules import Scope
from .._policy.window import Window
from . import redis_scan
from .redis_base import RedisBase
from .redis_connect import mask_url
from .redis_plan import (
    BUCKET_MARGIN,
    Plan,
    move_args,
    ms,
    performance_of,
    refusal_of,
    remaining_of,
    reserve_args,
    shifted,
    snapshot_of,
)

log = logging.getLogger("llamux")

KEEP_SECONDS = 30 * 86400
"""Life of performance and counter keys after their last write."""
NODE_RETRY = 1.0
"""Seconds after which an endpoint passed over because its cluster node failed is tried
again."""
HELD_KEPT = 10_000
"""At most this many reservations made here have their keys remembered until they are
settled (past it, the oldest is read back from its record when it settles)."""


def unreachable(candidate: Candidate, error: StoreError, retry_at: float) -> Refusal:
    """The refusal of a candidate whose quota lives on a cluster node that failed: passed
    over, never sent (its counters cannot be checked), tried again at ``retry_at``."""
    scope = candidate.scopes[0].key
    reason = f"its quota's store node failed ({error})"
    return Refusal(candidate.endpoint, scope, None, 0, 0, candidate.cost.requests, retry_at, reason)


class RedisStore(RedisBase):
    """Quota state in Redis, shared by every process and machine that opens the same URL.

    ``url`` is ``redis://[user:password@]host:port/db``, ``rediss://`` (TLS) or
    ``unix:///path/to/socket``. The key prefix is ``namespace`` if given, else the URL's
    ``namespace=NAME`` query parameter, else ``llamux``: independent routers can share a Redis.

    Time: with ``server_time=True`` (the default, what ``store_from_url`` opens) the store
    ignores the caller's ``now`` and computes with the Redis server's clock, ``time.time()``
    plus an offset measured with ``TIME`` at connect and every 30 s, so machines whose clocks
    disagree still agree on every window. Times it returns (``retry_at``, ``next_free_at``,
    cool-down ends) and takes (``cool_down``'s ``until``) are shifted into the caller's clock.
    ``server_time=False`` honours ``now`` as given (tests with a fake clock).

    Errors: an unreachable, refusing, timing-out or misconfigured server raises
    ``StoreError`` naming the URL (password masked); there is no fallback.
    """

    # -- operations ----------------------------------------------------------------------

    def reserve(
        self,
        endpoint: str,
        scopes: Sequence[Scope],
        cost: Cost,
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Reservation | Refusal:
        plan = self._plan(scopes, register=True)
        rid = uuid.uuid4().hex
        now = read_now(now)
        at, shift = self._now(now)
        buckets = [window.charge_bucket(at, flight) for _, window, _ in plan.windows]
        keys = [self._key(plan.tag, "r", rid), *plan.cooldown_keys, *(w[2] for w in plan.windows)]
        keys += [*(key for _, _, key in plan.leases), plan.writes]
        args = reserve_args(plan, endpoint, cost, at, buckets, rid, flight)
        reply = self._script("reserve", keys, args)
        if reply[0] != 1:
            refusal = refusal_of(endpoint, scopes, plan, reply, cost, at)
            if refusal is None:  # the script and _quota.decide disagree: a bug, never silent
                raise StoreError(f"the Redis store {self.url} refused what decide() admits")
            return replace(refusal, retry_at=shifted(refusal.retry_at, shift))
        with self._guard():  # the count of writes on the tag went back: data was lost
            self._losses.saw(self._client, plan.tag, int(reply[1]), now)
        self._remember(rid, plan)
        charged = zip(plan.windows, buckets, strict=True)
        return Reservation(
            f"{rid}@{plan.tag}",
            endpoint,
            cost.tokens,
            now,
            tuple(Charge(scope, window.key, bucket) for (scope, window, _), bucket in charged),
            remaining_of(plan, reply[2:], cost),
            tuple(scope for scope, _, _ in plan.leases),
            cost.usd,
        )

    def losses(self) -> list[str]:
        """A line for each quota whose data the store noticed lost (``redis_losses``), the
        oldest first, as long as its note is kept."""
        with self._guard():
            return self._losses.notes(self._client)

    def _move(
        self, reservation_id: str, mode: str, tokens: int | None, now: float, usd: int | None
    ) -> Any:
        """The move script's answer: the reservation's endpoint, or 0 if it is unknown."""
        rid, _, tag = reservation_id.partition("@")
        if not tag:
            return 0
        key = self._key(tag, "r", rid)
        args = move_args(mode, tokens, self._on_server(now), usd)
        plan = self._held.pop(rid, None)  # made here: its keys are known
        held = plan.held_keys if plan is not None else self._record_keys(key)
        reply = 0 if held is None else self._script("move", [key, *held], args)
        if reply == -1:  # its record names other keys: as it names them
            held = self._record_keys(key)
            reply = 0 if held is None else self._script("move", [key, *held], args)
        return reply

    def _record_keys(self, key: str) -> list[str] | None:
        """The keys a reservation's record names (the move script takes them as KEYS), or
        None if it is gone."""
        with self._guard():
            text = self._client.get(key)
        try:
            record = json.loads(text) if text else None
            return None if record is None else [c[0] for c in record["c"]] + record.get("l", [])
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # not written by llamux

    def _remember(self, rid: str, plan: Plan) -> None:
        """Keep the plan of a reservation made here until it is settled (bounded)."""
        if len(self._held) >= HELD_KEPT:
            with suppress(StopIteration, RuntimeError):  # another thread changed it
                self._held.pop(next(iter(self._held)), None)
        self._held[rid] = plan

    def settle(
        self,
        reservation_id: str,
        tokens: int,
        now: float,
        sample: Sample | None = None,
        usd: int | None = None,
    ) -> bool:
        endpoint = self._move(reservation_id, "settle", tokens, now, usd)
        if endpoint and sample is not None:  # its own slot: a second script
            self.record(str(endpoint), sample)
        return bool(endpoint)

    def release(self, reservation_id: str, now: float) -> bool:
        return bool(self._move(reservation_id, "release", None, now, None))

    def reserve_first(
        self,
        candidates: Iterable[Candidate],
        now: float | Callable[[], float],
        flight: float = 0.0,
    ) -> Pick:
        """One script per candidate (each endpoint's keys are on a slot of their own), each
        reading the server's time; a cooling candidate is refused by the script before it
        reads its buckets. ``ready`` runs before each script: the script decides and
        charges in one step."""

        failed: list[StoreError] = []

        def one(candidate: Candidate, _: bool) -> Reservation | Refusal:
            if candidate.ready is not None:
                candidate.ready()
            try:
                return self.reserve(
                    candidate.endpoint, candidate.scopes, candidate.cost, now, flight
                )
            except StoreError as error:
                if not self.per_slot:  # one server: every candidate would fail alike
                    raise
                failed.append(error)
                return unreachable(candidate, error, read_now(now) + NODE_RETRY)

        pick = walk(candidates, None, 0.0, one)  # no generation: a prefix never applies
        if pick.reservation is None and failed and len(failed) == len(pick.refusals):
            raise failed[0]  # the store is down for every candidate: say so, not "no quota"
        return pick

    def absorb(self, scope: str, window: str, requests: int, tokens: int, now: float) -> None:
        at, _ = self._now(now)
        win = Window.from_key(window)
        bucket = win.charge_bucket(at)
        key = self._bucket_key(self._tag_of(scope), scope, window)
        life = ms(win.frees_at(bucket) - at + BUCKET_MARGIN)
        self._script("absorb", [key], [bucket, max(0, requests), max(0, tokens), life])

    def declare(self, limits: Mapping[str, str], now: float) -> dict[str, str]:
        key = f"{self.namespace}:quotas"
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            pipe.hmget(key, list(limits))
            pipe.hset(key, mapping=dict(limits))
            recorded, _ = pipe.execute()
        return {
            scope: old
            for scope, old in zip(limits, recorded, strict=True)
            if old is not None and old != limits[scope]
        }

    def counted_scopes(self, since: float) -> set[str]:
        with self._guard():
            return redis_scan.counted_scopes(self._client, self.namespace, since)

    def cool_down(self, scope: str, until: float, reason: str, kind: str, now: float) -> None:
        at, shift = self._now(now)
        tag = self._tag_of(scope)
        self._register(scope, tag)  # so cooldowns() finds it, even after a reset()
        server_until = until - shift
        args = [repr(server_until), reason, kind, repr(at), ms(server_until - at + 1)]
        self._script("cool_down", [self._key(tag, "c", scope)], args)

    def cooldowns(self, now: float) -> dict[str, Cooldown]:
        at, shift = self._now(now)
        with self._guard():
            tags: dict[str, str] = self._client.hgetall(f"{self.namespace}:scopes")
            pipe = self._client.pipeline(transaction=False)
            for scope, tag in tags.items():
                pipe.hmget(self._key(tag, "c", scope), "until", "kind", "reason")
            rows = pipe.execute()
        return {
            scope: Cooldown(scope, float(until) + shift, reason or "", kind or "cooldown")
            for scope, (until, kind, reason) in zip(tags, rows, strict=True)
            if until is not None and float(until) > at
        }

    def usage(self, scopes: Sequence[Scope], now: float) -> list[RuleUsage]:
        at, shift = self._now(now)
        plan = self._plan(scopes, register=False)
        reply = self._script("usage", [w[2] for w in plan.windows], [])
        snapshot = snapshot_of(plan, reply)
        return [
            replace(row, next_free_at=shifted(row.next_free_at, shift))
            for scope in scopes
            for row in rule_usage(scope, snapshot, at)
        ]

    def in_flight(self, scopes: Sequence[Scope], now: float) -> dict[str, int]:
        at, _ = self._now(now)
        plan = self._plan(scopes, register=False)
        if not plan.leases:
            return {}
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            for _, _, key in plan.leases:
                pipe.zcount(key, f"({at!r}", "+inf")
            counts = pipe.execute()
        return {scope: int(n) for (scope, _, _), n in zip(plan.leases, counts, strict=True)}

    def record(self, endpoint: str, sample: Sample) -> None:
        values = (sample.latency, sample.tokens_per_second, sample.ttft)
        args = ["" if v is None else repr(float(v)) for v in values]
        key = f"{self.namespace}:{{{endpoint}}}:p"
        self._script("record", [key], [*args, repr(ALPHA), ms(KEEP_SECONDS)])

    def performance(self, endpoints: Sequence[str]) -> dict[str, Performance]:
        rows = self._hashes(endpoints, "p")
        return {name: performance_of(row) for name, row in rows.items() if row}

    def _hashes(self, names: Sequence[str], kind: str) -> dict[str, dict[str, str]]:
        """The hash ``P:{NAME}:KIND`` of each of ``names``, in one round trip."""
        listed = list(names)
        with self._guard():
            pipe = self._client.pipeline(transaction=False)
            for name in listed:
                pipe.hgetall(f"{self.namespace}:{{{name}}}:{kind}")
            rows: list[dict[str, str]] = pipe.execute()
        return dict(zip(listed, rows, strict=True))

    def turn(self, key: str) -> int:
        reply = self._script("turn", [f"{self.namespace}:{{{key}}}:n"], [ms(KEEP_SECONDS)])
        return int(reply)

    def learn(self, scope: str, limits: Mapping[str, int], now: float, source: str) -> None:
        if not limits:
            return
        key = f"{self.namespace}:{{{scope}}}:l"  # when: the caller's clock (it is shown)
        rows = {name: json.dumps([max(0, int(v)), now, source]) for name, v in limits.items()}
        with self._guard():
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(key, mapping=rows)
            pipe.pexpire(key, ms(KEEP_SECONDS))
            pipe.execute()

    def learned(self, scopes: Sequence[str]) -> dict[str, dict[str, Learned]]:
        found: dict[str, dict[str, Learned]] = {}
        for name, row in self._hashes(scopes, "l").items():
            for rule, text in row.items():
                try:
                    limit, at, source = json.loads(text)
                    found.setdefault(name, {})[rule] = Learned(int(limit), float(at), str(source))
                except (ValueError, TypeError):
                    continue  # not written by llamux: ignored
        return found

    def reset(self, scope: str | None = None) -> None:
        with self._guard():
            redis_scan.reset(self._client, self.namespace, scope)

    def close(self) -> None:
        self._client.close()


__all__ = ["RedisStore", "mask_url"]
