"""The ``llamux`` command line: status, query, chat, release, reset, check, probe, init, demo,
serve.

Every command returns an exit code: 0 ok, 1 config or usage error, 2 no endpoint available,
3 provider error, 4 store error. A :class:`LlamuxError` prints one line
(``llamux: error: ...``) on stderr, never a traceback; under ``--json`` it is also printed as
JSON on stdout (``{"error": {"type": ..., "message": ..., ...}}``). A closed stdout
(``llamux status | head -1``) ends the command quietly with its usual code. ``rich`` is
imported only by the commands that render with it (demo), the ``openai`` SDK only by
``chat``, ``probe`` and ``demo``, Starlette and uvicorn only by ``serve``.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .. import __version__
from .._config.load import STRATEGIES
from .._config.proxy_defaults import (
    DEFAULT_HOST,
    DEFAULT_LOG_FORMAT,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    KEY_VARIABLE,
    LOG_FORMATS,
)
from .._errors import LlamuxError
from ._batch import add_batch, cmd_batch
from ._chat import cmd_chat
from ._commands import (
    cmd_check,
    cmd_demo,
    cmd_query,
    cmd_release,
    cmd_reset,
    cmd_serve,
    cmd_status,
)
from ._examples import EXAMPLES, ROOT
from ._init import add_arguments as _add_init
from ._init import cmd_init
from ._output import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    exit_code,
    message,
    quiet_stdout,
    say_error,
    say_json_error,
)
from ._probe import add_probe, cmd_probe


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``llamux`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        code = _main(argv)
    except BrokenPipeError:  # the reader went away (`| head -1`, `| true`): not an error
        quiet_stdout()
        return EXIT_OK
    try:
        sys.stdout.flush()  # here, not at exit, where a closed pipe would print a traceback
    except BrokenPipeError:
        quiet_stdout()
    return code


def _main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        error.parser.print_usage(sys.stderr)
        say_error(str(error))
        if "--json" in argv:
            _json_error(UsageError(str(error)))
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = _LogHandler(logging.WARNING)
    logger = logging.getLogger("llamux")
    logger.addHandler(handler)
    try:
        command: Callable[[argparse.Namespace], int] = args.run
        return command(args)
    except LlamuxError as error:
        say_error(message(error, waits="wait" in args))
        if getattr(args, "json", False):
            _json_error(error, waits="wait" in args)
        return exit_code(error)
    except KeyboardInterrupt:
        say_error("interrupted")
        return 130
    finally:
        logger.removeHandler(handler)


def _json_error(error: LlamuxError, waits: bool = True) -> None:
    """The error as JSON on stdout; if stdout is closed, the exit code still says it."""
    try:
        say_json_error(error, waits)
        sys.stdout.flush()
    except BrokenPipeError:
        quiet_stdout()


# ------------------------------------------------------------------ the parser


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (2 means "no endpoint available" here)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


class _Formatter(argparse.HelpFormatter):
    """Descriptions are filled to the width as usual; text with line breaks (the examples
    of an epilog) is kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    """The ``llamux`` parser; each subcommand stores its function as ``run``."""
    parser = _Parser(
        prog="llamux",
        description="Route LLM chat requests across your endpoints without crossing any quota.",
        epilog=ROOT,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"llamux {__version__}")
    _add_globals(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_, run, add in _COMMANDS:
        sub = commands.add_parser(
            name, help=help_, description=help_, epilog=EXAMPLES[name], formatter_class=_Formatter
        )
        if name not in ("demo", "init"):  # they read no config and open no store
            _add_globals(sub, argparse.SUPPRESS)
        add(sub)
        sub.set_defaults(run=run)
    return parser


def _add_globals(parser: argparse.ArgumentParser, default: Any) -> None:
    # On subcommands the default is SUPPRESS, so `llamux --config X status` keeps X.
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="endpoints table or TOML config (else $LLAMUX_CONFIG, else ./endpoints.csv, "
        "./endpoints.md or ./llamux.toml)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        default=default,
        help="quota store: memory://, sqlite:///path, redis://host:port/db or "
        "redis+cluster://host:port[,host:port...] (else the config's, $LLAMUX_STORE, or "
        "SQLite in the user state directory)",
    )


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, not {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text) if re.fullmatch(r"\d+(\.\d*)?", text.strip()) else -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, not {text!r}")
    return value


