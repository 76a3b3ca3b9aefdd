"""The quota scopes of endpoints: each endpoint's own rules and, if it draws on one, its pool's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._config import Endpoint, Pool
from ._errors import ConfigError
from ._quota import Scope
from ._quota import rules_from_limits as _rules


def scopes_for(endpoints: Sequence[Endpoint], pools: Mapping[str, Pool]) -> dict[str, list[Scope]]:
    scopes: dict[str, list[Scope]] = {}
    for ep in endpoints:
        if ep.id in scopes:
            raise ConfigError(f"two endpoints are named {ep.id!r}; give each a unique name")
        own = [Scope(ep.id, _rules(ep.limits.items(), dict(ep.resets)))]
        if ep.pool:
            pool = pools.get(ep.pool) or catalog_pool(ep.pool)
            if pool is None:
                raise ConfigError(
                    f"endpoint {ep.id} draws on pool {ep.pool!r}, which is not defined; "
                    f"define [pools.{ep.pool}] in a TOML config or remove the pool"
                )
            own.append(Scope(f"pool:{pool.name}", _rules(pool.limits.items(), dict(pool.resets))))
        scopes[ep.id] = own
    return scopes


def catalog_pool(name: str) -> Pool | None:
    from ._catalog import pool

    return pool(name)
