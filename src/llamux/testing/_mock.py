"""``MockTransport``: the router's calls answered in-process, without a socket.

The real transport (the ``openai`` SDK, its parsing, llamux's error boundary) runs as in
production; only the HTTP connection is replaced by a function of the request. For unit tests
of routing, failover and settling; the HTTP fake provider stays for integration tests (exact
windows, ingress latency, dialects, the proxy over the network).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._config.endpoint import DEFAULT_TIMEOUT
from .._providers.boundary import httpx_module
from .._providers.transport import OpenAITransport
from ._dialects import error_body
from ._endpoint import FakeEndpoint
from ._kinds import ROUTES
from ._requests import Reply, _BadRequest


@dataclass(frozen=True)
class MockRequest:
    """One request the router sent: its URL (the endpoint's ``base_url`` +
    ``/chat/completions``, ``/embeddings``, ``/responses`` or ``/completions``), the JSON body
    and the headers (the key is left out)."""

    url: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(repr=False)

    @property
    def path(self) -> str:
        """The URL's path, without a query."""
        return urlsplit(self.url).path

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


Handler = Callable[[MockRequest], Any]
"""Answers a request: returns an HTTP response (:func:`mock_reply`, :func:`mock_error`) or
raises an exception of the HTTP library (:func:`mock_refused`: the connection failed)."""


def mock_reply(
    request: MockRequest,
    text: str = "ok",
    *,
    headers: Mapping[str, str] | None = None,
    usage: bool = True,
) -> Any:
    """A successful answer of ``text`` to ``request``, of the kind its URL names (chat
    completions, embeddings, the Responses API, text completions): the fake provider's
    answer, JSON or SSE when it streams (usage as the fake counts it: in a chat or text
    completion stream only when ``stream_options.include_usage`` asks; none if not
    ``usage``). A body the fake would refuse answers its 400."""
    kind = next((k for path, k in ROUTES.items() if request.path.endswith("/" + path)), None)
    if kind is None:
        return mock_error(404, f"MockTransport: no such route: {request.url}", code="unknown_url")
    endpoint = FakeEndpoint("mock", reply=text)
    try:
        ask = kind.parse(request.body, endpoint)
    except _BadRequest as exc:
        return mock_error(400, str(exc))
    answer = ask.answer(Reply(int(time.time()), ask.output(endpoint), usage))
    sent = {"x-request-id": "mock", **(headers or {})}
    http = httpx_module()
    if answer.frames is None:
        json_headers = {**sent, "content-type": "application/json"}
        return http.Response(200, headers=json_headers, text=answer.body)
    payload = "".join(answer.frames)
    return http.Response(200, headers={**sent, "content-type": "text/event-stream"}, text=payload)


def mock_error(
    status: int,
    message: str = "mock error",
    *,
    headers: Mapping[str, str] | None = None,
    type_: str = "invalid_request_error",
    code: str | None = None,
) -> Any:
    """An error answer in the OpenAI shape (``429`` with ``retry-after`` in ``headers``, say)."""
    body = error_body(message, type_, code)
    sent = {**(headers or {}), "content-type": "application/json"}
    return httpx_module().Response(status, headers=sent, content=body)


def mock_refused(message: str = "connection refused") -> Exception:
    """The exception to raise from a handler for a connection that could not be made."""
    error: Exception = httpx_module().ConnectError(message)
    return error


class MockTransport(OpenAITransport):
    """A transport whose provider is ``handler`` (default: every request answered ``ok``).

    ``requests`` lists what was sent, in order; pass it as ``Router(..., transport=...)``.
    Sync, async, streamed and relayed (``araw``) calls all go through ``handler``.
    """

    def __init__(self, handler: Handler | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.handler: Handler = handler or mock_reply
        self.requests: list[MockRequest] = []
        self._seen = threading.Lock()
        super().__init__(timeout, http_transport=httpx_module().MockTransport(self._answer))

    def __repr__(self) -> str:
        return f"MockTransport({self.handler!r})"

    def _answer(self, request: Any) -> Any:
        content = request.read()
        body = json.loads(content) if content else {}
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower() != "authorization"}
        seen = MockRequest(str(request.url), body, headers)
        with self._seen:
            self.requests.append(seen)
        return self.handler(seen)
