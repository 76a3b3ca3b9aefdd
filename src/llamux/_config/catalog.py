"""The built-in provider catalog: known providers and shared quota pools.

The facts live in ``catalog.toml`` next to this module (data, not code), each entry with
the date it was last checked. The file is read once, on first use.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .endpoint import DIALECTS as DIALECTS  # re-exported: the dialects a provider may name
from .endpoint import LIMIT_NAMES, Limits, Pool

STATUSES = frozenset({"active", "trial", "retired"})

_SOURCE = "llamux catalog"


@dataclass(frozen=True, slots=True)
class Provider:
    """A known provider: where it lives, which key it reads, how its windows reset."""

    name: str
    base_url: str
    api_key_env: str
    dialect: str = "openai"
    resets: tuple[tuple[str, str], ...] = ()
    """(limit name, IANA timezone) for each limit counted in calendar periods."""
    status: str = "active"
    """``active``, ``trial`` (credits or evaluation only) or ``retired`` (answers 410)."""
    checked: str = ""
    """ISO date on which the entry was last checked against its sources."""
    notes: str = ""
    url_vars: tuple[tuple[str, str], ...] = ()
    """(placeholder, environment variable): ``{ACCOUNT_ID}`` in base_url is filled from it."""

    def reset_for(self, limit_name: str) -> str | None:
        """The timezone whose calendar periods ``limit_name`` resets in, or None (rolling)."""
        return dict(self.resets).get(limit_name)


def provider(name: str) -> Provider | None:
    """The catalog entry for ``name`` (case-insensitive), or None if it is not known."""
    return _providers().get(name.strip().lower())


def providers() -> tuple[Provider, ...]:
    """Every catalog entry, in the order of the data file."""
    return tuple(_providers().values())


def pool(name: str) -> Pool | None:
    """The catalog's shared quota pool called ``name``, or None."""
    return _pools().get(name.strip().lower())


def pools() -> tuple[Pool, ...]:
    """Every pool of the catalog."""
    return tuple(_pools().values())


@cache
def _data() -> Mapping[str, object]:
    text = resources.files("llamux._config").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def _providers() -> dict[str, Provider]:
    return {name: _provider(name, entry) for name, entry in _section("providers").items()}


@cache
def _pools() -> dict[str, Pool]:
    found: dict[str, Pool] = {}
    for name, entry in _section("pools").items():
        limits = Limits(**{key: _int(entry, key) for key in LIMIT_NAMES})
        found[name] = Pool(name, limits, _pairs(entry, "resets"), f"{_SOURCE}: pool {name}")
    return found


def _provider(name: str, entry: Mapping[str, object]) -> Provider:
    made = Provider(
        name=name,
        base_url=_str(entry, "base_url"),
        api_key_env=_str(entry, "api_key_env"),
        dialect=_str(entry, "dialect"),
        resets=_pairs(entry, "resets"),
        status=_str(entry, "status"),
        checked=_str(entry, "checked"),
        notes=_str(entry, "notes"),
        url_vars=_pairs(entry, "url_vars"),
    )
    if made.dialect not in DIALECTS or made.status not in STATUSES:
        raise RuntimeError(f"llamux catalog: provider {name!r} has a bad dialect or status")
    return made


def _section(key: str) -> dict[str, Mapping[str, object]]:
    section = _data().get(key, {})
    if not isinstance(section, dict):
        raise RuntimeError(f"llamux catalog: [{key}] must be a table")
    return {str(name): _table(entry, name) for name, entry in section.items()}


def _table(entry: object, name: object) -> Mapping[str, object]:
    if not isinstance(entry, dict):
        raise RuntimeError(f"llamux catalog: entry {name!r} must be a table")
    return {str(key): value for key, value in entry.items()}


def _str(entry: Mapping[str, object], key: str) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str):
        raise RuntimeError(f"llamux catalog: {key!r} must be a string")
    return value


def _int(entry: Mapping[str, object], key: str) -> int | None:
    value = entry.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise RuntimeError(f"llamux catalog: {key!r} must be an integer")
    return value


def _pairs(entry: Mapping[str, object], key: str) -> tuple[tuple[str, str], ...]:
    table = _table(entry.get(key, {}), key)
    pairs = tuple((name, _str(table, name)) for name in table)
    if key == "resets":
        return tuple(sorted(pairs, key=lambda pair: LIMIT_NAMES.index(pair[0])))
    return pairs
