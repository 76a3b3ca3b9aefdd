"""The ``llamux`` commands: each takes the parsed arguments and returns an exit code
(``chat`` is in ``_chat``, ``probe`` in ``_probe``, ``init`` in ``_init``).

Exit codes: 0 ok, 1 config or usage error, 2 no endpoint available, 3 provider error,
4 store error (see ``_output``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config.proxy_defaults import KEY_VARIABLE
from .._errors import ConfigError, StoreError
from ._output import (
    EXIT_NO_ENDPOINT,
    EXIT_OK,
    EXIT_PROVIDER,
    EXIT_STORE,
    EXIT_USAGE,
    UsageError,
    say_dim,
    say_error,
)

if TYPE_CHECKING:
    from .._router import Router

CONFIG_FILES = ("endpoints.csv", "endpoints.md", "llamux.toml")
"""Looked for in the current directory when neither --config nor LLAMUX_CONFIG is given."""

__all__ = [
    "CONFIG_FILES",
    "EXIT_NO_ENDPOINT",
    "EXIT_OK",
    "EXIT_PROVIDER",
    "EXIT_STORE",
    "EXIT_USAGE",
    "open_router",
    "say_dim",
    "say_error",
]


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


def open_router(args: argparse.Namespace, **options: Any) -> Router:
    """A router for the config and store the options name (``options``: ``Router``'s)."""
    from .._router import Router

    return Router.from_config(find_config(args.config), store=args.store, **options)


def read_prompt(args: argparse.Namespace) -> str:
    """The prompt: the argument, else (``-``, or none with stdin not a terminal) stdin."""
    prompt: str | None = args.prompt
    if prompt is not None and prompt != "-":
        return prompt
    if prompt is None and sys.stdin.isatty():
        raise UsageError(
            f'no prompt: give one (llamux {args.command} "Hello"), or pipe it in '
            f"(echo Hello | llamux {args.command})"
        )
    text = sys.stdin.read()
    if not text.strip():
        raise UsageError(
            f"the prompt read from stdin is empty; pipe some text into llamux {args.command}"
        )
    return text


def messages_of(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}]


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.model:
        params["model"] = args.model
    if args.strategy:
        params["strategy"] = args.strategy
    if args.max_tokens:
        params["max_tokens"] = args.max_tokens
    if args.wait:
        params["wait"] = args.wait
    return params


# ------------------------------------------------------------------ the commands


def cmd_status(args: argparse.Namespace) -> int:
    """Each endpoint and rule: used/limit bars, when capacity returns, the state."""
    from .._status import status_data
    from ._status_view import print_status

    with open_router(args) as router:
        data = status_data(router)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_status(data)
    return EXIT_OK


def cmd_query(args: argparse.Namespace) -> int:
    """Pick an endpoint and reserve its quota (``--dry-run``: reserve nothing); print it."""
    from ._screen import Screen
    from ._waiting import CountdownClock, countdown

    messages, params = messages_of(read_prompt(args)), params_of(args)
    with open_router(args, clock=CountdownClock(Screen.of(sys.stderr))) as router:
        countdown(router, messages, params)
        provider, model, endpoint, props = router.query(messages, dry_run=args.dry_run, **params)
    if args.json:
        answer = {"provider": provider, "model": model, "id": endpoint, "props": props}
        print(json.dumps(answer, indent=2))
        return EXIT_OK
    limits: dict[str, int] = props["limits"]
    left = " · ".join(
        f"{rule} {n}/{limits.get(rule, '?')}" for rule, n in props["remaining"].items()
    )
    tokens = props["tokens"]
    print(f"endpoint     {endpoint}")
    print(f"provider     {provider}")
    print(f"model        {model}")
    print(f"base_url     {props['base_url']}")
    print(f"key from     ${props['api_key_env']}")
    if props["reservation"] is None:
        print(f"would take   1 request + {tokens} tokens (estimate); dry run: nothing reserved")
        print(f"would leave  {left or 'no limits'}")
        return EXIT_OK
    print(f"reserved     1 request + {tokens} tokens (estimate)")
    print(f"remaining    {left or 'no limits'}")
    print(f"reservation  {props['reservation']}")
    say_dim(f"not sending it after all? give it back: llamux release {props['reservation']}")
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    """Give back a reservation that ``query`` made (the call was never sent)."""
    with open_router(args) as router:
        released = router.release(args.reservation)
    if not released:
        raise UsageError(
            f"no reservation {args.reservation!r} is held in this store: it was settled, "
            "released or has expired, or was made with another --store; nothing to give back"
        )
    print(f"released {args.reservation}: its request and tokens no longer count")
    return EXIT_OK


