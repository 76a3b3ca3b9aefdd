"""The ``llamux`` commands: each takes the parsed arguments and returns an exit code.

Exit codes: 0 ok, 1 config or usage error, 2 no endpoint available, 3 provider error,
4 store error.
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

if TYPE_CHECKING:
    from .._router import Router

CONFIG_FILES = ("endpoints.csv", "endpoints.md", "llamux.toml")
"""Looked for in the current directory when neither --config nor LLAMUX_CONFIG is given."""

EXIT_OK, EXIT_USAGE, EXIT_NO_ENDPOINT, EXIT_PROVIDER, EXIT_STORE = 0, 1, 2, 3, 4


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
    from .._router import Router

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
    from .._engine.served import served_by

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
        say_dim(note)
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
    from .._config.load import load
    from .._router import Router
    from ._check_view import config_report

    path = find_config(args.config)
    config = load(path)
    Router(config, store="memory://").close()  # duplicate names, undefined pools
    try:  # what the providers stated is in the store: compare the table with it
        router = Router(config, store=args.store)
    except StoreError as error:
        router = Router(config, store="memory://")
        print(f"(the store could not be opened, so learned limits are not shown: {error})")
    with router:
        print(config_report(path, config, router.quotas, router.warnings()))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Route a burst through a real Router against local fake providers, live."""
    from ._demo import run_demo

    return run_demo(requests=args.requests, seconds=args.seconds)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the OpenAI-compatible proxy and its dashboard until interrupted (Ctrl-C)."""
    try:
        from ..proxy import require_key, serve
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
        say_dim(f"llamux proxy: base_url {where}/v1, dashboard {where}/{guard}")
        try:
            serve(
                router,
                host=args.host,
                port=args.port,
                proxy_key=key,
                max_body_bytes=args.max_body,
                allow_hosts=args.allow_host,
                cors_origins=args.cors,
                log_format=args.log_format,
            )
        except SystemExit as stopped:  # uvicorn could not start (the port is taken, say)
            say_error(f"the proxy could not start on {args.host}:{args.port}; see above")
            return stopped.code if isinstance(stopped.code, int) and stopped.code else EXIT_USAGE
        except KeyboardInterrupt:  # Ctrl-C, after the graceful shutdown: the normal way out
            pass
    say_dim("llamux proxy stopped; in-flight requests finished and settled")
    return EXIT_OK


# ------------------------------------------------------------------ output


def say_error(message: str) -> None:
    print(f"llamux: error: {message}", file=sys.stderr)


def say_dim(message: str) -> None:
    if sys.stderr.isatty():
        message = f"\x1b[2m{message}\x1b[0m"
    print(message, file=sys.stderr)
