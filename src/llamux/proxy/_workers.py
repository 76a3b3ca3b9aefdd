"""Several proxy processes on one port and one quota: ``llamux serve --workers N``.

A supervisor (uvicorn's, see ``_supervisor``) binds the port and starts N worker processes
(spawned: fresh interpreters) that accept its connections. Each worker builds its own app and
its own :class:`~llamux.Router` from the same config file and store URL, so each has its own
store connection, and the quota is counted in the store they share (an SQLite file on one
machine, a Redis server across machines), never per worker. A store that lives inside one
process (``memory://``, SQLite's ``:memory:``) is refused: each worker would count the whole
quota by itself, and together they would cross it.

What the parent hands its workers: the config path, the store URL as given (None: each
worker resolves it as the parent did, from the config or ``$LLAMUX_STORE``) and the serve
options, as JSON in the environment variable ``LLAMUX_SERVE_WORKER`` (spawned processes
inherit the environment). Never a key: each worker reads the provider keys from the
variables the config names and the proxy key from ``$LLAMUX_PROXY_KEY``, as the parent does.

Signals (``_supervisor``): Ctrl-C or SIGTERM stops every worker gracefully (requests in
flight finish and settle, each worker closes its router), then the parent. A worker that
dies is logged (``Child process [pid] died``) and replaced; a worker that cannot start (its
config or store fails) stops them all, its error on stderr. Each worker listens on a socket
of its own (Linux), so connections are spread over the workers evenly.

Per worker: the dashboard's recent requests and per-minute history and the counters of
``/metrics`` (an answer comes from the worker that accepted the connection; log lines name
their worker's process id). Shared through the store: quotas, reservations, cool-downs,
learned limits and measured speeds, so ``/v1/llamux/status`` and the dashboard's quota bars
are the same whichever worker answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._config.load import load
from .._config.proxy_defaults import (
    DEFAULT_HOST,
    DEFAULT_LOG_FORMAT,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    KEY_VARIABLE,
    LOG_FORMATS,
)
from .._errors import ConfigError, LlamuxError
from .._stores import default_store_url
from ._app import UVICORN_OPTIONS, create_app
from ._auth import require_key
from ._log import log_config
from ._supervisor import STARTUP_FAILURE, listening_sockets, supervise

if TYPE_CHECKING:
    from starlette.applications import Starlette

OPTIONS = "LLAMUX_SERVE_WORKER"
"""The environment variable through which the parent hands its workers their options."""


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to build the same proxy as its siblings (no key among it)."""

    config: str
    store: str | None
    host: str
    max_body_bytes: int
    allow_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> WorkerOptions:
        data = json.loads(text)
        data["allow_hosts"] = tuple(data["allow_hosts"])
        data["cors_origins"] = tuple(data["cors_origins"])
        return cls(**data)


def shared_store(config: str | os.PathLike[str], store: str | None, workers: int) -> None:
    """Raise ``ConfigError`` if ``workers`` processes could not share the store that
    ``store`` (else the config's, else the default) names."""
    url = store or load(config).store or default_store_url()
    if workers > 1 and _process_local(url):
        raise ConfigError(
            f"--workers {workers} needs a store the worker processes share, and {url} lives "
            "inside one process: each worker would count the whole quota by itself, and "
            "together they would cross it. Use --store sqlite:///path/to/quota.db (processes "
            "on one machine) or --store redis://host:6379/0 (several machines), or one worker"
        )


def _process_local(url: str) -> bool:
    if url in ("memory://", "memory", ":memory:"):
        return True
    return url.startswith("sqlite://") and url.removeprefix("sqlite://") in ("", ":memory:")


def serve_workers(
    config: str | os.PathLike[str],
    *,
    workers: int,
    store: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    log_level: str = "info",
    log_format: str = DEFAULT_LOG_FORMAT,
    allow_hosts: Sequence[str] = (),
    cors_origins: Sequence[str] = (),
) -> None:
    """Run the proxy for the config file ``config`` in ``workers`` processes on one port,
    each with its own router on the store ``store`` names (default: the config's, else
    ``$LLAMUX_STORE``, else the default SQLite file), until interrupted. The proxy key is
    ``$LLAMUX_PROXY_KEY`` (a host other than a loopback address needs one); the other
    options are :func:`~llamux.proxy.serve`'s. ``ConfigError`` for a store the workers
    cannot share (``memory://``); ``SystemExit(3)`` when the port cannot be listened on or
    a worker could not start (uvicorn and the worker say why on stderr)."""
    from uvicorn.supervisors.multiprocess import SIGNALS

    _check(config, store, workers, host, log_format)
    options = WorkerOptions(
        str(Path(config).resolve()),
        store,
        host,
        max_body_bytes,
        tuple(allow_hosts),
        tuple(cors_origins),
    )
    settings = _settings(workers, host, port, log_level, log_format)
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    sockets = listening_sockets(host, port, workers)
    try:
        with _environ(OPTIONS, options.dumps()):
            started = supervise(settings, sockets)
    finally:  # the supervisor queues these signals for itself: give them back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for sock in set(sockets):
            sock.close()
    if not started:
        sys.exit(STARTUP_FAILURE)


def _check(
    config: str | os.PathLike[str], store: str | None, workers: int, host: str, log_format: str
) -> None:
    """``ConfigError`` for options the workers cannot run with (before anything starts)."""
    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, not {workers}")
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"log_format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    shared_store(config, store, workers)
    require_key(host, os.environ.get(KEY_VARIABLE) or None)


def _settings(workers: int, host: str, port: int, log_level: str, log_format: str) -> Any:
    """uvicorn's settings for ``workers`` processes, each building its app (``worker_app``)."""
    import uvicorn

    return uvicorn.Config(
        f"{__name__}:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        log_config=log_config(log_format, log_level, workers=True),
        access_log=False,
        **UVICORN_OPTIONS,
    )


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def worker_app() -> Starlette:
    """One worker's app (uvicorn's factory, called in the worker process): a router of its
    own, from the options its parent left in ``$LLAMUX_SERVE_WORKER``."""
    from .._router import Router

    said = logging.getLogger("uvicorn.error")
    given = os.environ.get(OPTIONS)
    if not given:
        said.error(
            "llamux: error: %s is not set: this app is started by llamux serve --workers N",
            OPTIONS,
        )
        sys.exit(STARTUP_FAILURE)
    options = WorkerOptions.loads(given)
    try:
        with _quiet(logging.getLogger("llamux")):  # the parent said the config's warnings
            router = Router.from_config(options.config, store=options.store)
    except LlamuxError as error:
        said.error("llamux: error: a worker could not start: %s", error)
        sys.exit(STARTUP_FAILURE)
    return create_app(
        router,
        proxy_key=os.environ.get(KEY_VARIABLE) or None,
        max_body_bytes=options.max_body_bytes,
        bound_host=options.host,
        allow_hosts=options.allow_hosts,
        cors_origins=options.cors_origins,
    )


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)
