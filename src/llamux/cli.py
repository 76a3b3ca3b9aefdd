"""The ``llamux`` command line: status, query, chat, reset, check, demo and serve.

Every command returns an exit code: 0 ok, 1 config or usage error, 2 no endpoint available,
3 provider error, 4 store error. A :class:`LlamuxError` prints one line
(``llamux: error: ...``) on stderr, never a traceback. ``rich`` is imported only by the
commands that render, the ``openai`` SDK only by ``chat`` and ``demo``, Starlette and uvicorn
only by ``serve``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__
from ._config import STRATEGIES
from ._errors import (
    ConfigError,
    LlamuxError,
    NoEndpointAvailable,
    ProviderError,
    RequestTooLarge,
    StoreError,
)
from ._proxy_defaults import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT, KEY_VARIABLE

if TYPE_CHECKING:
    from ._router import Router

CONFIG_FILES = ("endpoints.csv", "endpoints.md", "llamux.toml")
"""Looked for in the current directory when neither --config nor LLAMUX_CONFIG is given."""

EXIT_OK, EXIT_USAGE, EXIT_NO_ENDPOINT, EXIT_PROVIDER, EXIT_STORE = 0, 1, 2, 3, 4


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``llamux`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as error:
        error.parser.print_usage(sys.stderr)
        _say_error(str(error))
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
        _say_error(str(error))
        return exit_code(error)
    except KeyboardInterrupt:
        _say_error("interrupted")
        return 130
    finally:
        logger.removeHandler(handler)


def exit_code(error: LlamuxError) -> int:
    """The exit code for ``error``: 1 config, 2 no endpoint, 3 provider, 4 store."""
    if isinstance(error, NoEndpointAvailable | RequestTooLarge):
        return EXIT_NO_ENDPOINT
    if isinstance(error, ProviderError):
        return EXIT_PROVIDER
    if isinstance(error, StoreError):
        return EXIT_STORE
    return EXIT_USAGE


# ------------------------------------------------------------------ the parser


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 (2 means "no endpoint available" here)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The ``llamux`` parser; each subcommand stores its function as ``run``."""
    parser = _Parser(
        prog="llamux",
        description="Route LLM chat requests across your endpoints without crossing any quota.",
        epilog="exit codes: 0 ok, 1 config or usage error, 2 no endpoint available, "
        "3 provider error, 4 store error",
    )
    parser.add_argument("--version", action="version", version=f"llamux {__version__}")
    _add_globals(parser, None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_, run, add in _COMMANDS:
        sub = commands.add_parser(name, help=help_, description=help_)
        if name != "demo":  # the demo brings its own endpoints and an in-memory store
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
        help="quota store: memory://, sqlite:///path or redis://host:port/db "
        "(else the config's, $LLAMUX_STORE, or SQLite in the user state directory)",
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
    sub.add_argument("prompt", help="the user message")
    sub.add_argument(
        "--model", help="an endpoint id, a route, an upstream model name, or auto (all)"
    )
    sub.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        help="how to order the endpoints for this request (default: the config's)",
    )
    sub.add_argument("--max-tokens", type=_positive_int, metavar="N", help="output budget")
    sub.add_argument("--json", action="store_true", help="print JSON")


