"""How the commands speak: errors as one line (and, under ``--json``, as JSON on stdout),
dim notes on stderr, and the exit code of each error.

Exit codes: 0 ok, 1 config or usage error, 2 no endpoint available (quota: waiting helps),
3 provider error (including a request that every endpoint failed: connection refused,
timeouts, 5xx), 4 store error.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from typing import Any

from .._errors import (
    ConfigError,
    LlamuxError,
    NoEndpointAvailable,
    ProviderError,
    RequestTooLarge,
    StoreError,
)

EXIT_OK, EXIT_USAGE, EXIT_NO_ENDPOINT, EXIT_PROVIDER, EXIT_STORE = 0, 1, 2, 3, 4


class UsageError(LlamuxError):
    """The command line asks for something the command cannot do (exit 1)."""


def exit_code(error: LlamuxError) -> int:
    """The exit code for ``error``: 1 config or usage, 2 no endpoint, 3 provider, 4 store."""
    if isinstance(error, NoEndpointAvailable):
        return EXIT_PROVIDER if error.providers_down else EXIT_NO_ENDPOINT
    if isinstance(error, RequestTooLarge):
        return EXIT_NO_ENDPOINT
    if isinstance(error, ProviderError):
        return EXIT_PROVIDER
    if isinstance(error, StoreError):
        return EXIT_STORE
    return EXIT_USAGE


def message(error: LlamuxError, waits: bool = True) -> str:
    """What the command line says of ``error``: the library's message, but with the CLI's
    own knob (``--wait N``, for a command that ``waits``; else no hint), and naming the
    providers when they, not quota, are the cause."""
    if not isinstance(error, NoEndpointAvailable):
        return str(error)
    if error.providers_down:
        tried = [a for a in error.attempts if a.outcome != "skipped"]
        what = "failed" if error.providers_failed else "failed or rests after failing"
        again = "" if error.retry_after is None else f" (in {math.ceil(error.retry_after)} s)"
        return (
            f"every endpoint {what} ({'; '.join(f'{a.endpoint}: {a.reason}' for a in tried)}): "
            "the providers are down, unreachable or refusing the key; check their status, "
            f"the network and base_url, then try again{again}"
        )
    if error.retry_after is None or not waits:
        return error.detail
    return f"{error.detail} (pass --wait {max(1, math.ceil(error.retry_after))} to wait for it)"


def error_data(error: LlamuxError, waits: bool = True) -> dict[str, Any]:
    """``{"error": {"type", "message", ...}}``: ``error`` as ``--json`` prints it, with what
    it carries (where a config error is, when capacity returns, which provider failed)."""
    data: dict[str, Any] = {"type": type(error).__name__, "message": message(error, waits)}
    if isinstance(error, ConfigError):
        data.update(file=error.file, line=error.line, column=error.column)
    elif isinstance(error, NoEndpointAvailable):
        data["retry_after"] = error.retry_after
        data["cause"] = "providers" if error.providers_down else "quota"
        data["attempts"] = [
            {"endpoint": a.endpoint, "outcome": a.outcome, "reason": a.reason, "status": a.status}
            for a in error.attempts
        ]
    elif isinstance(error, RequestTooLarge):
        data["tokens"] = error.tokens
    elif isinstance(error, ProviderError):
        data.update(endpoint=error.endpoint, status=error.status, code=error.code)
    data["exit_code"] = exit_code(error)
    return {"error": data}


def say_error(text: str) -> None:
    """``llamux: error: ...`` on stderr (if stderr is closed, the exit code still says it)."""
    with contextlib.suppress(BrokenPipeError):
        print(f"llamux: error: {text}", file=sys.stderr)


def say_json_error(error: LlamuxError, waits: bool = True) -> None:
    print(json.dumps(error_data(error, waits), indent=2))


def say_dim(text: str) -> None:
    """A note on stderr, dimmed on a terminal (plain with ``NO_COLOR``)."""
    from ._screen import Screen

    print(Screen.of(sys.stderr).paint(text, "dim"), file=sys.stderr)


def quiet_stdout() -> None:
    """After a closed pipe (``llamux status | head -1``): point stdout at the null device,
    so that nothing more (not even the flush at exit) fails on it. Python's documented way."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
