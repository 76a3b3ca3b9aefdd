"""Shared parts of config parsing: locating errors, reading values, building endpoints.

Both the table parser (``_config``) and the TOML parser (``_config_toml``) turn each row
or ``[[endpoints]]`` table into a mapping of column -> raw value and hand it to
``build_endpoint``; a ``Place`` says where the row came from, for error messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from . import catalog as _catalog
from .endpoint import (
    AUTO,
    BUDGET_NAMES,
    CAPABILITIES,
    CHAT,
    DEFAULT_MAX_OUTPUT,
    KINDS,
    LIMIT_NAMES,
    Config,
    Endpoint,
    Limits,
    Pool,
    Route,
)
from .values import Place, integer, number, show, suggest, text, timezone

_T = TypeVar("_T")

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------- building


def build_limits(place: Place, row: Mapping[str, object], *, auto: bool = True) -> Limits:
    """The six limit columns of ``row``; ``auto`` cells are allowed unless ``auto=False``."""
    numbers: dict[str, int | None] = {}
    automatic: set[str] = set()
    for name in LIMIT_NAMES:
        value = row.get(name)
        if isinstance(value, str) and value.strip().lower() == AUTO:
            if not auto:
                fix = f"write {name} as a number, or {place.empty} for no limit"
                raise place.error(f"a pool's limits cannot be auto; {fix}", name)
            automatic.add(name)
            numbers[name] = None
        else:
            numbers[name] = integer(place, name, value)
    return Limits(**numbers, auto=frozenset(automatic))


def build_resets(
    place: Place,
    value: object,
    limits: Limits,
    defaults: Iterable[tuple[str, str]] = (),
    key: str = "reset",
    budgets: Iterable[str] = (),
) -> tuple[tuple[str, str], ...]:
    """(limit, timezone) for each set limit (and budget of ``budgets``, by name) counted in
    calendar periods."""
    chosen = dict(defaults)
    named = (*limits.named(), *budgets)
    if isinstance(value, str) and "=" not in value and value.strip():
        name = value.strip()
        tz = None if name.lower() == "rolling" else timezone(place, key, name)
        chosen = {} if tz is None else dict.fromkeys(named, tz)
    elif isinstance(value, str | Mapping):
        for limit, tz_name in _reset_items(place, key, value, named):
            if tz_name.lower() == "rolling":
                chosen.pop(limit, None)
            else:
                chosen[limit] = timezone(place, key, tz_name)
    elif value is not None:
        fix = "write a timezone such as UTC, rolling, or a table such as { rpd = 'UTC' }"
        raise place.error(f"reset must be a string or a table; {fix}", key)
    return tuple((name, chosen[name]) for name in named if name in chosen)


def _reset_items(
    place: Place, key: str, value: str | Mapping[object, object], named: Sequence[str]
) -> list[tuple[str, str]]:
    if isinstance(value, str):
        parts = [part.partition("=") for part in re.split(r"[;,\s]+", value) if part]
        pairs: list[tuple[object, object]] = [(name, tz) for name, _, tz in parts]
    else:
        pairs = list(value.items())
    found = []
    for name, tz in pairs:
        limit = str(name).strip().lower()
        if limit not in (*LIMIT_NAMES, *BUDGET_NAMES):
            fix = "write limit=timezone pairs such as rpd=America/Los_Angeles; rpm=rolling"
            names = ", ".join((*LIMIT_NAMES, *BUDGET_NAMES))
            raise place.error(f"{show(name)} is not a limit name ({names}); {fix}", key)
        if not isinstance(tz, str) or not tz.strip():
            raise place.error(f"{limit} has no timezone; write {limit}=UTC or {limit}=rolling", key)
        if limit not in named:
            fix = f"set a {limit} limit, or remove {limit} from reset"
            raise place.error(f"reset names {limit} but no {limit} limit is set; {fix}", key)
        found.append((limit, tz.strip()))
    return found


def build_endpoints(
    place: Place, row: Mapping[str, object], pools: Iterable[str] = ()
) -> list[Endpoint]:
    """The endpoints of one row: one, or one per key variable when ``api_key_env`` lists
    several (``A, B`` or a TOML list), in the keys' order, ids ``ID#1``, ``ID#2``, ... of
    the row's id (their ``group``), each with its own quota (the key variable is part of it)."""
    names = _key_envs(place, row.get("api_key_env"))
    first = build_endpoint(place, {**row, "api_key_env": names[0] if names else None}, pools)
    if len(names) < 2:
        return [first]
    return [
        replace(first, id=f"{first.id}#{n}", api_key_env=name, group=first.id)
        for n, name in enumerate(names, 1)
    ]


