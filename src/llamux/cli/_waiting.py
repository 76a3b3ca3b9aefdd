"""Waiting for capacity from the command line: the router sleeps on the command's clock.

``chat --wait S`` and ``query --wait S`` give the router a :class:`CountdownClock`: when no
endpoint has quota now, the router waits on it, and on a terminal it counts down on stderr,
dimmed, what it waits for (``waiting 27 s for capacity (groq:llama-3.3-70b rpm full)...``),
found by a dry run (nothing reserved), then erases the line. Elsewhere it waits silently.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._clock import SystemClock
from .._errors import LlamuxError, NoEndpointAvailable
from ._screen import Screen, end_ellipsis

if TYPE_CHECKING:
    from .._router import Router


class CountdownClock(SystemClock):
    """The system clock, whose waits count down on stderr when it is a terminal (dimmed,
    then erased). ``explain`` says what is waited for, asked once per wait (None: say
    nothing more)."""

    def __init__(self, screen: Screen, explain: Callable[[], str | None] | None = None) -> None:
        self.screen = screen
        self.explain = explain

    def sleep(self, seconds: float) -> None:
        if seconds < 1 or not self.screen.tty:  # a short wait needs no countdown
            super().sleep(seconds)
            return
        why = self.explain() if self.explain is not None else None
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                for_what = f" ({why})" if why else ""
                self._show(f"waiting {math.ceil(left)} s for capacity{for_what}...")
                time.sleep(min(left, left - math.floor(left) or 1.0))  # at whole seconds
        finally:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def _show(self, text: str) -> None:
        if self.screen.width is not None:
            text = end_ellipsis(text, self.screen.width - 1)
        sys.stderr.write("\r" + self.screen.paint(text, "dim") + "\x1b[K")
        sys.stderr.flush()

    def __repr__(self) -> str:
        return "CountdownClock()"


def countdown(
    router: Router, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> None:
    """Let ``router``'s :class:`CountdownClock` (if it has one) say what a wait is for."""
    clock = router.clock
    if isinstance(clock, CountdownClock):
        clock.explain = lambda: waiting_for(router, messages, params)


def waiting_for(
    router: Router, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> str | None:
    """What a request waits for, found by a dry run (nothing reserved): the rule (or cool-
    down) of the endpoint that frees soonest, ``groq:llama-3.3-70b rpm full``."""
    asked = {k: v for k, v in params.items() if k != "wait"}
    try:
        router.query(messages, dry_run=True, **asked)
    except NoEndpointAvailable as error:
        timed = [r for r in error.refusals if r.retry_at is not None]
        if not timed:
            return None
        soonest = min(timed, key=lambda r: r.retry_at or 0.0)
        who = soonest.scope if soonest.scope.startswith("pool:") else soonest.endpoint
        if soonest.rule is None:  # cooling down, parked
            return f"{who} {soonest.reason.partition(':')[0]}"
        return f"{who} {soonest.rule} full"
    except LlamuxError:
        return None
    return None
