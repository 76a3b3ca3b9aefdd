"""The proxy's request log: one line per request, in place of uvicorn's access log.

:class:`RequestLog` (ASGI middleware, outermost) times each request and notes its status;
the chat route adds what it knows (:class:`Entry`: the model asked for, the attempts, how it
was served or why not). When the answer has ended (a stream: its last byte), the proxy gets
the entry and logs :func:`fields` of it on the ``llamux.proxy`` logger, plain
(:func:`plain`) or one JSON object per line (:class:`JsonFormatter`, ``--log-format json``).

What a line holds: method, path, status, seconds, the endpoint that served the request,
tokens, each failover and refusal with its reason, the error code. Never a key (the proxy
redacts every key it knows before logging), never the prompt or the answer, never a
provider's error message for a request it refused (it may quote the request).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from .._engine.served import Attempt, Served

LOGGER = "llamux.proxy"
ENTRY = "llamux.entry"
"""The scope key under which the chat route finds the request's :class:`Entry`."""
QUIET_PATHS = frozenset(
    {"/healthz", "/metrics", "/v1/llamux/status", "/v1/llamux/history", "/v1/llamux/requests"}
)
"""Polled by the dashboard or a scraper: their successful GETs are logged at DEBUG."""
SNIFF = 4096
"""Bytes of an error answer read to find its OpenAI error ``code`` (never its message)."""

log = logging.getLogger(LOGGER)


@dataclass(slots=True)
class Entry:
    """What the proxy knows of one request, filled in as it is answered."""

    method: str
    path: str
    client: str | None
    at: float
    """When it arrived (the router's clock, epoch seconds)."""
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    first_byte: float | None = None
    model: str | None = None
    stream: bool = False
    attempts: Sequence[Attempt] = ()
    served: Served | None = None
    code: str | None = None
    message: str | None = None
    """llamux's own reason for refusing the request (safe to log); never a provider's."""
    retry_after: float | None = None
    sniff: bool = False
    """Whether the answer is a JSON error, whose head :attr:`body` keeps."""
    body: bytearray = field(default_factory=bytearray)


Finished = Callable[[Entry, float], None]
"""Told of each request once its answer has ended, with its duration in seconds."""


class RequestLog:
    """ASGI middleware: an :class:`Entry` per HTTP request, handed to ``finished`` at the
    end, whatever the end (an answer, a client gone, an error of llamux's)."""

    def __init__(self, app: ASGIApp, *, finished: Finished, clock: Callable[[], float]) -> None:
        self.app = app
        self.finished = finished
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        entry = Entry(scope["method"], scope["path"], client[0] if client else None, self.clock())
        scope[ENTRY] = entry

        async def noting(message: Message) -> None:
            _note(entry, message)
            await send(message)

        try:
            await self.app(scope, receive, noting)
        except Exception:
            if entry.status is None:
                entry.status, entry.code = 500, "internal_error"
            raise
        finally:
            self.finished(entry, time.perf_counter() - entry.started)


def _note(entry: Entry, message: Message) -> None:
    """Note the status, the first byte's time and the head of an error body."""
    if message["type"] == "http.response.start":
        entry.status = message["status"]
        headers = dict(message.get("headers", ()))
        media = headers.get(b"content-type", b"")
        entry.sniff = entry.status >= 400 and media.startswith(b"application/json")
    elif message["type"] == "http.response.body":
        chunk = message.get("body", b"")
        if chunk and entry.first_byte is None:
            entry.first_byte = time.perf_counter() - entry.started
        if entry.sniff and len(entry.body) < SNIFF:
            entry.body.extend(chunk[: SNIFF - len(entry.body)])


def error_code(entry: Entry) -> str | None:
    """The ``code`` of an OpenAI-shaped error answer, if it was one."""
    if entry.code is not None or not entry.sniff:
        return entry.code
    try:
        error = json.loads(bytes(entry.body)).get("error")
    except (ValueError, AttributeError):
        return None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def fields(entry: Entry, seconds: float) -> dict[str, Any]:
    """The request as JSON-ready data: what a log line and the recent-requests list show."""
    out: dict[str, Any] = {
        "time": entry.at,
        "method": entry.method,
        "path": entry.path,
        "status": entry.status,
        "seconds": round(seconds, 4),
    }
    if entry.client is not None:
        out["client"] = entry.client
    if entry.model is not None:
        out["model"] = entry.model
        out["stream"] = entry.stream
    served = entry.served
    if served is not None:
        out["endpoint"] = served.endpoint
        out["tokens"] = served.tokens if served.tokens is not None else served.estimated_tokens
        out["tokens_estimated"] = served.tokens is None
    if entry.stream and entry.first_byte is not None:
        out["first_byte"] = round(entry.first_byte, 4)
    failed = [a for a in entry.attempts if a.outcome == "failed"]
    if failed:
        out["failovers"] = [
            {"endpoint": a.endpoint, "status": a.status, "reason": a.reason} for a in failed
        ]
    refused = [a for a in entry.attempts if a.outcome in ("refused", "skipped")]
    if refused:
        out["refused"] = [{"endpoint": a.endpoint, "reason": a.reason} for a in refused]
    code = error_code(entry)
    if code is not None:
        out["error"] = code
    if entry.message is not None:
        out["message"] = entry.message
    if entry.retry_after is not None:
        out["retry_after"] = round(entry.retry_after, 1)
    return out


