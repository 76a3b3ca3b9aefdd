"""Each limit of an endpoint as llamux knows it: configured, from the catalog, or learned.

Pure: no I/O, no clock. A limit cell holds a number, ``auto`` or nothing (no limit). What
llamux enforces for one rule:

* a number N: N, or the provider's own limit if it stated a lower one (``tightened``);
* ``auto``: the limit the provider stated (``learned``), else the catalog's for that provider
  and model (``catalog``; an entry that lacks the rule means the tier has no such limit:
  ``none``), else ``unknown``. A rule that is ``none`` or ``unknown`` still counts its usage
  (its window is charged), so that a limit learned later starts from the real history.

An endpoint whose every ``auto`` rule is still unknown, with nothing learned for it at all,
is *gated*: at most one request in flight until an answer states something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._config.endpoint import Limits

CONFIGURED = "configured"
TIGHTENED = "tightened"
LEARNED = "learned"
CATALOG = "catalog"
NONE = "none"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Learned:
    """A limit the provider stated, as the store keeps it."""

    limit: int
    at: float
    """When it was learned (epoch seconds)."""
    source: str
    """Where it was read: ``headers``, ``429``, ``probe`` or ``key endpoint``."""


@dataclass(frozen=True, slots=True)
class Known:
    """One configured rule of an endpoint and what llamux enforces for it."""

    name: str
    """rpm, tpm, rph, tph, rpd or tpd."""
    configured: int | None
    """The table's number; None for ``auto``."""
    catalog: int | None
    """The catalog's number for the provider and model, if it has one."""
    learned: Learned | None
    limit: int | None
    """What llamux enforces; None: no limit known (usage is still counted)."""
    origin: str
    """Where ``limit`` comes from: configured, tightened, learned, catalog, none or unknown."""

    @property
    def auto(self) -> bool:
        return self.configured is None


def known_limits(
    limits: Limits, catalog: Limits | None, learned: Mapping[str, Learned]
) -> tuple[Known, ...]:
    """Every set rule of ``limits`` (numbers and ``auto``), in ``LIMIT_NAMES`` order, with what
    llamux enforces. ``catalog``: the catalog entry's limits for the endpoint's provider and
    model (None: no entry); ``learned``: what the provider stated, by rule name."""
    out = []
    for name in limits.named():
        configured = limits.get(name)
        told = learned.get(name)
        listed = catalog.get(name) if catalog is not None else None
        if configured is not None:
            if told is not None and told.limit < configured:
                out.append(Known(name, configured, listed, told, told.limit, TIGHTENED))
            else:
                out.append(Known(name, configured, listed, told, configured, CONFIGURED))
        elif told is not None:
            out.append(Known(name, None, listed, told, told.limit, LEARNED))
        elif listed is not None:
            out.append(Known(name, None, listed, None, listed, CATALOG))
        else:
            origin = NONE if catalog is not None else UNKNOWN
            out.append(Known(name, None, None, None, None, origin))
    return tuple(out)


def gated(known: tuple[Known, ...], learned: Mapping[str, Learned]) -> bool:
    """Whether an endpoint must take one request at a time: it has ``auto`` rules, all still
    unknown, and the provider has stated nothing about it yet."""
    autos = [k for k in known if k.auto]
    return bool(autos) and not learned and all(k.origin == UNKNOWN for k in autos)


def enforced(known: tuple[Known, ...]) -> tuple[tuple[str, int | None], ...]:
    """(name, limit) of each rule to count, in ``LIMIT_NAMES`` order; None: count, no limit."""
    return tuple((k.name, k.limit) for k in known)


def declared(limits: Limits, resets: Mapping[str, str]) -> str:
    """The configured limits as one line (``rpm=auto rpd=1000@UTC``): what a config says,
    whatever was learned since (other processes with the same config say the same);
    ``resets``: the timezone of each limit counted in calendar periods."""
    parts = []
    for name in limits.named():
        value = "auto" if name in limits.auto else limits.get(name)
        parts.append(f"{name}={value}" + (f"@{resets[name]}" if name in resets else ""))
    return " ".join(parts)
