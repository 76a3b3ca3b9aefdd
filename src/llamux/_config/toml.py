"""The TOML config: the endpoints of a table plus pools, routes, the store and the strategy.

Example::

    store = "sqlite:///path/state.db"   # optional: where quota state persists
    strategy = "preference"             # optional: the default routing strategy

    [[endpoints]]                       # one table per endpoint, in order of preference
    provider = "groq"
    model = "llama-3.3-70b-versatile"
    rpm = 30
    tpm = 6000
    rpd = 1000
    reset = "UTC"                       # or a table: reset = { rpd = "America/Los_Angeles" }
    # every optional column of the table format is a key here too:
    # name, base_url, api_key_env, priority, weight, input_cost, output_cost, context,
    # max_output, pool, usd_day, usd_month (dollar budgets: a pool may have them too),
    # capabilities (a list: ["tools", "json"]), and
    # api_key_env = ["GROQ_API_KEY", "GROQ_API_KEY_2"]: one endpoint per key (ID#1, ID#2)

    [[endpoints]]
    provider = "cerebras"
    model = "llama3.3-70b"
    rpm = 30

    [[endpoints]]
    provider = "openrouter"
    model = "meta-llama/llama-3.3-70b-instruct:free"
    pool = "openrouter-free"

    [pools.openrouter-free]             # a quota shared by every endpoint that names it
    rpm = 20
    rpd = 50
    reset = { rpd = "UTC" }

    [routes.fast]                       # callers pass model="fast"
    endpoints = ["groq:llama-3.3-70b-versatile", "cerebras:llama3.3-70b"]
    strategy = "fastest"

Values are checked as in the table format. A pool not defined here may be one of the
catalog's (``openrouter-free``); a pool defined here replaces the catalog's of that name.
Errors name the file, the line when it can be found, and the key path as the column
(``endpoints[0].rpm``, counting from 0).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Collection, Mapping, Sequence

from .._errors import ConfigError
from .build import (
    add_unique,
    build_budgets,
    build_endpoints,
    build_limits,
    build_resets,
    make_config,
    unique,
)
from .endpoint import (
    BUDGET_NAMES,
    COLUMNS,
    LIMIT_NAMES,
    STRATEGIES,
    Config,
    Endpoint,
    Pool,
    Route,
)
from .values import Place, check_keys, integer, show, suggest, text

TOP_KEYS = ("store", "strategy", "endpoints", "pools", "routes")
POOL_KEYS = (*LIMIT_NAMES, "concurrency", *BUDGET_NAMES, "reset")
ROUTE_KEYS = ("endpoints", "strategy")

_Lines = Mapping[str, Mapping[str, int]]
"""Section path ("" for the top, ``endpoints[0]``, ``pools.NAME``) -> key -> line."""

# A table header: ``[name]`` or ``[[name]]``, then an optional comment. No two parts of these
# patterns can match the same characters, so a line is matched in linear time whatever it holds
# (a lazy name followed by ``\s*`` made a long line of ``[`` and blanks cubic: minutes for 60 KB).
_HEADER = re.compile(r"\s*\[(\[?)([^\[\]#]*)\]\]?\s*(?:#.*)?")
_HEADER_NAME = re.compile(r"[\w.\- \"']+")
_KEY = re.compile(r"\s*([\w-]+|\"[^\"]*\")\s*=")


def parse_toml(text: str, source: str = "<string>") -> Config:
    """Parse a TOML config into a Config."""
    text = text.removeprefix("\ufeff")
    data = _loads(text, source)
    lines = _locate(text)
    top = Place(source, key_lines=lines.get("", {}), toml=True)
    check_keys(top, data, TOP_KEYS, "key")
    pools = _pools(top, data.get("pools"), lines)
    budgeted = {pool.name for pool in pools if pool.budgets()}
    endpoints = _endpoints(
        top, data.get("endpoints"), lines, [pool.name for pool in pools], budgeted
    )
    ids = [*(e.id for e in endpoints), *dict.fromkeys(e.group for e in endpoints if e.group)]
    routes = _routes(top, data.get("routes"), lines, ids)
    store = _store(top, data.get("store"))
    strategy = _strategy(top, "strategy", data.get("strategy")) or "preference"
    return make_config(endpoints, pools, routes, store, strategy, source)


def _loads(text: str, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", message)
        problem = re.sub(r"\s*\(at [^)]*\)", "", message)
        at = f" at column {where[2]}" if where else ""
        fix = "fix the syntax there (strings need quotes, sections [brackets]; see toml.io)"
        line = int(where[1]) if where else None
        raise ConfigError(f"not valid TOML: {problem}{at}; {fix}", file=source, line=line) from None


def _locate(text: str) -> dict[str, dict[str, int]]:
    """Best effort: the line of each section header ("" key) and of each key in it."""
    found: dict[str, dict[str, int]] = {"": {}}
    section, count = "", 0
    for number, line in enumerate(text.split("\n"), 1):
        header = _header(line)
        if header is not None:
            double, name = header
            section = re.sub(r"[\s\"']", "", name)
            if double and section == "endpoints":
                section, count = f"endpoints[{count}]", count + 1
            found.setdefault(section, {"": number})
        elif key := _KEY.match(line):
            found.setdefault(section, {}).setdefault(key[1].strip('"').lower(), number)
    return found


def _header(line: str) -> tuple[bool, str] | None:
    """(is it ``[[...]]``, the name inside) when ``line`` is a table header, else None."""
    header = _HEADER.fullmatch(line)
    if header is None:
        return None
    name = header[2].strip()
    if not _HEADER_NAME.fullmatch(name):
        return None
    return bool(header[1]), name


def _section(top: Place, lines: _Lines, path: str, parent: str) -> Place:
    keys = lines.get(path, {})
    line = keys.get("", top.key_lines.get(parent))
    return Place(top.file, line, prefix=f"{path}.", key_lines=keys, toml=True)


def _table(place: Place, value: object) -> dict[str, object]:
    """A TOML table with lower-cased keys; blank strings dropped like empty cells."""
    if not isinstance(value, dict):
        path = place.prefix.rstrip(".")
        raise place.error(f"{path} must be a table; write it as [{path}] with key = value lines")
    table = {str(key).lower(): item for key, item in value.items()}
    if len(table) != len(value):
        raise place.error("a key appears twice in different case; keep one")
    return {key: item for key, item in table.items() if not _blank(item)}


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _endpoints(
    top: Place,
    value: object,
    lines: _Lines,
    pools: Sequence[str],
    budgeted: Collection[str] = (),
) -> list[Endpoint]:
    """The endpoints; one drawing on a pool with a dollar budget (``budgeted``) must have
    prices, or its requests would cost that budget nothing."""
    if value is None or value == []:
        fix = "add an [[endpoints]] table with provider and model for each endpoint"
        raise top.error(f"the config defines no endpoints; {fix}")
    if not isinstance(value, list):
        fix = "write one [[endpoints]] table per endpoint"
        raise top.error(f"endpoints must be a list of tables; {fix}", "endpoints")
    seen: dict[str, Endpoint] = {}
    for index, entry in enumerate(value):
        place = _section(top, lines, f"endpoints[{index}]", "endpoints")
        row = _table(place, entry)
        check_keys(place, row, COLUMNS, "key")
        built = build_endpoints(place, row, pools)
        if built[0].pool in budgeted and not _priced(built[0]):
            fix = "set input_cost and output_cost (USD per million tokens), or another pool"
            problem = f"pool {built[0].pool!r} has a dollar budget but this endpoint no prices"
            raise place.error(f"{problem}; {fix}", "pool")
        add_unique(seen, built, place)
    return unique(seen)


def _pools(top: Place, value: object, lines: _Lines) -> list[Pool]:
    if value is None:
        return []
    if not isinstance(value, dict):
        fix = "write one [pools.NAME] section per pool"
        raise top.error(f"pools must be a table of pools; {fix}", "pools")
    found = []
    for name, entry in value.items():
        place = _section(top, lines, f"pools.{name}", "pools")
        row = _table(place, entry)
        check_keys(place, row, POOL_KEYS, "pool key")
        limits = build_limits(place, row, auto=False)
        concurrency = integer(place, "concurrency", row.get("concurrency"))
        budgets = build_budgets(place, row)
        if not limits.items() and concurrency is None and not budgets:
            fix = f"add at least one of {', '.join(POOL_KEYS[:-1])}, or remove the pool"
            raise place.error(f"pool {show(name)} sets no limit; {fix}")
        resets = build_resets(place, row.get("reset"), limits, budgets=budgets)
        found.append(
            Pool(
                *(str(name), limits, resets, place.source, concurrency),
                usd_day=budgets.get("usd_day"),
                usd_month=budgets.get("usd_month"),
            )
        )
    return found


def _priced(endpoint: Endpoint) -> bool:
    return endpoint.input_cost is not None or endpoint.output_cost is not None


def _routes(top: Place, value: object, lines: _Lines, ids: Sequence[str]) -> list[Route]:
    if value is None:
        return []
    if not isinstance(value, dict):
        fix = "write one [routes.NAME] section per route"
        raise top.error(f"routes must be a table of routes; {fix}", "routes")
    found = []
    for name, entry in value.items():
        place = _section(top, lines, f"routes.{name}", "routes")
        row = _table(place, entry)
        check_keys(place, row, ROUTE_KEYS, "route key")
        members = _members(place, row.get("endpoints"), ids)
        found.append(Route(str(name), members, _strategy(place, "strategy", row.get("strategy"))))
    return found


def _members(place: Place, value: object, ids: Sequence[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        fix = 'write endpoints = ["groq:llama-3.3-70b-versatile", ...] with endpoint ids'
        raise place.error(f"endpoints must be a non-empty list of endpoint ids; {fix}", "endpoints")
    members = tuple(str(member).strip() for member in value)
    for index, member in enumerate(members):
        if member not in ids:
            close = suggest(member, ids)
            fix = (
                f"write {close!r}"
                if close
                else "use the id of an endpoint (name or provider:model)"
            )
            raise place.error(f"no endpoint has the id {show(member)}; {fix}", "endpoints")
        if member in members[:index]:
            raise place.error(f"{show(member)} is listed twice; remove the repeat", "endpoints")
    return members


def _strategy(place: Place, key: str, value: object) -> str | None:
    name = text(place, key, value, '"preference"')
    if name is None or name in STRATEGIES:
        return name
    close = suggest(name, STRATEGIES)
    fix = f"write {close!r}" if close else f"use one of {', '.join(STRATEGIES)}"
    raise place.error(f"unknown strategy {show(name)}; {fix}", key)


def _store(place: Place, value: object) -> str | None:
    url = text(place, "store", value, '"sqlite:///path/state.db"')
    if url is not None and "://" not in url:
        # Never echo the URL: a redis URL may carry a password.
        fix = "write a URL such as sqlite:///path/state.db, memory:// or redis://host:6379/0"
        raise place.error(f"store must be a URL; {fix}", "store")
    return url
