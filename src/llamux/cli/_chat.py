"""``llamux chat``: run a completion and stream the answer as it comes.

The prompt is the argument, or stdin (``-``, or no argument with stdin not a terminal). The
answer goes to stdout chunk by chunk; who served it, on stderr. ``--json`` prints the whole
response as JSON instead (not streamed). With ``--wait S``, when no endpoint has quota now,
the router waits on the command's clock, which counts down on a terminal (``_waiting``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ._commands import messages_of, open_router, params_of, read_prompt
from ._output import EXIT_OK, say_dim
from ._screen import Screen
from ._waiting import CountdownClock, countdown


def cmd_chat(args: argparse.Namespace) -> int:
    """Run a completion; the answer on stdout as it comes, who served it on stderr."""
    messages = messages_of(read_prompt(args))
    params = params_of(args)
    with open_router(args, clock=CountdownClock(Screen.of(sys.stderr))) as router:
        countdown(router, messages, params)
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