def _add_status(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--json", action="store_true", help="print the same data as JSON")


def _add_chat(sub: argparse.ArgumentParser) -> None:
    _add_prompt(sub)
    sub.add_argument(
        "--wait", type=_seconds, default=0.0, metavar="S", help="wait up to S seconds for quota"
    )


def _add_reset(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("endpoint", nargs="?", help="an endpoint id (default: every endpoint)")


def _add_demo(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--requests", type=_positive_int, default=40, metavar="N", help="requests to route (40)"
    )
    sub.add_argument(
        "--seconds",
        type=_seconds,
        default=20.0,
        metavar="S",
        help="time bound, waits for capacity included (20); more than 40 requests need "
        "over 60 s, for the minute windows to roll over",
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


# ------------------------------------------------------------------ config and router


def find_config(explicit: str | None) -> Path:
    """The config path: ``explicit``, else ``$LLAMUX_CONFIG``, else the first file found."""
    given = [(explicit, "--config"), (os.environ.get("LLAMUX_CONFIG"), "LLAMUX_CONFIG")]
    for path, origin in given:
        if path:
            if not Path(path).exists():
                raise ConfigError(
                    f"the config file {path} (from {origin}) does not exist; fix the path, or "
                    "create it: a table with columns provider, model, rpm, tpm, ... (or TOML)"
                )
            return Path(path)
    for name in CONFIG_FILES:
        if Path(name).is_file():
            return Path(name)
    looked = ", ".join(f"./{name}" for name in CONFIG_FILES)
    raise ConfigError(
        f"no config found: looked for --config, $LLAMUX_CONFIG, then {looked} in {Path.cwd()}; "
        "write an endpoints.csv table (provider, model, rpm, tpm, ... one row per endpoint) "
        "there, or point at one with --config PATH or LLAMUX_CONFIG=PATH"
    )


def open_router(args: argparse.Namespace) -> Router:
    """A router for the config and store the options name."""
    from ._router import Router

    return Router.from_config(find_config(args.config), store=args.store)


def _messages(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.model:
        params["model"] = args.model
    if args.strategy:
        params["strategy"] = args.strategy
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    return params


# ------------------------------------------------------------------ the commands


def cmd_status(args: argparse.Namespace) -> int:
    """Each endpoint and rule: used/limit bars, when capacity returns, the state."""
    from ._status_view import print_status, status_data

    with open_router(args) as router:
        data = status_data(router)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_status(data)
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    """Pick an endpoint and reserve its quota; print it."""
    with open_router(args) as router:
        provider, model, endpoint, props = router.query(_messages(args.prompt), **_params(args))
    if args.json:
        answer = {"provider": provider, "model": model, "endpoint": endpoint, "props": props}
        print(json.dumps(answer, indent=2))
        return EXIT_OK
    limits: dict[str, int] = props["limits"]
    left = " · ".join(
        f"{rule} {n}/{limits.get(rule, '?')}" for rule, n in props["remaining"].items()
    )
    print(f"endpoint     {endpoint}")
    print(f"provider     {provider}")
    print(f"model        {model}")
    print(f"base_url     {props['base_url']}")
    print(f"key from     ${props['api_key_env']}")
    print(f"reserved     1 request + {props['tokens']} tokens (estimate)")
    print(f"remaining    {left or 'no limits'}")
    print(f"reservation  {props['reservation']}")
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    """Run a completion; the answer on stdout, who served it on stderr."""
    from ._served import served_by

    params = _params(args)
    if args.wait:
        params["wait"] = args.wait
    with open_router(args) as router:
        response = router.completion(_messages(args.prompt), **params)
    if args.json:
        print(response.model_dump_json(indent=2))
    else:
        print(response.choices[0].message.content or "")
    served = served_by(response)
    if served is not None:
        tokens = "?" if served.tokens is None else str(served.tokens)
        note = f"served by {served.endpoint} ({served.provider} {served.model}), {tokens} tokens"
        before = [f"{a.endpoint}: {a.reason}" for a in served.attempts if a.outcome != "served"]
        if before:
            note += f", after {'; '.join(before)}"
        _say_dim(note)
    return EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    """Forget recorded usage and cool-downs, of one endpoint or of all."""
    with open_router(args) as router:
        router.reset(args.endpoint)
        count = len(router.endpoints)
    what = args.endpoint or f"all {count} endpoint{'s' * (count != 1)}"
    print(f"reset {what}: recorded usage and cool-downs forgotten")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config and show what each endpoint resolves to."""
    from ._check_view import config_report
    from ._config import load
    from ._router import Router

    path = find_config(args.config)
    config = load(path)
    Router(config, store="memory://").close()  # duplicate names, undefined pools
    print(config_report(path, config))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Route a burst through a real Router against local fake providers, live."""
    from ._demo import run_demo

    return run_demo(requests=args.requests, seconds=args.seconds)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the OpenAI-compatible proxy and its dashboard until interrupted (Ctrl-C)."""
    try:
        from .proxy import require_key, serve
    except ImportError as missing:
        raise ConfigError(
            f"llamux serve needs the proxy extra ({missing.name} is missing): "
            "pip install 'llamux[proxy]'"
        ) from None
    key = os.environ.get(KEY_VARIABLE) or None
    require_key(args.host, key)
    with open_router(args) as router:
        where = f"http://{args.host}:{args.port}"
        guard = f"; clients send ${KEY_VARIABLE} as their API key" if key else ""
        _say_dim(f"llamux proxy: base_url {where}/v1, dashboard {where}/{guard}")
        try:
            serve(
                router,
                host=args.host,
                port=args.port,
                proxy_key=key,
                max_body_bytes=args.max_body,
                allow_hosts=args.allow_host,
                cors_origins=args.cors,
            )
        except SystemExit as stopped:  # uvicorn could not start (the port is taken, say)
            _say_error(f"the proxy could not start on {args.host}:{args.port}; see above")
            return stopped.code if isinstance(stopped.code, int) and stopped.code else EXIT_USAGE
        except KeyboardInterrupt:  # Ctrl-C, after the graceful shutdown: the normal way out
            pass
    _say_dim("llamux proxy stopped; in-flight requests finished and settled")
    return EXIT_OK


_COMMANDS: tuple[tuple[str, str, Callable[[argparse.Namespace], int], Any], ...] = (
    ("status", "show each endpoint's quota use and state", cmd_status, _add_status),
    ("query", "pick and reserve an endpoint for a prompt, print it", cmd_query, _add_prompt),
    ("chat", "run a completion and print the answer", cmd_chat, _add_chat),
    ("reset", "forget recorded usage and cool-downs", cmd_reset, _add_reset),
    ("check", "validate the config and show each endpoint", cmd_check, _add_nothing),
    ("demo", "live demo against local fake providers (no keys, no files)", cmd_demo, _add_demo),
    ("serve", "run the OpenAI-compatible proxy with a live dashboard", cmd_serve, _add_serve),
)


# ------------------------------------------------------------------ output


def _say_error(message: str) -> None:
    print(f"llamux: error: {message}", file=sys.stderr)


def _say_dim(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\x1b[2m{message}\x1b[0m"
    print(message, file=sys.stderr)


class _LogHandler(logging.Handler):
    """llamux's warnings as ``llamux: warning: ...`` on the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"llamux: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)
