"""``llamux demo``: a real Router routes a burst of requests to local fake providers, live.

Three fake endpoints on 127.0.0.1 enforce their limits strictly (any request over a limit
gets an HTTP 429). The router is configured with the same limits for the first two and
``auto`` for the third (learned from its first answer's headers), and an in-memory store,
so it fills them in order of preference and never draws a 429. Nothing is written to disk; the
only change to the environment is a dummy key variable, set for the demo and restored after.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._config.load import parse_table
from .._engine.served import served_by
from .._errors import LlamuxError
from .._router import Router
from ..testing._provider import FakeEndpoint, FakeProvider, FakeStats

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from .._status import EndpointData

KEY_ENV = "LLAMUX_DEMO_API_KEY"
KEY = "llamux-demo-not-a-secret"
THREADS = 4
MAX_TOKENS = 120
LOG_LINES = 8
TICK = 0.1

ENDPOINTS = (
    FakeEndpoint("fast-a", model="fast-model", rpm=12, tpm=2000, delay=0.05),
    FakeEndpoint("mid-b", model="mid-model", rpm=8, tpm=1200, delay=0.12),
    FakeEndpoint("slow-c", model="slow-model", rpm=20, tpm=4000, delay=0.3),
)
"""In order of preference. Capacity: 40 requests a minute in all."""
LEARNED = "slow-c"
"""The endpoint whose limits the demo's table leaves to llamux (``auto``)."""