def build_endpoint(place: Place, row: Mapping[str, object], pools: Iterable[str] = ()) -> Endpoint:
    """An Endpoint from one row of column -> value (absent = empty), using the catalog."""
    provider = _required(place, row, "provider", "groq").lower()
    model = _required(place, row, "model", "llama-3.3-70b-versatile")
    known = _catalog.provider(provider)
    limits = build_limits(place, row)
    budgets = build_budgets(place, row)
    input_cost = number(place, "input_cost", row.get("input_cost"))
    output_cost = number(place, "output_cost", row.get("output_cost"))
    if budgets and input_cost is None and output_cost is None:
        name = next(iter(budgets))
        fix = "set input_cost and output_cost (USD per million tokens), or remove the budget"
        raise place.error(f"{name} is a dollar budget but the endpoint has no prices; {fix}", name)
    context = integer(place, "context", row.get("context"))
    max_output = _default(integer(place, "max_output", row.get("max_output")), DEFAULT_MAX_OUTPUT)
    if context is not None and max_output > context:
        fix = "lower max_output, or raise context"
        raise place.error(f"max_output {max_output} exceeds context {context}; {fix}", "max_output")
    return Endpoint(
        id=text(place, "name", row.get("name"), '"fast-llama"') or f"{provider}:{model}",
        provider=provider,
        model=model,
        base_url=_base_url(place, row, provider, known),
        api_key_env=_key_env(place, row, provider, known),
        limits=limits,
        resets=build_resets(
            place, row.get("reset"), limits, known.resets if known else (), budgets=budgets
        ),
        priority=integer(place, "priority", row.get("priority")),
        weight=_default(number(place, "weight", row.get("weight")), 1.0),
        input_cost=input_cost,
        output_cost=output_cost,
        context=context,
        max_output=max_output,
        pool=_pool_name(place, row, pools),
        dialect=known.dialect if known else "openai",
        capabilities=_capabilities(place, row.get("capabilities")),
        source=place.source,
        serves=_serves(place, row.get("serves"), provider, model, known),
        max_inputs=integer(place, "max_inputs", row.get("max_inputs")),
        concurrency=integer(place, "concurrency", row.get("concurrency")),
        usd_day=budgets.get("usd_day"),
        usd_month=budgets.get("usd_month"),
    )


def build_budgets(place: Place, row: Mapping[str, object]) -> dict[str, float]:
    """The dollar budgets of ``row`` that are set (``usd_day``, ``usd_month``): non-negative
    numbers (``$`` allowed), by name."""
    found = {name: number(place, name, row.get(name)) for name in BUDGET_NAMES}
    return {name: value for name, value in found.items() if value is not None}


