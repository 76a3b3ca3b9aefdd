"""The quota scopes of endpoints: each endpoint's own rules and, if it draws on one, its pool's.

A scope's key is the identity of the quota it counts, what the provider counts by: for an
endpoint its server (base URL), model and key variable (``q:...``), for a pool its name
(``pool:...``). Not the display id, nor how the limits reset: renaming an endpoint or changing
its ``reset`` keeps its history, and an endpoint can never share counters with a pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._config.load import Endpoint, Pool
from .._errors import ConfigError
from .money import micro_usd
from .rules import UNLIMITED, Scope
from .rules import rules_from_limits as _rules


def quota_key(ep: Endpoint) -> str:
    """The key of the quota an endpoint draws on: ``q:SERVER|MODEL|KEY_VARIABLE``."""
    server = ep.base_url.split("://", 1)[-1].rstrip("/")
    server = server.replace("{", "<").replace("}", ">")  # braces would be a Redis hash tag
    return f"q:{server}|{ep.model}|{ep.api_key_env}"


def scopes_for(
    endpoints: Sequence[Endpoint],
    pools: Mapping[str, Pool],
    limits: Mapping[str, Sequence[tuple[str, int | None]]] | None = None,
) -> dict[str, list[Scope]]:
    """Each endpoint id's scopes: its own quota first, then its pool's. ``limits``: the rules
    each endpoint's own quota enforces, by id (default: its numeric limits); a rule of None
    limit is counted, not limited (an ``auto`` limit not known yet)."""
    scopes: dict[str, list[Scope]] = {}
    for ep in endpoints:
        if ep.id in scopes:
            raise ConfigError(f"two endpoints are named {ep.id!r}; give each a unique name")
        pairs = limits[ep.id] if limits is not None else ep.limits.items()
        rules = [(name, UNLIMITED if limit is None else limit) for name, limit in pairs]
        rules += [(name, micro_usd(dollars)) for name, dollars in ep.budgets()]
        own = [Scope(quota_key(ep), _rules(rules, dict(ep.resets)), ep.concurrency)]
        if ep.pool:
            pool = pools.get(ep.pool) or catalog_pool(ep.pool)
            if pool is None:
                raise ConfigError(
                    f"endpoint {ep.id} draws on pool {ep.pool!r}, which is not defined; "
                    f"define [pools.{ep.pool}] in a TOML config or remove the pool"
                )
            shared: list[tuple[str, int]] = [*pool.limits.items()]
            shared += [(name, micro_usd(dollars)) for name, dollars in pool.budgets()]
            pooled = _rules(shared, dict(pool.resets))
            own.append(Scope(f"pool:{pool.name}", pooled, pool.concurrency))
        scopes[ep.id] = own
    return scopes


def limits_text(scope: Scope) -> str:
    """A scope's limits as one line, e.g. ``rpm=30 rpd=1000@America/Los_Angeles``
    (``concurrency=2`` last, if set)."""
    parts = [
        f"{rule.name}={rule.limit}" + (f"@{rule.window.tz}" if rule.window.tz else "")
        for rule in scope.rules
    ]
    if scope.concurrency is not None:
        parts.append(f"concurrency={scope.concurrency}")
    return " ".join(parts)


def catalog_pool(name: str) -> Pool | None:
    from .._config.catalog import pool

    return pool(name)