def _fakes() -> list[FakeEndpoint]:
    return [
        FakeEndpoint(
            e.name,
            model=e.model,
            rpm=e.rpm,
            tpm=e.tpm,
            delay=e.delay,
            completion_tokens=100,
            api_key=KEY,
        )
        for e in ENDPOINTS
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one request of the burst."""

    number: int
    endpoint: str | None
    """Who served it; None if nobody did."""
    seconds: float
    skipped: tuple[str, ...] = ()
    """``endpoint reason`` for each endpoint passed over on the way (``fast-a rpm 12/12``)."""
    failed: tuple[str, ...] = ()
    """Endpoints that answered an error, so the request failed over."""
    error: str = ""

    def line(self) -> str:
        head = f"#{self.number:<3} "
        if self.endpoint is None:
            return f"{head}not served: {self.error}"
        text = f"{head}→ {self.endpoint:<7} {self.seconds:5.2f} s"
        if self.failed:
            text += f"  failed over from {', '.join(self.failed)}"
        if self.skipped:
            text += f"  passed over {', '.join(self.skipped)}"
        return text


class Burst:
    """The demo's requests: sent from worker threads, outcomes collected under a lock."""

    def __init__(self, router: Router, requests: int, seconds: float) -> None:
        self.router, self.requests = router, requests
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self._outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def outcomes(self) -> list[Outcome]:
        with self._lock:
            return list(self._outcomes)

    def send(self, number: int) -> None:
        started = time.monotonic()
        messages = [{"role": "user", "content": f"Request {number}: say something kind."}]
        budget = max(0.0, self.deadline - started)
        try:
            response = self.router.completion(messages, max_tokens=MAX_TOKENS, wait=budget)
        except LlamuxError as error:
            outcome = Outcome(number, None, time.monotonic() - started, error=str(error))
        else:
            outcome = _outcome(number, response, time.monotonic() - started)
        with self._lock:
            self._outcomes.append(outcome)

    def drive(self, tick: Callable[[], None]) -> None:
        """Send every request from ``THREADS`` threads, calling ``tick`` until all are done."""
        pool = ThreadPoolExecutor(THREADS, thread_name_prefix="llamux-demo")
        try:
            futures = [pool.submit(self.send, n) for n in range(1, self.requests + 1)]
            while wait(futures, timeout=TICK).not_done:
                tick()
            for future in futures:
                future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        tick()


def _outcome(number: int, response: Any, seconds: float) -> Outcome:
    served = served_by(response)
    if served is None:
        return Outcome(number, "?", seconds)
    attempts = served.attempts
    skipped = tuple(
        f"{a.endpoint} {a.reason.removesuffix(' used')}" for a in attempts if a.outcome == "refused"
    )
    failed = tuple(a.endpoint for a in attempts if a.outcome == "failed")
    return Outcome(number, served.endpoint, seconds, skipped, failed)


def run_demo(requests: int = 40, seconds: float = 20.0, console: Console | None = None) -> int:
    """Run the demo; 0 if every request was served and the provider refused none."""
    from rich.console import Console

    console = console or Console(highlight=False)
    live = console.is_terminal and not console.is_dumb_terminal
    import openai  # noqa: F401  (loaded now, not inside the timed burst)

    with _demo_key(), FakeProvider(_fakes()) as fake:
        _intro(console, fake, requests, seconds)
        with Router(parse_table(_table(fake), "<demo>"), store="memory://") as router:
            burst = Burst(router, requests, seconds)
            if live:
                _run_live(console, burst, fake)
            else:
                _run_plain(console, burst)
            wall = time.monotonic() - burst.started
            learned = _learned_line(router)
        stats = {e.name: fake.stats(e.name) for e in ENDPOINTS}
    code = _summary(console, stats, burst.outcomes(), requests, wall)
    console.print(f"{LEARNED}'s limits, not typed in the table: learned {learned}")
    return code


@contextlib.contextmanager
def _demo_key() -> Iterator[None]:
    """Set the dummy key variable for the demo only, then put back what was there."""
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous


def _table(fake: FakeProvider) -> str:
    """The endpoints table the router reads: the fake provider's limits, typed out for the
    first two endpoints, ``auto`` for the third."""
    lines = ["| name | provider | model | base_url | api_key_env | rpm | tpm |", "|-|-|-|-|-|-|-|"]
    for e in ENDPOINTS:
        url = fake.base_url(e.name)
        rpm, tpm = ("auto", "auto") if e.name == LEARNED else (e.rpm, e.tpm)
        lines.append(f"| {e.name} | fake | {e.model} | {url} | {KEY_ENV} | {rpm} | {tpm} |")
    return "\n".join(lines) + "\n"


def _limits(e: FakeEndpoint) -> str:
    return f"rpm {e.rpm} · tpm {e.tpm}"


def _learned_line(router: Router) -> str:
    """What llamux learned of the ``auto`` endpoint: ``rpm 20 · tpm 4000``."""
    rows = router.quotas.known.get(LEARNED, ())
    told = " · ".join(f"{k.name} {k.limit}" for k in rows if k.limit is not None)
    return told or "nothing yet"


def _intro(console: Console, fake: FakeProvider, requests: int, seconds: float) -> None:
    console.print(f"[bold]llamux demo[/]: a fake OpenAI-compatible provider at {fake.url}")
    console.print("as strict as a real one (over a limit: HTTP 429). Endpoints, by preference:")
    for number, e in enumerate(ENDPOINTS, 1):
        console.print(f"  {number}. {e.name:<7} {_limits(e):<18} answers in {e.delay:.2f} s")
    console.print(
        f"A Router with the same limits (for {LEARNED}: auto, learned from its answers; "
        f"store memory://) routes {requests} requests"
    )
    console.print(
        f"from {THREADS} threads, waiting for capacity if all is spent, up to {seconds:g} s."
    )
    console.print()


def _run_plain(console: Console, burst: Burst) -> None:
    printed = 0

    def tick() -> None:
        nonlocal printed
        outcomes = burst.outcomes()
        for outcome in outcomes[printed:]:
            console.print(outcome.line(), markup=False)
        printed = len(outcomes)

    burst.drive(tick)


def _run_live(console: Console, burst: Burst, fake: FakeProvider) -> None:
    from rich.live import Live

    with Live(_view(burst, fake), console=console, refresh_per_second=12) as live:
        burst.drive(lambda: live.update(_view(burst, fake)))


def _view(burst: Burst, fake: FakeProvider) -> RenderableType:
    """The live view: a progress line, quota bars per endpoint, the last requests."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    outcomes = burst.outcomes()
    served = sum(o.endpoint is not None for o in outcomes)
    refused = sum(fake.stats(e.name).refused for e in ENDPOINTS)
    head = Text.assemble(
        ("llamux demo  ", "bold"),
        f"{served}/{burst.requests} served · ",
        (f"{refused} × 429", "green" if refused == 0 else "bold red"),
        f" · {time.monotonic() - burst.started:.1f} s",
    )
    lines = [
        Text(o.line(), style="red" if o.endpoint is None else "") for o in outcomes[-LOG_LINES:]
    ]
    log = Text("\n").join(lines)
    panel = Panel(log or Text("starting…", style="dim"), title="last requests", title_align="left")
    return Group(head, _quota_table(burst.router, outcomes), panel)


def _quota_table(router: Router, outcomes: Sequence[Outcome]) -> Table:
    from rich.table import Table
    from rich.text import Text

    from .._status import status_data
    from ._status_view import usage_text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("endpoint", "rpm", "tpm", "served", "state"):
        table.add_column(name, justify="right" if name == "served" else "left")
    counts = Counter(o.endpoint for o in outcomes)
    for ep in status_data(router)["endpoints"]:
        rules = {r["rule"]: r for r in ep["rules"]}
        bars = [usage_text(rules[n]) if n in rules else Text("-") for n in ("rpm", "tpm")]
        table.add_row(ep["id"], *bars, str(counts[ep["id"]]), _state(ep))
    return table


def _state(endpoint: EndpointData) -> Text:
    """The status view's state, shorter for a full endpoint: ``full, frees in 58s``."""
    from rich.text import Text

    from ._status_view import span, state_text

    if endpoint["state"] != "full":
        text, style = state_text(endpoint)
        return Text(text, style=style)
    spent = [r["frees_in"] or 0.0 for r in endpoint["rules"] if r["remaining"] == 0]
    return Text(f"full, frees in {span(max(spent, default=0.0))}", style="yellow")


def _summary(
    console: Console,
    stats: Mapping[str, FakeStats],
    outcomes: Sequence[Outcome],
    requests: int,
    wall: float,
) -> int:
    from rich.table import Table

    served = sum(o.endpoint is not None for o in outcomes)
    refused = sum(s.refused for s in stats.values())
    table = Table(title="summary", title_justify="left", header_style="bold")
    for name in ("endpoint", "limits", "served", "429s"):
        table.add_column(name, justify="left" if name in ("endpoint", "limits") else "right")
    for e in ENDPOINTS:
        table.add_row(e.name, _limits(e), str(stats[e.name].served), str(stats[e.name].refused))
    table.add_row("total", "", str(served), str(refused), end_section=True)
    console.print()
    console.print(table)
    ok = refused == 0 and served == requests
    colour = "green" if refused == 0 else "bold red"
    console.print(f"requests served         {served}/{requests}")
    console.print(f"requests failed over    {sum(bool(o.failed) for o in outcomes)}")
    console.print(f"429s from the provider  [{colour}]{refused}[/]")
    console.print(f"wall time               {wall:.1f} s")
    console.print(_verdict(ok, outcomes, requests, served))
    return 0 if ok else 1


def _verdict(ok: bool, outcomes: Sequence[Outcome], requests: int, served: int) -> str:
    if ok:
        return f"[green]✓ all {requests} requests served without a single 429[/]"
    errors = [o.error for o in outcomes if o.endpoint is None]
    text = f"[red]✗ {requests - served} of {requests} requests not served[/]"
    if errors:
        from rich.markup import escape

        text += f": {escape(errors[0])}"
    capacity = sum(e.rpm or 0 for e in ENDPOINTS)
    if requests > capacity:
        text += f" (the endpoints admit {capacity} a minute: give --seconds 75 to wait for more)"
    return text
