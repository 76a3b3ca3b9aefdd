"""The built-in provider catalog: known providers, their free models' limits, shared pools.

The facts live in ``catalog.toml`` next to this module (data, not code), each entry with
the date it was last checked. The file is read once, on first use, and checked strictly:
a wrong type, an unknown key or limit name, a pool that is not defined or a date that is
not ISO is a RuntimeError naming the entry (the shipped file is a part of llamux).

A model entry lists every limit its tier has: a limit it does not set means the tier has no
such limit. An entry whose numbers are not known (``published = false``: the provider does
not publish them) sets none; ``ModelLimits.known`` is None for it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib import resources
from typing import NoReturn

from .endpoint import CHAT, KINDS, LIMIT_NAMES, Limits, Pool
from .endpoint import DIALECTS as DIALECTS  # re-exported: the dialects a provider may name

STATUSES = frozenset({"active", "trial", "retired"})
PUBLISHED, UNPUBLISHED = "published", "unpublished"
LIMITS_KINDS = (PUBLISHED, UNPUBLISHED)
"""What a provider's ``limits`` says: whether it publishes its free tiers' numbers."""
STALE_AFTER = timedelta(days=90)
"""An entry checked longer ago than this is stale: its numbers may have changed."""

_SOURCE = "llamux catalog"
_PROVIDER_KEYS = (
    *("base_url", "api_key_env", "dialect", "status", "limits", "checked", "notes"),
    *("resets", "url_vars", "models", "serves"),
)
_MODEL_KEYS = (
    *LIMIT_NAMES,
    *("checked", "source", "confirmed", "published", "pool", "context", "notes", "serves"),
)
_POOL_KEYS = (*LIMIT_NAMES, "resets", "checked", "source", "notes")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


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
    serves: tuple[str, ...] = (CHAT,)
    """The kinds of request its chat models take (an embedding model takes embeddings)."""
    limits: str = PUBLISHED
    """``published``: the provider states its free tiers' numbers; ``unpublished``: it does
    not (its model entries have no numbers, unless one says ``published = true``)."""

    def reset_for(self, limit_name: str) -> str | None:
        """The timezone whose calendar periods ``limit_name`` resets in, or None (rolling)."""
        return dict(self.resets).get(limit_name)


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """The known limits of one model's free (or trial) tier at one provider."""

    provider: str
    model: str
    limits: Limits
    """Every limit the tier has; a limit left None means it has no such limit. Empty when
    ``published`` is False: then the limits are not known (see ``known``)."""
    checked: str
    """ISO date on which the numbers were last checked."""
    source: str
    """Where the numbers come from: a URL or a short description."""
    confirmed: bool = False
    """True: published by the provider or verified live; False: community figures."""
    published: bool = True
    """False: the provider does not publish this tier's numbers; nothing is known."""
    pool: str | None = None
    """The catalog pool whose shared quota the model also draws from."""
    context: int | None = None
    notes: str = ""
    serves: tuple[str, ...] | None = None
    """The kinds of request the model takes, when the catalog says (else its provider's)."""

    @property
    def known(self) -> Limits | None:
        """The tier's limits when the catalog knows them, else None (unpublished)."""
        return self.limits if self.published else None


@dataclass(frozen=True, slots=True)
class Catalog:
    """The whole catalog, as read and checked from its data."""

    providers: Mapping[str, Provider]
    models: Mapping[str, tuple[ModelLimits, ...]]
    """Provider name -> its model entries, in the order of the data."""
    pools: Mapping[str, Pool]
    checked: str
    """The newest ``checked`` date of any entry."""


def provider(name: str) -> Provider | None:
    """The catalog entry for ``name`` (case-insensitive), or None if it is not known."""
    return _catalog().providers.get(name.strip().lower())


def providers() -> tuple[Provider, ...]:
    """Every catalog entry, in the order of the data file."""
    return tuple(_catalog().providers.values())


def models(provider: str) -> tuple[ModelLimits, ...]:
    """The model entries of ``provider`` (case-insensitive), in file order; () if none."""
    return _catalog().models.get(provider.strip().lower(), ())


def model_limits(provider: str, model: str) -> ModelLimits | None:
    """The entry for ``model`` (exact id) at ``provider`` (case-insensitive), or None."""
    return next((entry for entry in models(provider) if entry.model == model), None)


def pool(name: str) -> Pool | None:
    """The catalog's shared quota pool called ``name``, or None."""
    return _catalog().pools.get(name.strip().lower())


def pools() -> tuple[Pool, ...]:
    """Every pool of the catalog."""
    return tuple(_catalog().pools.values())


def last_checked() -> str:
    """The newest ``checked`` date of the catalog (ISO), for "catalog checked on ..." lines."""
    return _catalog().checked


def stale(checked: str, today: date) -> bool:
    """Whether an entry checked on ``checked`` (ISO date) is older than 90 days at ``today``."""
    return today - date.fromisoformat(checked) > STALE_AFTER


def read_catalog(data: Mapping[str, object]) -> Catalog:
    """Check the parsed data of a catalog file and build it; RuntimeError names a bad entry."""
    top = _Entry("the catalog", data)
    top.check_keys(("providers", "pools"))
    dates: list[str] = []
    pools: dict[str, Pool] = {}
    for name, entry in top.tables("pools").items():
        pools[name] = _pool(entry)
        dates.append(entry.date("checked"))
    found: dict[str, Provider] = {}
    listed: dict[str, tuple[ModelLimits, ...]] = {}
    for name, entry in top.tables("providers").items():
        made = found[name] = _provider(entry)
        entries = entry.tables("models").items()
        listed[name] = tuple(_model(made, model, table, pools) for model, table in entries)
        dates += [made.checked, *(model.checked for model in listed[name])]
    return Catalog(found, listed, pools, max(dates, default=""))


