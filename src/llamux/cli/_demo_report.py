"""The demo's report: what a run did, as data (the summary prints it, tests check it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from .._status import StatusData
from ..testing._provider import FakeStats
from ._demo_journal import Event
from ._demo_traffic import Outcome


@dataclass(frozen=True)
class Report:
    """One run: every outcome, what the fake provider counted, the journal's events, the
    router's status at the end and the warnings llamux logged. Times are simulated
    seconds but ``wall`` (real seconds)."""

    requests: int
    speed: float
    outcomes: tuple[Outcome, ...]
    stats: Mapping[str, FakeStats]
    events: tuple[Event, ...]
    final: StatusData
    warnings: tuple[str, ...]
    simulated: float
    wall: float

    @property
    def served(self) -> int:
        return sum(o.endpoint is not None for o in self.outcomes)

    @property
    def refused(self) -> int:
        """429s the provider answered."""
        return sum(s.refused for s in self.stats.values())

    @property
    def failed_over(self) -> int:
        return sum(bool(o.failed) for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every request served, and the provider refused none."""
        return self.served == self.requests and self.refused == 0

    def served_by(self) -> Counter[str]:
        """Requests served, by endpoint (as the router recorded them)."""
        return Counter(o.endpoint for o in self.outcomes if o.endpoint is not None)

    def waits(self) -> list[float]:
        """The seconds each request that waited for capacity waited."""
        return [o.waited for o in self.outcomes if o.waited > 0]

    def kinds(self, kind: str) -> list[Event]:
        """The journal's events of one kind (``back``: traffic flowed back up)."""
        return [e for e in self.events if e.kind == kind]

    def learned(self) -> dict[str, dict[str, tuple[int, str]]]:
        """Per endpoint, the limits the provider stated that llamux keeps to now, by rule:
        ``(limit, origin)`` with origin ``tightened`` (below the table) or ``learned``."""
        out: dict[str, dict[str, tuple[int, str]]] = {}
        for endpoint in self.final["endpoints"]:
            for rule in endpoint["rules"]:
                limit = rule["limit"]
                if rule["origin"] in ("tightened", "learned") and limit is not None:
                    out.setdefault(endpoint["id"], {})[rule["rule"]] = (limit, rule["origin"])
        return out

    def states(self) -> dict[str, str]:
        """Each endpoint's state at the end (``ok``, ``full``, ``cooldown``, ...)."""
        return {e["id"]: e["state"] for e in self.final["endpoints"]}
