"""The configuration's values: endpoints, their limits, pools, routes and the whole config.

Frozen dataclasses and the constants that name their fields; no parsing here (that is
``_config``, ``_config_build`` and ``_config_toml``), so every module can use them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

LIMIT_RULES: Mapping[str, tuple[str, str]] = {
    "rpm": ("requests", "minute"),
    "tpm": ("tokens", "minute"),
    "rph": ("requests", "hour"),
    "tph": ("tokens", "hour"),
    "rpd": ("requests", "day"),
    "tpd": ("tokens", "day"),
    "rpmo": ("requests", "month"),
    "tpmo": ("tokens", "month"),
}
"""Each limit name (a table column, a ``Limits`` field, a rule's name) and what it counts:
(metric, window). The one list of limit names: every other module reads it from here."""
LIMIT_NAMES: tuple[str, ...] = tuple(LIMIT_RULES)
"""Requests / tokens per minute, hour, day and month."""
BUDGET_RULES: Mapping[str, tuple[str, str]] = {
    "usd_day": ("usd", "day"),
    "usd_month": ("usd", "month"),
}
"""The dollar budgets (a table column, an ``Endpoint`` / ``Pool`` field, a rule's name) and
what they count: micro-dollars per day or month, priced from ``input_cost`` / ``output_cost``."""
BUDGET_NAMES: tuple[str, ...] = tuple(BUDGET_RULES)
_NAME_OF = {rule: name for name, rule in (*LIMIT_RULES.items(), *BUDGET_RULES.items())}


def limit_name(metric: str, window: str) -> str:
    """The limit name of ``metric`` (requests, tokens, usd) per ``window`` (minute ... month)."""
    try:
        return _NAME_OF[(metric, window)]
    except KeyError:
        raise ValueError(f"no limit counts {metric!r} per {window!r}") from None


DIALECTS: tuple[str, ...] = (
    "openai",
    "groq",
    "cerebras",
    "mistral",
    "anthropic",
    "openrouter",
    "gemini",
    "sambanova",
)
"""The rate-limit header dialects llamux understands (an endpoint's ``dialect``): the
catalog, the header parser and the fake provider all know exactly these."""

KINDS: tuple[str, ...] = ("chat", "embeddings", "responses", "completions")
"""The kinds of request an endpoint may serve (its ``serves``): chat completions, embeddings,
the Responses API, legacy text completions."""
CHAT = "chat"

CAPABILITIES = frozenset({"tools", "vision", "json"})
STRATEGIES = ("preference", "cheapest", "fastest", "balanced", "round_robin", "weighted")
"""The names of the built-in routing strategies (see ``_strategies.STRATEGIES``)."""
COLUMNS: tuple[str, ...] = (
    *("provider", "model", *LIMIT_NAMES, "name", "base_url", "api_key_env", "priority"),
    *("weight", "input_cost", "output_cost", "context", "max_output", "pool", "reset"),
    *("capabilities", "serves", "max_inputs", "concurrency", *BUDGET_NAMES),
)
"""Every column a table (or key an ``[[endpoints]]`` table) may have."""

DEFAULT_TIMEOUT = 120.0
"""Seconds each phase of a provider call may take (connect, send, each read)."""
DEFAULT_MAX_OUTPUT = 1024


AUTO = "auto"
"""A limit cell's value meaning "the limit the provider has, as best llamux knows"."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Up to eight limits (``LIMIT_NAMES``); None means no limit, 0 means never use that
    metric. A name in ``auto`` (its value None) is the provider's own limit, as best llamux
    knows: learned from the provider, else the catalog's, else unknown (see
    ``_policy/known_limits``)."""

    rpm: int | None = None
    tpm: int | None = None
    rph: int | None = None
    tph: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    rpmo: int | None = None
    tpmo: int | None = None
    auto: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        wrong = [name for name in self.auto if name not in LIMIT_RULES]
        clash = [name for name in self.auto if name in LIMIT_RULES and self.get(name) is not None]
        if wrong or clash:
            raise ValueError(f"auto names unknown or numeric limits: {sorted(wrong + clash)}")

    def items(self) -> tuple[tuple[str, int], ...]:
        """The limits that are set to numbers, as (name, limit), in ``LIMIT_NAMES`` order."""
        pairs = ((name, getattr(self, name)) for name in LIMIT_NAMES)
        return tuple((name, value) for name, value in pairs if value is not None)

    def named(self) -> tuple[str, ...]:
        """Every limit that is set, to a number or to ``auto``, in ``LIMIT_NAMES`` order."""
        return tuple(n for n in LIMIT_NAMES if n in self.auto or getattr(self, n) is not None)

    def get(self, name: str) -> int | None:
        """The limit called ``name`` (``rpm`` ... ``tpmo``), or None if unset."""
        value: int | None = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider + model pair that requests can be routed to."""

    id: str
    provider: str
    model: str
    base_url: str
    api_key_env: str
    limits: Limits = Limits()
    resets: tuple[tuple[str, str], ...] = ()
    """(limit name, IANA timezone) for each limit counted in calendar periods."""
    priority: int | None = None
    weight: float = 1.0
    input_cost: float | None = None
    output_cost: float | None = None
    context: int | None = None
    max_output: int = DEFAULT_MAX_OUTPUT
    pool: str | None = None
    dialect: str = "openai"
    capabilities: frozenset[str] = frozenset()
    source: str = ""
    serves: frozenset[str] = frozenset({CHAT})
    """The kinds of request it takes (``KINDS``); a request goes only to endpoints of its kind."""
    max_inputs: int | None = None
    """The most inputs one embeddings request may carry (None: no limit known)."""
    group: str | None = None
    """The id of the row it comes from when that row lists several key variables (its own
    id is then ``GROUP#N``, the N-th key): the group id selects all of them, in order."""
    concurrency: int | None = None
    """The most requests in flight at once on its quota, across every process and machine
    sharing the store (a lease per request; None: no limit)."""
    usd_day: float | None = None
    """The most dollars its requests may cost per day (None: no budget), priced from its
    ``input_cost`` and ``output_cost``; calendar days if ``reset`` names a timezone for it."""
    usd_month: float | None = None
    """The most dollars per month (rolling 30 days, or calendar months with ``reset``)."""

    def budgets(self) -> tuple[tuple[str, float], ...]:
        """The budgets that are set, as (name, dollars), in ``BUDGET_NAMES`` order."""
        return _budgets(self.usd_day, self.usd_month)

    def reset_for(self, limit_name: str) -> str | None:
        """The timezone whose calendar periods ``limit_name`` resets in, or None (rolling)."""
        return dict(self.resets).get(limit_name)


@dataclass(frozen=True, slots=True)
class Pool:
    """A quota shared by every endpoint that names it (e.g. all OpenRouter ``:free`` models)."""

    name: str
    limits: Limits
    resets: tuple[tuple[str, str], ...] = ()
    source: str = ""
    concurrency: int | None = None
    """The most requests in flight at once over all its endpoints (None: no limit)."""
    usd_day: float | None = None
    """The most dollars all its endpoints' requests may cost per day (None: no budget)."""
    usd_month: float | None = None
    """The most dollars per month over all its endpoints (None: no budget)."""

    def budgets(self) -> tuple[tuple[str, float], ...]:
        """The budgets that are set, as (name, dollars), in ``BUDGET_NAMES`` order."""
        return _budgets(self.usd_day, self.usd_month)


def _budgets(day: float | None, month: float | None) -> tuple[tuple[str, float], ...]:
    pairs = zip(BUDGET_NAMES, (day, month), strict=True)
    return tuple((name, value) for name, value in pairs if value is not None)


@dataclass(frozen=True, slots=True)
class Route:
    """A name callers pass as ``model``, served by these endpoints (ids, in order)."""

    name: str
    endpoints: tuple[str, ...]
    strategy: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a router needs: endpoints in row order, pools, routes, store, strategy."""

    endpoints: tuple[Endpoint, ...]
    pools: tuple[Pool, ...] = ()
    routes: tuple[Route, ...] = ()
    store: str | None = None
    strategy: str = "preference"
    source: str = ""