def level(data: dict[str, Any]) -> int:
    """INFO for a request; DEBUG for a poll that went well; WARNING for llamux's failure."""
    status = data["status"]
    if status is not None and status >= 500 and data.get("error") == "internal_error":
        return logging.WARNING
    quiet = data["method"] in ("GET", "HEAD") and data["path"] in QUIET_PATHS
    return logging.DEBUG if quiet and status is not None and status < 400 else logging.INFO


def plain(data: dict[str, Any]) -> str:
    """One request as one line of text, e.g. ``POST /v1/chat/completions 200 served by
    groq:llama-3.3-70b-versatile in 0.84 s, 412 tokens, after cerebras:x failed: HTTP 503``."""
    status = "(no answer: the client left)" if data["status"] is None else str(data["status"])
    head = f"{data['method']} {data['path']} {status}"
    took = f"in {_seconds(data['seconds'])}"
    if "endpoint" in data:
        tokens = data["tokens"]
        line = f"{head} served by {data['endpoint']} {took}, {tokens} tokens"
        line += " (estimated)" if data["tokens_estimated"] else ""
        if "first_byte" in data:
            line += f", streamed, first byte in {_seconds(data['first_byte'])}"
    elif data.get("error") == "rate_limit_exceeded" and "refused" in data:
        line = f"{head} no endpoint available {took}"
    else:
        line = f"{head} {took}"
        said = [data["error"]] if "error" in data else []
        said += [_cut(data["message"], 200)] if "message" in data else []
        line += f": {': '.join(said)}" if said else ""
    if "failovers" in data:
        line += ", after " + "; ".join(
            f"{f['endpoint']} failed: {_failure(f)}" for f in data["failovers"]
        )
    if "refused" in data and "endpoint" not in data:
        line += " (" + "; ".join(f"{r['endpoint']}: {r['reason']}" for r in data["refused"]) + ")"
    if "retry_after" in data:
        line += f", capacity returns in {_seconds(data['retry_after'])}"
    client = data.get("client")
    if client and not _loopback(client):
        line += f" from {client}"
    return line


def _failure(failover: dict[str, Any]) -> str:
    status = failover["status"]
    return f"HTTP {status}" if status is not None else _cut(failover["reason"], 120)


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"


def _cut(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _loopback(client: str) -> bool:
    return client.startswith("127.") or client in ("::1", "localhost", "testclient")


# ------------------------------------------------------------------ formats


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, with ``pid`` the id of
    the process that wrote it (the worker, under ``llamux serve --workers N``), then a
    request's :func:`fields` (but its ``time`` of arrival), or ``logger`` and ``message``."""

    def __init__(self, *, pid: bool = False) -> None:
        super().__init__()
        self.pid = pid

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        out: dict[str, Any] = {"time": moment, "level": record.levelname.lower()}
        if self.pid:
            out["pid"] = record.process
        data = getattr(record, "llamux", None)
        if isinstance(data, dict):
            out.update({k: v for k, v in data.items() if k != "time"})
        else:
            out["logger"] = record.name
            out["message"] = record.getMessage()
            if record.exc_info:
                out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def log_config(log_format: str, log_level: str, *, workers: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn: its own messages on stderr and the
    request lines on stdout (where its access log went), both in ``log_format``.

    ``workers``: for the processes of ``llamux serve --workers N``, whose lines interleave:
    each line names its process id (``[1234]`` in text, ``"pid"`` in JSON), and
    llamux's own warnings go to stderr in the same format (there is no command line in a
    worker to print them)."""
    plain_format = "%(asctime)s %(levelname)s " + ("[%(process)d] " if workers else "")
    formatter = (
        {"()": f"{__name__}.JsonFormatter", "pid": workers}
        if log_format == "json"
        else {"format": plain_format + "%(message)s", "datefmt": "%Y-%m-%d %H:%M:%S"}
    )
    level_name = log_level.upper()
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"llamux": formatter},
        "handlers": {
            "server": {
                "class": "logging.StreamHandler",
                "formatter": "llamux",
                "stream": "ext://sys.stderr",
            },
            "requests": {
                "class": "logging.StreamHandler",
                "formatter": "llamux",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["server"], "level": level_name, "propagate": False},
            "uvicorn.error": {"level": level_name},
            LOGGER: {"handlers": ["requests"], "level": level_name, "propagate": False},
        },
    }
    if workers:
        config["loggers"]["llamux"] = {"handlers": ["server"], "level": "WARNING"}
    return config