def _add_prompt(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "prompt",
        nargs="?",
        help="the user message; '-' or none (with a pipe or a file on stdin): read stdin",
    )
    sub.add_argument(
        "--model", help="an endpoint id, a route, an upstream model name, or auto (all)"
    )
    sub.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        metavar="NAME",
        help="how to order the endpoints for this request: "
        f"{', '.join(sorted(STRATEGIES))} (default: the config's)",
    )
    sub.add_argument("--max-tokens", type=_positive_int, metavar="N", help="output budget")
    sub.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="when no endpoint has quota now, wait up to S seconds for it (a countdown on "
        "a terminal)",
    )
    sub.add_argument("--json", action="store_true", help="print JSON (errors too)")


def _add_query(sub: argparse.ArgumentParser) -> None:
    _add_prompt(sub)
    sub.add_argument(
        "--dry-run",
        action="store_true",
        help="say which endpoint would be chosen now, and reserve nothing",
    )


def _add_status(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print the same data as JSON")


def _add_reset(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("endpoint", nargs="?", help="an endpoint id (default: every endpoint)")
    sub.add_argument(
        "--yes",
        action="store_true",
        help="reset every endpoint without asking (required without a terminal)",
    )


def _add_release(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("reservation", metavar="ID", help="the reservation `llamux query` printed")


def _add_demo(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--requests", type=_positive_int, default=40, metavar="N", help="requests to route (40)"
    )
    sub.add_argument(
        "--seconds",
        type=_seconds,
        default=20.0,
        metavar="S",
        help="bound on the run in real seconds, waits for capacity included (20); the "
        "demo's clock runs 20x: a minute passes in 3 s",
    )


def _add_nothing(sub: argparse.ArgumentParser) -> None:
    pass


def _origin(text: str) -> str:
    """A web origin, ``scheme://host[:port]``, as browsers send it in ``Origin``."""
    scheme, sep, rest = text.strip().rstrip("/").partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a web origin; give scheme, host and port, such as "
            "http://localhost:3000 (no path, no wildcard)"
        )
    return f"{scheme}://{rest}"


def _add_serve(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to bind (default {DEFAULT_HOST}); any other needs {KEY_VARIABLE}",
    )
    sub.add_argument(
        "--port",
        type=_positive_int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port (default {DEFAULT_PORT})",
    )
    sub.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="serve from N processes on the one port, each with its own router on the "
        "store they share (SQLite or Redis; not memory://). Default 1",
    )
    sub.add_argument(
        "--max-body",
        type=_positive_int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help=f"refuse request bodies over this size with 413 (default {DEFAULT_MAX_BODY})",
    )
    sub.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also answer requests whose Host header is HOST (repeatable; '*' for any). "
        "Always accepted: the bound address, localhost, 127.0.0.1, [::1]",
    )
    sub.add_argument(
        "--cors",
        action="append",
        default=[],
        type=_origin,
        metavar="ORIGIN",
        help="let web pages from ORIGIN (e.g. http://localhost:3000) call the proxy: "
        "answer their preflight and send CORS headers (repeatable; default: none)",
    )
    sub.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=DEFAULT_LOG_FORMAT,
        help="the request log on stdout, one line per request: plain text, or one JSON "
        f"object per line (default {DEFAULT_LOG_FORMAT})",
    )


_COMMANDS: tuple[tuple[str, str, Callable[[argparse.Namespace], int], Any], ...] = (
    ("status", "show each endpoint's quota use and state", cmd_status, _add_status),
    ("query", "pick and reserve an endpoint for a prompt, print it", cmd_query, _add_query),
    ("chat", "run a completion and stream the answer", cmd_chat, _add_prompt),
    ("release", "give back a reservation made by query", cmd_release, _add_release),
    ("reset", "forget recorded usage and cool-downs", cmd_reset, _add_reset),
    ("check", "validate the config and show each endpoint", cmd_check, _add_nothing),
    ("probe", "ask the providers for their limits and learn them", cmd_probe, add_probe),
    ("demo", "live demo against local fake providers (no keys, no files)", cmd_demo, _add_demo),
    ("serve", "run the OpenAI-compatible proxy with a live dashboard", cmd_serve, _add_serve),
    ("init", "write a starting endpoints table from the catalog", cmd_init, _add_init),
    ("batch", "send a JSONL or text file of requests at full quota speed", cmd_batch, add_batch),
)


class _LogHandler(logging.Handler):
    """llamux's warnings as ``llamux: warning: ...`` on the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        from ._screen import Screen, wrap

        text = f"llamux: {record.levelname.lower()}: {record.getMessage()}"
        width = Screen.of(sys.stderr).width
        print("\n".join(wrap(text, width, indent="  ", cut=False)), file=sys.stderr)
