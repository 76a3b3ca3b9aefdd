"""The Redis store's plumbing: its client and its errors, its scripts, the server's clock,
and the names of its keys (``redis.py``: the key layout, and the steps that decide and count,
on this base; ``redis_cluster.py``: the same on a cluster client)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .._errors import StoreError
from .._policy.rules import Scope
from .redis_clock import ServerClock
from .redis_connect import (
    check_url,
    mask_url,
    open_client,
    refuse_cluster_node,
    secrets_of,
    split_namespace,
    store_error,
)
from .redis_losses import Losses
from .redis_plan import (
    Plan,
    bucket_key,
    import_redis,
    load_scripts,
    make_plan,
    scoped_key,
)


class RedisBase:
    """A Redis store's connection (see ``RedisStore``): opened and checked at construction,
    scripts loaded, the server's clock measured."""

    per_slot = False
    """Whether each endpoint's keys may live on a server of their own (a cluster): a step
    that fails there fails for that endpoint only."""

    def __init__(self, url: str, *, namespace: str | None = None, server_time: bool = True) -> None:
        check_url(url)
        url, from_url = split_namespace(url)
        self.url = mask_url(url)
        self._secrets = secrets_of(url)
        self.namespace = namespace or from_url or "llamux"
        if "{" in self.namespace or "}" in self.namespace:
            raise StoreError(
                f"the Redis namespace {self.namespace!r} contains a brace; choose one without"
            )
        self.server_time = server_time
        self._redis = import_redis()
        self._errors = (
            self._redis.exceptions.RedisError,
            self._redis.exceptions.RedisClusterException,
        )
        self._scripts = load_scripts()
        self._shas: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._plans: dict[tuple[str, tuple[Scope, ...]], Plan] = {}
        self._held: dict[str, Plan] = {}
        """The plan of each reservation made here and not yet settled (its keys)."""
        self._losses = Losses(self.url, self.namespace)
        with self._guard():
            try:
                self._client: Any = self._open(url)
            except ValueError as exc:
                raise StoreError(f"the Redis URL {self.url} is malformed ({exc})") from exc
            self._clock = ServerClock(self._server_time, self._guard)
            try:
                self._connected()
                self._load()
                if server_time:
                    self._clock.measure()
            except BaseException:
                self._client.close()  # a store that failed to open leaves no socket open
                raise

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, namespace={self.namespace!r})"

    # -- connection, scripts, errors, time ----------------------------------------------

    def _open(self, url: str) -> Any:
        """The client of the server at ``url`` (a cluster store opens a cluster client)."""
        return open_client(self._redis, url)

    def _connected(self) -> None:
        """Checks once connected: a ``redis://`` URL must not name a Redis Cluster node."""
        refuse_cluster_node(self._redis, self._client, self.url)

    def _server_time(self) -> Any:
        """The server's ``TIME`` reply: the clock every machine computes with."""
        return self._client.time()

    def _load(self) -> None:
        """Load the scripts: at connect, and when the server forgot them (it restarted)."""
        for name, source in self._scripts.items():
            self._shas[name] = self._client.script_load(source)

    def _script(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        with self._guard():
            try:
                return self._client.evalsha(self._shas[name], len(keys), *keys, *args)
            except self._redis.exceptions.NoScriptError:  # the server restarted or flushed
                self._load()
                return self._client.evalsha(self._shas[name], len(keys), *keys, *args)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> StoreError:
        return store_error(self._redis, self.url, self._secrets, exc)

    def _now(self, now: float) -> tuple[float, float]:
        """The time to compute with, and what to add to it to get back to the caller's."""
        return self._clock.now(now) if self.server_time else (now, 0.0)

    def _on_server(self, moment: float) -> float:
        """A moment of the caller's (wall) clock, maybe past, on the clock we compute with."""
        return self._clock.on_server(moment) if self.server_time else moment

    # -- keys ----------------------------------------------------------------------------

    def _key(self, tag: str, kind: str, rest: str) -> str:
        return scoped_key(self.namespace, tag, kind, rest)

    def _bucket_key(self, tag: str, scope: str, window: str) -> str:
        return bucket_key(self.namespace, tag, scope, window)

    def _register(self, scope: str, tag: str) -> None:
        with self._guard():
            self._client.hset(f"{self.namespace}:scopes", scope, tag)
        self._tags[scope] = tag

    def _tag_of(self, scope: str) -> str:
        """The tag of a scope named alone: as reservations registered it, else its own key."""
        tag = self._tags.get(scope)
        if tag is None:
            with self._guard():
                tag = self._client.hget(f"{self.namespace}:scopes", scope)
            if tag is None:
                return scope  # not remembered: a reservation may register another tag
            self._tags[scope] = tag
        return tag

    def _plan(self, scopes: Sequence[Scope], *, register: bool) -> Plan:
        # With a pool (the last scope), an endpoint's keys live in its pool's slot.
        tag = scopes[-1].key if len(scopes) > 1 else self._tag_of(scopes[0].key)
        if register or len(scopes) > 1:
            for scope in scopes:
                if self._tags.get(scope.key) != tag:
                    self._register(scope.key, tag)
        cache_key = (tag, tuple(scopes))
        plan = self._plans.get(cache_key)
        if plan is None:
            if len(self._plans) > 4096:  # scopes come from a config: this is a safety net
                self._plans.clear()
            plan = self._plans[cache_key] = make_plan(self.namespace, tag, scopes)
        return plan