def _default(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _required(place: Place, row: Mapping[str, object], key: str, example: str) -> str:
    value = text(place, key, row.get(key), example)
    if value is None:
        raise place.error(f"{key} is empty; write one, such as {example}", key)
    return value


def _base_url(
    place: Place, row: Mapping[str, object], provider: str, known: _catalog.Provider | None
) -> str:
    url = text(place, "base_url", row.get("base_url"), '"http://localhost:8000/v1"')
    if url is not None:
        if not url.lower().startswith(("http://", "https://")):
            fix = "write the server's OpenAI-compatible URL, such as https://api.example.com/v1"
            raise place.error(f"base_url must start with http:// or https://; {fix}", "base_url")
        return url
    if known is not None:
        return known.base_url
    names = [entry.name for entry in _catalog.providers()]
    close = suggest(provider, names)
    also = f"write {close!r} if you meant it, or " if close else ""
    fix = (f"{also}give a base_url (the server's OpenAI-compatible URL) for this endpoint; "
           f"known providers: {', '.join(names[:8])}, ...")  # fmt: skip
    raise place.error(f"unknown provider {show(provider)} and no base_url; {fix}", "provider")


def _key_env(
    place: Place, row: Mapping[str, object], provider: str, known: _catalog.Provider | None
) -> str:
    name = text(place, "api_key_env", row.get("api_key_env"), '"GROQ_API_KEY"')
    if name is None:
        if known is not None:
            return known.api_key_env
        return re.sub(r"[^A-Z0-9]", "_", provider.upper()) + "_API_KEY"
    if not _ENV_NAME.fullmatch(name) or looks_like_key(name):
        # Never echo the value: it may be the key itself, pasted in the wrong place.
        fix = "write the name of the variable that holds the key, such as GROQ_API_KEY"
        problem = "api_key_env must be an environment variable name (letters, digits, _)"
        raise place.error(f"{problem}, not the key itself; {fix}", "api_key_env")
    return name


_KEY_ENV = "api_key_env"
_KEY_PREFIXES = ("gsk_", "sk_", "hf_", "AIza", "xai_", "nvapi_", "csk_", "ghp_", "github_pat_")
"""How the providers' keys begin (Groq, OpenAI-style, Hugging Face, Google, xAI, NVIDIA,
Cerebras, GitHub) where a key is also a valid variable name."""


def looks_like_key(name: str) -> bool:
    """Whether ``name`` is more likely a key pasted in place of a variable's name: a key
    prefix, or a long mixed-case run with digits (variable names are short and upper-case)."""
    if name.startswith(_KEY_PREFIXES):
        return True
    return len(name) >= 24 and not name.isupper() and any(c.isdigit() for c in name)


def _key_envs(place: Place, value: object) -> list[str]:
    """The key variables ``api_key_env`` names: one, several (comma-separated, or a TOML
    list), each once; empty if absent. Never echoes an item: it may be a key pasted there."""
    if value is None or (isinstance(value, str) and "," not in value):
        return [value.strip()] if isinstance(value, str) and value.strip() else []
    fix = (
        'write a list of variable names such as ["GROQ_API_KEY", "GROQ_API_KEY_2"]'
        if place.toml
        else "write variable names separated by commas, such as GROQ_API_KEY, GROQ_API_KEY_2"
    )
    if not isinstance(value, str | list):
        raise place.error(f"api_key_env must be a string or a list of strings; {fix}", _KEY_ENV)
    items: list[object] = [*value.split(",")] if isinstance(value, str) else [*value]
    if not items:
        raise place.error(f"api_key_env lists no variable; {fix}, or {place.empty}", _KEY_ENV)
    names: list[str] = []
    for n, item in enumerate(items, 1):
        name = item.strip() if isinstance(item, str) else ""
        if not name:
            what = "not a string" if not isinstance(item, str) else "empty"
            raise place.error(f"item {n} of api_key_env is {what}; {fix}", _KEY_ENV)
        if not _ENV_NAME.fullmatch(name) or looks_like_key(name):
            problem = f"item {n} of api_key_env is not an environment variable name"
            raise place.error(
                f"{problem} (letters, digits, _; not the key itself); {fix}", _KEY_ENV
            )
        if name in names:
            again = f"item {n} of api_key_env repeats item {names.index(name) + 1}"
            fix = "remove the repeat (each variable is one key, one endpoint)"
            raise place.error(f"{again}; {fix}", _KEY_ENV)
        names.append(name)
    return names


def _pool_name(place: Place, row: Mapping[str, object], pools: Iterable[str]) -> str | None:
    name = text(place, "pool", row.get("pool"), '"openrouter-free"')
    if name is None or name in pools:
        return name
    shared = _catalog.pool(name)
    if shared is not None:
        return shared.name
    fix = (
        f"define it under [pools.{name}] in a TOML config, or use a catalog pool (openrouter-free)"
    )
    raise place.error(f"pool {show(name)} is not defined; {fix}", "pool")


_CAPABILITIES = tuple(sorted(CAPABILITIES, key=("tools", "vision", "json", *CAPABILITIES).index))
"""``CAPABILITIES`` in the order an error message lists them."""


def _capabilities(place: Place, value: object) -> frozenset[str]:
    return _names(place, value, "capabilities", "capability", _CAPABILITIES, "tools, json")


def _serves(
    place: Place, value: object, provider: str, model: str, known: _catalog.Provider | None
) -> frozenset[str]:
    """The kinds of request an endpoint takes: as written (comma-separated, or a TOML list),
    else what the catalog says of its model, else of its provider's chat models; a model
    whose id names embeddings (``...embed...``) takes embeddings only."""
    found = _names(place, value, "serves", "kind of request", KINDS, "chat, embeddings")
    if found:
        return found
    entry = _catalog.model_limits(provider, model)
    if entry is not None and entry.serves:
        return frozenset(entry.serves)
    if any(cue in model.lower() for cue in ("embed", "bge-")):  # bge: BAAI embedding models
        return frozenset({"embeddings"})
    return frozenset(known.serves if known else (CHAT,))


def _names(
    place: Place, value: object, key: str, what: str, known: Sequence[str], example: str
) -> frozenset[str]:
    """The names listed in ``value`` (comma-separated, or a TOML list), each one of
    ``known`` (ignoring case); empty if absent."""
    if isinstance(value, str):
        words: list[object] = [word for word in re.split(r"[,;\s]+", value) if word]
    elif isinstance(value, list):
        words = list(value)
    elif value is None:
        return frozenset()
    else:
        raise place.error(f"{key} must be a list; write e.g. {example}", key)
    found = set()
    for word in words:
        name = str(word).strip().lower()
        if name not in known:
            close = suggest(name, known)
            fix = f"write {close!r}" if close else f"use {', '.join(known[:-1])} or {known[-1]}"
            raise place.error(f"unknown {what} {show(word)}; {fix}", key)
        found.add(name)
    return frozenset(found)


def add_unique(seen: dict[str, Endpoint], row: Sequence[Endpoint], place: Place) -> None:
    """Add the endpoints of one row to ``seen`` by id, or raise naming both definitions.
    ``seen`` also holds each key list's group id (a row's id, see ``build_endpoints``) under
    that id, so that no other row takes it; ``unique`` drops those entries again."""
    names = [endpoint.id for endpoint in row] + [e.group for e in row[:1] if e.group]
    for name in names:
        first = seen.get(name)
        if first is not None:
            where = "column" if not place.toml else "key"
            fix = f"give one of them a distinct name (the name {where}), or remove one"
            problem = f"endpoint {name!r} is already defined at {first.source}"
            raise place.error(f"{problem}; {fix}", "name")
    for endpoint in row:
        seen[endpoint.id] = endpoint
        if endpoint.group:
            seen.setdefault(endpoint.group, endpoint)


def unique(seen: Mapping[str, Endpoint]) -> list[Endpoint]:
    """The endpoints ``add_unique`` collected, in order, each once."""
    return [endpoint for name, endpoint in seen.items() if name == endpoint.id]


def make_config(
    endpoints: Iterable[Endpoint],
    pools: Iterable[Pool] = (),
    routes: Iterable[Route] = (),
    store: str | None = None,
    strategy: str = "preference",
    source: str = "",
) -> Config:
    """A Config, adding each catalog pool an endpoint uses that the config did not define."""
    all_pools = {entry.name: entry for entry in pools}
    endpoints = tuple(endpoints)
    for endpoint in endpoints:
        if endpoint.pool is None or endpoint.pool in all_pools:
            continue
        shared = _catalog.pool(endpoint.pool)
        if shared is not None:
            all_pools[shared.name] = shared
    return Config(endpoints, tuple(all_pools.values()), tuple(routes), store, strategy, source)