@cache
def _data() -> Mapping[str, object]:
    text = resources.files("llamux._config").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def _catalog() -> Catalog:
    return read_catalog(_data())


def _provider(entry: _Entry) -> Provider:
    entry.check_keys(_PROVIDER_KEYS)
    name = entry.name
    made = Provider(
        name=name,
        base_url=entry.text("base_url", required=True),
        api_key_env=entry.text("api_key_env", required=True),
        dialect=entry.text("dialect"),
        resets=entry.resets(),
        status=entry.text("status"),
        checked=entry.date("checked"),
        notes=entry.text("notes"),
        url_vars=entry.pairs("url_vars"),
        limits=entry.text("limits") or PUBLISHED,
        serves=entry.kinds("serves") or (CHAT,),
    )
    if made.dialect not in DIALECTS or made.status not in STATUSES:
        entry.fail("has a bad dialect or status")
    if made.limits not in LIMITS_KINDS:
        entry.fail(f"limits must be one of {', '.join(LIMITS_KINDS)}, not {made.limits!r}")
    return made


def _model(owner: Provider, model: str, entry: _Entry, pools: Mapping[str, Pool]) -> ModelLimits:
    entry.check_keys(_MODEL_KEYS)
    limits = entry.limits()
    made = ModelLimits(
        provider=owner.name,
        model=model,
        limits=limits,
        checked=entry.date("checked"),
        source=entry.text("source", required=True),
        confirmed=entry.flag("confirmed", default=False),
        published=entry.flag("published", default=owner.limits == PUBLISHED),
        pool=entry.text("pool") or None,
        context=entry.number("context", minimum=1),
        notes=entry.text("notes"),
        serves=entry.kinds("serves") or None,
    )
    if made.pool is not None and made.pool not in pools:
        entry.fail(f"pool {made.pool!r} is not defined under [pools]")
    if not made.published and (limits.items() or made.pool):
        entry.fail("is not published (its numbers are unknown) but sets limits or a pool")
    if made.published and not limits.items() and made.pool is None:
        entry.fail("sets no limit and no pool; write published = false if they are unknown")
    return made


def _pool(entry: _Entry) -> Pool:
    entry.check_keys(_POOL_KEYS)
    entry.date("checked")
    entry.text("source", required=True)
    entry.text("notes")
    limits = entry.limits()
    if not limits.items():
        entry.fail("sets no limit")
    return Pool(entry.name, limits, entry.resets(), f"{_SOURCE}: pool {entry.name}")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One table of the catalog data and where it is, to check its values by name."""

    where: str
    table: Mapping[str, object]
    name: str = ""

    def fail(self, problem: str) -> NoReturn:
        raise RuntimeError(f"{_SOURCE}: {self.where} {problem}")

    def check_keys(self, known: Iterable[str]) -> None:
        unknown = sorted(set(self.table) - set(known))
        if unknown:
            self.fail(f"has unknown keys: {', '.join(unknown)}")

    def tables(self, key: str) -> dict[str, _Entry]:
        """The sub-tables under ``key`` ({} if absent), by name."""
        section = self.table.get(key, {})
        if not isinstance(section, dict):
            self.fail(f"{key} must be a table")
        prefix = self.where.strip("[]") + "." if self.where.startswith("[") else ""
        found = {}
        for name, entry in section.items():
            where = f"[{prefix}{key}.{_key(name)}]"
            if not isinstance(entry, dict):
                raise RuntimeError(f"{_SOURCE}: {where} must be a table")
            found[str(name)] = _Entry(where, {str(k): v for k, v in entry.items()}, str(name))
        return found

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.table.get(key, "")
        if not isinstance(value, str):
            self.fail(f"{key} must be a string")
        if required and not value.strip():
            self.fail(f"needs a {key}")
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false")
        return value

    def number(self, key: str, *, minimum: int = 0) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"{key} must be an integer of at least {minimum}")
        return value

    def date(self, key: str) -> str:
        value = self.table.get(key)
        if isinstance(value, date):
            value = value.isoformat()
        if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
            self.fail(f"{key} must be an ISO date such as 2026-12-01, not {value!r}")
        try:
            date.fromisoformat(value)
        except ValueError:
            self.fail(f"{key} is not a real date: {value!r}")
        return value

    def kinds(self, key: str) -> tuple[str, ...]:
        """A list of request kinds (``KINDS``), () if absent."""
        value = self.table.get(key, [])
        if not isinstance(value, list) or any(k not in KINDS for k in value):
            self.fail(f"{key} must be a list of {', '.join(KINDS)}, not {value!r}")
        return tuple(str(k) for k in value)

    def limits(self) -> Limits:
        numbers = {name: self.number(name) for name in LIMIT_NAMES}
        return Limits(**numbers, auto=frozenset())

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        table = self.table.get(key, {})
        if not isinstance(table, dict):
            self.fail(f"{key} must be a table")
        inner = _Entry(f"{self.where} {key}", {str(k): v for k, v in table.items()})
        return tuple((name, inner.text(name, required=True)) for name in inner.table)

    def resets(self) -> tuple[tuple[str, str], ...]:
        pairs = self.pairs("resets")
        unknown = [name for name, _ in pairs if name not in LIMIT_NAMES]
        if unknown:
            self.fail(f"resets names unknown limits: {', '.join(unknown)}")
        return tuple(sorted(pairs, key=lambda pair: LIMIT_NAMES.index(pair[0])))


def _key(name: object) -> str:
    """A TOML key as written in a table header: bare if it can be, else quoted."""
    text = str(name)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{text}"'
