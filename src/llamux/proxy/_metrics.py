"""The proxy's counters, in process: Prometheus text for ``/metrics``, minute rings for the
dashboard's requests- and tokens-per-minute charts, and the last requests (``/v1/llamux/requests``).

Fed by :func:`llamux._relay.arelay`'s ``done`` callback (from worker threads too, hence
the lock), by the proxy when it answers "no endpoint available", and by the request log
(:mod:`._log`) when a chat request's answer has ended.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._engine.served import Attempt, Served
    from .._status import RuleData, StatusData

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds (seconds) of the request duration histogram."""
MINUTES = 60
"""How many minutes of history the dashboard chart shows."""
RECENT = 50
"""How many of the last chat requests are kept (in memory) for the dashboard."""
NO_ENDPOINT = "(no endpoint)"
"""The series name, in the history, of requests answered 429: no endpoint available."""


class Histogram:
    """Cumulative-bucket histogram of durations (Prometheus semantics)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*map(_number, BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {_number(self.total)}")
        out.append(f"{name}_count{{{labels}}} {running}")
        return out


class Metrics:
    """Per endpoint: requests served, failed attempts, quota refusals, tokens, dollars spent
    (priced endpoints), durations; overall: requests answered "no endpoint available"; and
    requests per minute."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.since = clock()
        self._lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.spent: dict[str, float] = {}
        """Dollars spent per endpoint with prices (``Served.usd``)."""
        self.unavailable = 0
        self._durations: dict[str, Histogram] = {}
        self._minutes: dict[int, Counter[str]] = {}
        self._tokens: dict[int, Counter[str]] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def observe(self, attempts: Sequence[Attempt], served: Served | None, seconds: float) -> None:
        """Count one request's attempts and, if it was served, its tokens and duration."""
        with self._lock:
            for attempt in attempts:
                if attempt.outcome == "failed":
                    self.failed[attempt.endpoint] += 1
                elif attempt.outcome == "refused":
                    self.refused[attempt.endpoint] += 1
            if served is None:
                return
            self.served[served.endpoint] += 1
            tokens = served.tokens if served.tokens is not None else served.estimated_tokens
            self.tokens[served.endpoint] += tokens
            if served.usd is not None:
                self.spent[served.endpoint] = self.spent.get(served.endpoint, 0.0) + served.usd
            self._durations.setdefault(served.endpoint, Histogram()).observe(seconds)
            self._minute(self._minutes)[served.endpoint] += 1
            self._minute(self._tokens)[served.endpoint] += tokens

    def no_endpoint(self) -> None:
        """Count a request answered 429: no endpoint could take it."""
        with self._lock:
            self.unavailable += 1
            self._minute(self._minutes)[NO_ENDPOINT] += 1

    def _minute(self, ring: dict[int, Counter[str]]) -> Counter[str]:
        now = int(self._clock() // 60)
        for old in [m for m in ring if m <= now - MINUTES]:
            del ring[old]
        return ring.setdefault(now, Counter())

    def history(self) -> dict[str, Any]:
        """Requests per minute over the last hour, oldest first, per endpoint, refusals (no
        endpoint available) under ``"(no endpoint)"``; and ``tokens`` per minute likewise."""
        now = int(self._clock() // 60)
        first = now - MINUTES + 1
        with self._lock:
            requests, tokens = _series(self._minutes, first, now), _series(self._tokens, first, now)
        return {
            "start": first * 60,
            "step": 60,
            "minutes": MINUTES,
            "series": requests,
            "tokens": tokens,
        }

    def record(self, request: dict[str, Any]) -> None:
        """Keep one finished chat request (as :func:`._log.fields` gives it) among the last."""
        with self._lock:
            self._recent.append(request)

    def requests(self) -> dict[str, Any]:
        """Since the proxy started: per endpoint, requests served, failed attempts, quota
        refusals, tokens and dollars spent (``usd``, 0 for an endpoint without prices); the
        requests answered "no endpoint available"; and the last
        chat requests, newest first."""
        with self._lock:
            names = sorted({*self.served, *self.failed, *self.refused})
            endpoints = {
                name: {
                    "served": self.served[name],
                    "failed": self.failed[name],
                    "refused": self.refused[name],
                    "tokens": self.tokens[name],
                    "usd": self.spent.get(name, 0.0),
                }
                for name in names
            }
            recent = list(reversed(self._recent))
            unavailable = self.unavailable
        return {
            "since": self.since,
            "endpoints": endpoints,
            "no_endpoint": unavailable,
            "kept": RECENT,
            "recent": recent,
        }

    def text(self, status: StatusData | None = None) -> str:
        """Everything in the Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            lines = [
                *_family("llamux_requests_total", "counter", "Requests served.", self.served),
                *_family("llamux_tokens_total", "counter", "Tokens used.", self.tokens),
                *_family(
                    "llamux_spend_usd_total",
                    "counter",
                    "Dollars spent, at the endpoint's input_cost and output_cost.",
                    self.spent,
                ),
                *_family("llamux_failures_total", "counter", "Failed provider calls.", self.failed),
                *_family(
                    "llamux_refusals_total",
                    "counter",
                    "Times an endpoint's quota refused a request.",
                    self.refused,
                ),
                "# HELP llamux_no_endpoint_total Requests answered 429: no endpoint available.",
                "# TYPE llamux_no_endpoint_total counter",
                f"llamux_no_endpoint_total {self.unavailable}",
                *self._duration_lines(),
            ]
        if status is not None:
            lines += _quota_lines(status)
        return "\n".join(lines) + "\n"

    def _duration_lines(self) -> list[str]:
        name = "llamux_request_duration_seconds"
        lines = [
            f"# HELP {name} Time from the proxy receiving a request to its last byte.",
            f"# TYPE {name} histogram",
        ]
        for endpoint, histogram in sorted(self._durations.items()):
            lines += histogram.lines(name, f'endpoint="{_escape(endpoint)}"')
        return lines


def _series(ring: dict[int, Counter[str]], first: int, now: int) -> dict[str, list[int]]:
    """Per name, its count in each minute from ``first`` to ``now``."""
    minutes = {m: dict(c) for m, c in ring.items() if m >= first}
    names = sorted({name for counts in minutes.values() for name in counts})
    return {
        name: [minutes.get(m, {}).get(name, 0) for m in range(first, now + 1)] for name in names
    }


def _family(name: str, kind: str, help_: str, values: Mapping[str, float]) -> list[str]:
    lines = [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    lines += [f'{name}{{endpoint="{_escape(k)}"}} {_value(v)}' for k, v in sorted(values.items())]
    return lines


def _value(value: float) -> str:
    """A sample's value: a count as is, dollars to the micro-dollar."""
    return str(value) if isinstance(value, int) else f"{value:.6f}".rstrip("0").rstrip(".")


def _quota_lines(status: StatusData) -> list[str]:
    """Gauges of each rule's use and limit, per endpoint and pool, as ``llamux status``
    (a dollar budget's in dollars)."""
    rules = [(ep["id"], r) for ep in status["endpoints"] for r in ep["rules"]]
    rules += [(f"pool:{p['name']}", r) for p in status["pools"] for r in p["rules"]]
    used, limit = "llamux_quota_used", "llamux_quota_limit"
    lines = [f"# HELP {used} Quota used in the rule's window, now.", f"# TYPE {used} gauge"]
    lines += [f"{used}{{{_rule_labels(scope, r['rule'])}}} {_used(r)}" for scope, r in rules]
    lines += [f"# HELP {limit} The rule's limit.", f"# TYPE {limit} gauge"]
    lines += [
        f"{limit}{{{_rule_labels(scope, r['rule'])}}} {_limit(r)}"
        for scope, r in rules
        if r["limit"] is not None  # an auto limit not known yet has none to show
    ]
    return lines


def _used(rule: RuleData) -> str:
    spent = rule.get("spent_usd")
    return str(rule["used"]) if spent is None else _value(spent)


def _limit(rule: RuleData) -> str:
    budget = rule.get("budget_usd")
    return str(rule["limit"]) if budget is None else _value(budget)


def _rule_labels(scope: str, rule: str) -> str:
    return f'scope="{_escape(scope)}",rule="{_escape(rule)}"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else f"{int(value)}.0"
