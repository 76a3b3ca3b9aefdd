"""What quota is counted in and for: the metrics (requests, tokens, micro-dollars), a rule
(at most so much of a metric per window) and a scope (an endpoint's or a pool's rules, with
what a decision reads of them ready-made). Pure values; the arithmetic is ``quota``'s."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .._config.endpoint import BUDGET_RULES, LIMIT_RULES, limit_name
from .money import MICRO
from .window import Window

REQUESTS = "requests"
TOKENS = "tokens"
USD = "usd"
"""Dollar budgets (``usd_day``, ``usd_month``): counted in micro-dollars, integers, so that
every store adds exactly."""
METRICS = (REQUESTS, TOKENS, USD)
INDEX: Mapping[str, int] = {REQUESTS: 0, TOKENS: 1, USD: 2}
"""Where each metric sits in a bucket's counts (requests, tokens, micro-dollars)."""
UNLIMITED = 2**63 - 1


def in_units(rule: Rule, amount: int) -> int | float:
    """An amount of ``rule``'s metric as the caller reads it: dollars for a budget."""
    return amount / MICRO if rule.metric == USD else amount


@dataclass(frozen=True, slots=True)
class Rule:
    """At most ``limit`` of ``metric`` (requests, tokens or micro-dollars) per ``window``."""

    metric: str
    window: Window
    limit: int
    name: str = field(init=False, compare=False)
    """The table's name of this rule: rpm, tpm, rph, tph, rpd, tpd, rpmo, tpmo, usd_day or
    usd_month."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", limit_name(self.metric, self.window.unit))


def rules_from_limits(
    limits: Iterable[tuple[str, int]], resets: Mapping[str, str]
) -> tuple[Rule, ...]:
    """Rules for ``(name, limit)`` pairs such as ``("rpm", 30)``; ``resets`` maps a name to a tz."""
    rules = []
    for name, limit in limits:
        metric, unit = LIMIT_RULES[name] if name in LIMIT_RULES else BUDGET_RULES[name]
        rules.append(Rule(metric, Window(unit, resets.get(name)), limit))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class Scope:
    """Something quota is counted for: an endpoint (``key`` = its id) or a pool (``pool:NAME``)."""

    key: str
    rules: tuple[Rule, ...]
    concurrency: int | None = None
    """The most requests in flight at once (a lease per reservation; None: no limit)."""
    windows: tuple[Window, ...] = field(init=False, repr=False, compare=False)
    """One window per stored unit (minute, hour, day, month) of the rules, in rule order: what a
    reservation charges."""
    groups: tuple[tuple[Window, tuple[Rule, ...]], ...] = field(
        init=False, repr=False, compare=False
    )
    """Each window with its rules: a decision reads a window's buckets once."""
    ceiling: tuple[int, int, int] = field(init=False, repr=False, compare=False)
    """The most requests, tokens and micro-dollars any one request may cost here (its
    smallest limits)."""
    named: Mapping[str, Rule] = field(init=False, repr=False, compare=False)
    """Its rules by name."""
    budgeted: bool = field(init=False, repr=False, compare=False)
    """Whether it has a dollar budget: a request on it is priced (``Cost.usd``)."""

    def __post_init__(self) -> None:
        distinct = tuple(dict.fromkeys(rule.window for rule in self.rules))
        groups = tuple((w, tuple(r for r in self.rules if r.window == w)) for w in distinct)
        stored = {w.key: Window(w.unit) for w in distinct}
        object.__setattr__(self, "windows", tuple(stored.values()))
        object.__setattr__(self, "groups", groups)
        limits = {metric: [r.limit for r in self.rules if r.metric == metric] for metric in METRICS}
        ceiling = (
            min(limits[REQUESTS], default=UNLIMITED),
            min(limits[TOKENS], default=UNLIMITED),
            min(limits[USD], default=UNLIMITED),
        )
        object.__setattr__(self, "ceiling", ceiling)
        object.__setattr__(self, "named", {rule.name: rule for rule in self.rules})
        object.__setattr__(self, "budgeted", any(rule.metric == USD for rule in self.rules))
