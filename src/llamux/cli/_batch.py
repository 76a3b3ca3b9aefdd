"""``llamux batch INPUT -o OUTPUT``: a big job through every free quota, resumable.

A thin layer over ``Router.batch``: the input's lines (``_batch_input``) not yet in the
output (``_batch_output``) are sent, each result appended as one complete line as it
completes, with a progress view (``_batch_view``) on stderr. Ctrl-C stops taking new items,
lets the ones being sent finish and be written, and exits 130 saying how to resume.
Exit 0 when every item was answered, 3 if some ended in an error, 1 for bad input.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from .._errors import LlamuxError
from .._policy.tokens import usage_tokens
from ._batch_input import read_input
from ._batch_output import Output
from ._batch_view import Tally, lines, summary, view_for
from ._commands import EXIT_OK, EXIT_PROVIDER, open_router
from ._output import say_error

if TYPE_CHECKING:
    from .._engine.batch_run import BatchRun
    from .._router import Router

EXIT_INTERRUPTED = 130
TICK = 0.5
"""Real seconds between two refreshes of the progress view."""


def add_batch(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "input", metavar="INPUT", help="JSONL (OpenAI Batch lines) or, with --text, prompts"
    )
    sub.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="JSONL results (appended; resumes)"
    )
    sub.add_argument("--text", action="store_true", help="INPUT is plain text, one prompt per line")
    sub.add_argument(
        "--system", metavar="TEXT", help="with --text: a system message for every prompt"
    )
    sub.add_argument(
        "--model", metavar="NAME", help="the model (or route) of bodies that name none"
    )
    sub.add_argument("--concurrency", type=_positive, metavar="N", help="at most N items in flight")
    sub.add_argument(
        "--max-attempts", type=_positive, default=5, metavar="N",
        help="failed provider calls per item before it is written as an error (default 5)",
    )  # fmt: skip
    sub.add_argument(
        "--skip-invalid", action="store_true", help="send the valid lines, report the rest"
    )
    sub.add_argument(
        "--plain", action="store_true", help="plain progress lines, even on a terminal"
    )


def cmd_batch(args: argparse.Namespace) -> int:
    """Send every line of INPUT not yet in OUTPUT; write each result as it completes."""
    given = read_input(
        args.input,
        text=args.text,
        model=args.model,
        system=args.system,
        skip_invalid=args.skip_invalid,
    )
    for problem in given.invalid:
        say_error(f"skipped {problem}")
    output = Output(args.output)
    if output.dropped:
        say_error(
            f"cut a partial last line ({output.dropped} bytes) from {args.output}: sent again"
        )
    todo = [line for line in given.lines if line.custom_id not in output.done]
    with open_router(args) as router:
        tally = Tally(len(todo), len(given.lines) - len(todo), router.clock.now())
        run = router.batch(
            [line.item for line in todo],
            concurrency=args.concurrency,
            max_attempts=args.max_attempts,
        )
        interrupted = threading.Event()

        def on_sigint(*_: Any) -> None:
            interrupted.set()
            run.stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one: now

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            _drive(router, run, todo, output, tally, plain=args.plain)
        finally:
            signal.signal(signal.SIGINT, previous)
            output.close(sync=True)
    for text in summary(tally):
        print(text, file=sys.stderr)
    if interrupted.is_set() and tally.done < tally.total:
        print(
            f"interrupted: {tally.done + tally.skipped} of {tally.total + tally.skipped} items "
            f"are in {args.output}; run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_PROVIDER if tally.errors else EXIT_OK


def _drive(
    router: Router, run: BatchRun, todo: list[Any], output: Output, tally: Tally, *, plain: bool
) -> None:
    view = view_for(sys.stderr, False if plain else None)
    ended = threading.Event()

    def frame() -> list[str]:
        return lines(tally, run.progress(), router.status(), router.clock.now())

    def tick() -> None:
        while not ended.wait(TICK):
            view.show(frame())

    ticker = threading.Thread(target=tick, name="llamux-batch-view", daemon=True)
    ticker.start()
    try:
        for index, outcome in run:
            output.write(todo[index].custom_id, outcome)
            _count(tally, outcome)
    finally:
        ended.set()
        ticker.join()
        view.show(frame(), force=True)
        view.close()


def _count(tally: Tally, outcome: Any) -> None:
    from .._engine.served import served_by

    tally.done += 1
    if isinstance(outcome, LlamuxError):
        tally.errors += 1
        return
    served = served_by(outcome)
    if served is not None:
        tally.served[served.endpoint] += 1
        tally.tokens[served.endpoint] += served.tokens or usage_tokens(outcome) or 0


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}")
    return value
