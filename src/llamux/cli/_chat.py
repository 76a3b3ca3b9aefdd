"""``llamux chat``: run a completion and stream the answer as it comes.

The prompt is the argument, or stdin (``-``, or no argument with stdin not a terminal). The
answer goes to stdout chunk by chunk; who served it, on stderr. ``--json`` prints the whole
response as JSON instead (not streamed). With ``--wait S``, when no endpoint has quota now,
the router waits on this command's clock (:class:`CountdownClock`), which shows on a terminal
how long and for what (``waiting 27 s for capacity (groq:llama-3.3-70b rpm full)...``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._clock import SystemClock
from .._errors import LlamuxError, NoEndpointAvailable
from ._commands import messages_of, open_router, params_of, read_prompt
from ._output import EXIT_OK, say_dim
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


def cmd_chat(args: argparse.Namespace) -> int:
    """Run a completion; the answer on stdout as it comes, who served it on stderr."""
    messages = messages_of(read_prompt(args))
    params = params_of(args)
    if args.wait:
        params["wait"] = args.wait
    clock = CountdownClock(Screen.of(sys.stderr))
    with open_router(args, clock=clock) as router:
        clock.explain = lambda: waiting_for(router, messages, params)
        if args.json:
            response = router.completion(messages, **params)
            print(response.model_dump_json(indent=2))
            _say_served(response, None)
        else:
            stream = router.completion(messages, stream=True, **params)
            with stream:
                _relay(stream)
            _say_served(stream, getattr(stream, "usage", None))
    return EXIT_OK


def _relay(stream: Any) -> None:
    """Write each chunk's text to stdout as it comes; end with a line break."""
    wrote = ""
    for chunk in stream:
        for choice in getattr(chunk, "choices", None) or ():
            text = getattr(choice.delta, "content", None)
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
                wrote = text
    if not wrote.endswith("\n"):
        sys.stdout.write("\n")


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


def _say_served(answer: Any, usage: Any) -> None:
    from .._engine.served import served_by
    from .._policy.tokens import usage_tokens

    served = served_by(answer)
    if served is None:
        return
    tokens = served.tokens if usage is None else usage_tokens(usage)
    count = "?" if tokens is None else str(tokens)
    note = f"served by {served.endpoint} ({served.provider} {served.model}), {count} tokens"
    before = [f"{a.endpoint}: {a.reason}" for a in served.attempts if a.outcome != "served"]
    if before:
        note += f", after {'; '.join(before)}"
    say_dim(note)
