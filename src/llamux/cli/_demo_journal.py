"""The demo's journal: the notable events of a run, found in its outcomes and status data.

An event is said once: traffic moving down the preference order (an endpoint full), flowing
back up (a window rolled), every endpoint full (requests wait), an endpoint's limits
learned from the provider (tightened below the table, or ``auto`` filled in), the rush
ending, and any 429 (which the demo never expects).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._status import EndpointData, StatusData
from ._demo_traffic import CALM_PAUSE, Outcome, pace

DAMPING = 10.0
"""Simulated seconds in which the same move between two endpoints is not said again."""
WAITED = 1.0
"""Simulated seconds of waiting worth saying."""
LONG_WAIT = 5.0
"""Every endpoint full is said when the soonest frees in this many simulated seconds or
more (as a window rolls, the preferred endpoint frees a slot at a time: not worth saying)."""


def clock_text(seconds: float) -> str:
    """Simulated seconds as ``m:ss``."""
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


@dataclass(frozen=True, slots=True)
class Event:
    """One notable moment: ``at`` simulated seconds since the start; ``kind`` is ``down``,
    ``back``, ``wait``, ``learned``, ``calm`` or ``429``."""

    at: float
    kind: str
    text: str
    endpoint: str = ""
    """The endpoint it is about (where traffic went, what was learned), if one."""


class Journal:
    """Finds events as a run goes; ``order`` is the endpoints' preference order and
    ``table`` what the router's table says of each one's limits (``auto`` or a number)."""

    def __init__(self, order: Sequence[str], table: Mapping[str, Mapping[str, str]]) -> None:
        self.order, self.table = tuple(order), table
        self.events: list[Event] = []
        self._seen = 0
        self._last: str | None = None
        self._moved: dict[tuple[str, str], float] = {}
        self._told: set[tuple[str, str, int | None]] = set()
        self._all_full = False
        self._calm = False
        self._refused = 0

    def update(
        self,
        now: float,
        outcomes: Sequence[Outcome],
        data: StatusData,
        waiting: int,
        calm_since: float | None = None,
        refused: int = 0,
    ) -> list[Event]:
        """The new events at ``now`` (simulated seconds), also kept in ``events``."""
        fresh: list[Event] = []
        for outcome in outcomes[self._seen :]:
            fresh += self._moves(outcome)
        self._seen = len(outcomes)
        for endpoint in data["endpoints"]:
            fresh += self._learned(now, endpoint)
        fresh += self._waits(now, data, waiting)
        if calm_since is not None and not self._calm:
            self._calm = True
            text = f"the rush is over: the clients slow down to about {pace(CALM_PAUSE)} a minute"
            fresh.append(Event(calm_since, "calm", text))
        if refused > self._refused:
            fresh.append(
                Event(now, "429", f"{refused - self._refused} × HTTP 429 from the provider")
            )
            self._refused = refused
        fresh.sort(key=lambda e: e.at)
        self.events += fresh
        return fresh

    def _rank(self, endpoint: str | None) -> int:
        return self.order.index(endpoint) if endpoint in self.order else len(self.order)

    def _moves(self, outcome: Outcome) -> list[Event]:
        """Traffic moving down or back up the preference order with this answer."""
        to, before = outcome.endpoint, self._last
        if to is None or to not in self.order:
            return []
        self._last = to
        if before is None or before == to:
            return []
        at = outcome.done
        said = self._moved.get((before, to))
        self._moved[(before, to)] = at
        if said is not None and at - said < DAMPING:
            return []
        if self._rank(to) > self._rank(before):
            why = _full(outcome.skipped, self.order) or f"{before} full"
            return [Event(at, "down", f"{why}: traffic moves down to {to}", to)]
        text = f"{to}'s minute window rolled: traffic flows back to {to}"
        if outcome.waited >= WAITED:
            text += f" (#{outcome.number} waited {outcome.waited:.0f} s for it)"
        return [Event(at, "back", text, to)]

    def _learned(self, now: float, endpoint: EndpointData) -> list[Event]:
        """An endpoint's limits as the provider states them, said once per value."""
        name = endpoint["id"]
        new = [
            r
            for r in endpoint["rules"]
            if r["origin"] in ("tightened", "learned")
            and (name, r["rule"], r["limit"]) not in self._told
        ]
        if not new:
            return []
        self._told.update((name, r["rule"], r["limit"]) for r in new)
        said = self.table.get(name, {})
        parts = []
        for rule in new:
            part = f"{rule['rule']} {rule['limit']}"
            if rule["origin"] == "tightened":
                written = said.get(rule["rule"], "?")
                part += f" (the table says {written}): llamux keeps to {rule['limit']}"
            parts.append(part)
        if all(r["origin"] == "learned" for r in new):
            head = f"{name} (auto in the table): its first answer states"
        else:
            head = f"{name}: the provider states"
        return [Event(now, "learned", f"{head} {' · '.join(parts)}", name)]

    def _waits(self, now: float, data: StatusData, waiting: int) -> list[Event]:
        """Every endpoint full and requests waiting: said once each time it comes."""
        endpoints = data["endpoints"]
        if waiting == 0 or any(e["state"] == "ok" for e in endpoints):
            self._all_full = False
            return []
        soonest = min(endpoints, key=_frees_in)
        if self._all_full or _frees_in(soonest) < LONG_WAIT:
            return []
        self._all_full = True
        text = (
            f"all {len(endpoints)} full: requests wait; {soonest['id']} frees first, "
            f"in {_frees_in(soonest):.0f} s"
        )
        return [Event(now, "wait", text, soonest["id"])]


def _full(skipped: Sequence[str], order: Sequence[str]) -> str:
    """``fast-a full (rpm 12/12)``, or ``fast-a and mid-b full (rpm 12/12, rpm 10/10)``,
    from an outcome's passed-over endpoints (``fast-a rpm 12/12``)."""
    pairs = [s.split(" ", 1) for s in skipped]
    pairs = [p for p in pairs if len(p) == 2 and p[0] in order]
    if not pairs:
        return ""
    names = " and ".join(p[0] for p in pairs)
    return f"{names} full ({', '.join(p[1] for p in pairs)})"


def _frees_in(endpoint: EndpointData) -> float:
    """Seconds until ``endpoint`` admits a request again (its full rules' latest)."""
    cooling = endpoint["cooldown"]
    if cooling is not None:
        return cooling["seconds"]
    spent = [r["frees_in"] or 0.0 for r in endpoint["rules"] if r["remaining"] == 0]
    return max(spent, default=0.0)