def cmd_reset(args: argparse.Namespace) -> int:
    """Forget recorded usage and cool-downs, of one endpoint or (after asking) of all."""
    with open_router(args) as router:
        count = len(router.endpoints)
        every = f"all {count} endpoint{'s' * (count != 1)}"
        if args.endpoint is None and not args.yes and not _agreed(every):
            print("nothing reset")
            return EXIT_OK
        router.reset(args.endpoint)
    print(f"reset {args.endpoint or every}: recorded usage and cool-downs forgotten")
    return EXIT_OK


def _agreed(every: str) -> bool:
    """Whether the user agrees to reset ``every`` endpoint (asked on a terminal, on stderr;
    refused without one: a script must say --yes)."""
    what = f"llamux reset forgets the recorded usage, cool-downs and reservations of {every}"
    if not sys.stdin.isatty():
        raise UsageError(
            f"{what}; pass --yes to go ahead (there is no terminal to ask on), or name one endpoint"
        )
    print(f"{what}. Go ahead? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config and show what each endpoint resolves to."""
    from .._config.load import load
    from .._router import Router
    from ._check_view import config_report
    from ._screen import Screen

    path = find_config(args.config)
    config = load(path)
    Router(config, store="memory://").close()  # duplicate names, undefined pools
    try:  # what the providers stated is in the store: compare the table with it
        router = Router(config, store=args.store)
    except StoreError as error:
        router = Router(config, store="memory://")
        print(f"(the store could not be opened, so learned limits are not shown: {error})")
    with router:
        width = Screen.of(sys.stdout).width
        print(config_report(path, config, router.quotas, router.warnings(), width))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Route a burst through a real Router against local fake providers, live."""
    from ._demo import run_demo

    return run_demo(requests=args.requests, seconds=args.seconds)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the OpenAI-compatible proxy and its dashboard until interrupted (Ctrl-C); with
    ``--workers N``, in N processes sharing the store."""
    try:
        from ..proxy import require_key, serve, serve_workers
        from ..proxy._workers import shared_store
    except ImportError as missing:
        raise ConfigError(
            f"llamux serve needs the proxy extra ({missing.name} is missing): "
            "pip install 'llamux[proxy]'"
        ) from None
    from ._port import check_port

    key = os.environ.get(KEY_VARIABLE) or None
    require_key(args.host, key)
    check_port(args.host, args.port)  # before the banner: a taken port is the first thing said
    config = find_config(args.config)
    shared_store(config, args.store, args.workers)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "max_body_bytes": args.max_body,
        "allow_hosts": args.allow_host,
        "cors_origins": args.cors,
        "log_format": args.log_format,
    }
    with open_router(args) as router:  # the config and the store are checked here, once
        where = f"http://{args.host}:{args.port}"
        guard = f"; clients send ${KEY_VARIABLE} as their API key" if key else ""
        workers = f", {args.workers} worker processes on one store" if args.workers > 1 else ""
        say_dim(f"llamux proxy: base_url {where}/v1, dashboard {where}/{workers}{guard}")
        try:
            if args.workers > 1:
                router.close()  # each worker opens its own
                serve_workers(config, workers=args.workers, store=args.store, **options)
            else:
                serve(router, proxy_key=key, **options)
        except SystemExit as stopped:  # uvicorn could not start (the port is taken, say)
            say_error(f"the proxy could not start on {args.host}:{args.port}; see above")
            return stopped.code if isinstance(stopped.code, int) and stopped.code else EXIT_USAGE
        except KeyboardInterrupt:  # Ctrl-C, after the graceful shutdown: the normal way out
            pass
    say_dim("llamux proxy stopped; in-flight requests finished and settled")
    return EXIT_OK
