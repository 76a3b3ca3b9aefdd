"""Calls one endpoint through the official ``openai`` SDK (imported on first call).

One cached client per endpoint and key, the SDK's own retries off (llamux fails over
instead), response headers kept for provider feedback. Every exception becomes a llamux
error at the one boundary (``_boundary.translate``), whose messages never carry the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._config.base_url import endpoint_url
from .._config.endpoint import DEFAULT_TIMEOUT
from .._errors import LlamuxError
from .._policy.kinds import KIND
from .boundary import Stage, status_error, translate, unencodable

if TYPE_CHECKING:
    from openai import AsyncOpenAI, AsyncStream, OpenAI, Stream
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from .._config.load import Endpoint


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's successful answer, parsed by the SDK: a ``ChatCompletion``, or with
    ``stream=True`` the SDK's (async) stream of chunks, not yet read; ``latency`` is the time
    to the response head."""

    body: ChatCompletion | Stream[ChatCompletionChunk] | AsyncStream[ChatCompletionChunk]
    headers: Mapping[str, str]
    latency: float


@dataclass(frozen=True, slots=True)
class RawReply:
    """A provider's successful answer as HTTP, for the proxy to relay its bytes: ``body`` is
    the HTTP library's response (read for a whole answer; a stream not yet read)."""

    body: Any
    headers: Mapping[str, str]
    latency: float


class Transport(Protocol):
    """Sends one chat request to one endpoint; raises :class:`ProviderError` on failure."""

    def prepare(
        self,
        endpoint: Endpoint,
        api_key: str,
        mode: str = "sync",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Ready what a call to ``endpoint`` needs (``sync``, ``async`` or ``raw``, for
        ``loop``): called before each reservation, so nothing slow follows the charge."""
        ...

    def complete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> Reply:
        """One request of ``kind`` (chat, embeddings, responses, completions)."""
        ...

    async def acomplete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> Reply:
        """The async twin of :meth:`complete`."""
        ...

    async def araw(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> RawReply:
        """The same call, its answer as HTTP (the proxy's relay); error statuses raise."""
        ...


def resource(client: Any, kind: str) -> Any:
    """The SDK resource that creates a request of ``kind``."""
    if kind == "chat":
        return client.chat.completions
    if kind == "embeddings":
        return client.embeddings
    if kind == "responses":
        return client.responses
    return client.completions


class OpenAITransport:
    """The default transport: the ``openai`` SDK, sync and async, one client per endpoint
    (and, for async, per event loop)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, http_transport: Any = None) -> None:
        """``http_transport``: an HTTP-library transport every client sends through (one
        that serves both sync and async, such as ``MockTransport``); default: the network."""
        self.timeout = timeout
        self.http_transport = http_transport
        self._clients: dict[tuple[str, str, str], OpenAI] = {}
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, str], AsyncOpenAI]
        ] = weakref.WeakKeyDictionary()
        self._raw: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        """Per event loop, the HTTP client every async call on it shares (SDK and raw)."""
        self._sync_http: Any = None
        """The HTTP client every sync call shares: one connection pool and one TLS context
        for all endpoints (a client of its own costs an endpoint ~25 ms to build)."""
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAITransport(timeout={self.timeout!r})"

    def _client(self, endpoint: Endpoint, api_key: str) -> OpenAI:
        url = endpoint_url(endpoint)
        key = (endpoint.id, url, api_key)
        client = self._clients.get(key)
        if client is None:
            from openai import OpenAI

            http = self._sync_client()
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = OpenAI(
                        api_key=api_key,
                        base_url=url,
                        max_retries=0,
                        timeout=self.timeout,
                        http_client=http,
                    )
                    self._clients[key] = client
        return client

    def _aclient(
        self, endpoint: Endpoint, api_key: str, loop: asyncio.AbstractEventLoop | None = None
    ) -> AsyncOpenAI:
        url = endpoint_url(endpoint)
        key = (endpoint.id, url, api_key)
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            client = self._async.setdefault(loop, {}).get(key)
        if client is not None:
            return client
        from openai import AsyncOpenAI

        http = self._ahttp(loop)  # the shared pool: looked up only when a client is made
        with self._lock:
            clients = self._async.setdefault(loop, {})
            client = clients.get(key)
            if client is None:
                client = AsyncOpenAI(
                    api_key=api_key,
                    base_url=url,
                    max_retries=0,
                    timeout=self.timeout,
                    http_client=http,
                )
                clients[key] = client
        return client

    def _http(self, kind: str) -> Any:
        """A new HTTP client (sync or async, with the SDK's own defaults), on
        ``http_transport`` if one was given."""
        extra = {} if self.http_transport is None else {"transport": self.http_transport}
        sync, asynchronous = _http_classes()
        made: Any = (sync if kind == "sync" else asynchronous)(timeout=self.timeout, **extra)
        return made

    def _sync_client(self) -> Any:
        if self._sync_http is None:
            with self._lock:
                if self._sync_http is None:
                    self._sync_http = self._http("sync")
        return self._sync_http

    def prepare(
        self,
        endpoint: Endpoint,
        api_key: str,
        mode: str = "sync",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Import the SDK and build (and cache) the client a call to ``endpoint`` needs:
        ``sync``, ``async`` or ``raw`` (the proxy's relay), the async ones for ``loop`` (by
        default the running one). The router calls this before it reserves, so that nothing
        slow sits between the charge and the send."""
        if mode == "sync":
            _ = self._client(endpoint, api_key).chat.completions  # built on first access
        elif mode == "raw":
            self._ahttp(loop)
        else:
            _ = self._aclient(endpoint, api_key, loop).chat.completions

    def complete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> Reply:
        client = self._client(endpoint, api_key)
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            raw = resource(client, kind).with_raw_response.create(**params)
        except Exception as exc:
            failure = translate(exc, endpoint, api_key, Stage.SEND)
        else:
            try:
                body = raw.parse()
            except Exception as exc:
                failure = translate(exc, endpoint, api_key, Stage.ANSWER)
        if failure is not None:  # raised here, outside the except: no SDK exception chained
            raise failure
        headers = {k.lower(): v for k, v in raw.headers.items()}
        return Reply(body, headers, time.perf_counter() - started)

    def get_json(self, endpoint: Endpoint, api_key: str, path: str) -> object:
        """``GET`` a path under the endpoint's base URL (a provider's key endpoint, say),
        its JSON answer decoded; raises :class:`ProviderError` as a call does."""
        client = self._client(endpoint, api_key)
        failure: LlamuxError | None = None
        try:
            answer: object = client.get(path, cast_to=object)
        except Exception as exc:
            failure = translate(exc, endpoint, api_key, Stage.SEND)
        if failure is not None:  # raised here, outside the except: no SDK exception chained
            raise failure
        return answer

    async def acomplete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> Reply:
        client = self._aclient(endpoint, api_key)
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            answer = await resource(client, kind).with_raw_response.create(**params)
        except Exception as exc:
            failure = translate(exc, endpoint, api_key, Stage.SEND)
        else:
            try:
                body = answer.parse()
            except Exception as exc:
                failure = translate(exc, endpoint, api_key, Stage.ANSWER)
        if failure is not None:
            raise failure
        headers = {k.lower(): v for k, v in answer.headers.items()}
        return Reply(body, headers, time.perf_counter() - started)

    async def araw(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], kind: str = "chat"
    ) -> RawReply:
        """The relay's path: the same HTTP call the SDK makes, without building typed
        objects the proxy would only serialise again (half the proxy's cost, profiled): the
        provider's HTTP response itself (a stream not yet read). Error statuses raise."""
        http = self._ahttp()
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            request = http.build_request(
                "POST",
                endpoint_url(endpoint).rstrip("/") + "/" + KIND[kind].path,
                json=params,
                headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            )
        except (ValueError, TypeError, RecursionError) as exc:
            failure = unencodable(exc)
        else:
            try:
                response = await http.send(request, stream=True)
            except Exception as exc:
                failure = translate(exc, endpoint, api_key, Stage.SEND)
        if failure is not None:
            raise failure
        headers = {k.lower(): v for k, v in response.headers.items()}
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise status_error(endpoint, api_key, response.status_code, headers, content)
        if not params.get("stream"):
            try:
                await response.aread()  # a whole answer: read it here, off nobody's thread
            except Exception as exc:
                failure = translate(exc, endpoint, api_key, Stage.ANSWER)
            finally:
                await response.aclose()
            if failure is not None:
                raise failure
        return RawReply(response, headers, time.perf_counter() - started)

    def _ahttp(self, loop: asyncio.AbstractEventLoop | None = None) -> Any:
        """This event loop's HTTP client, shared by its SDK clients and raw calls (one
        connection pool for all endpoints)."""
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            http = self._raw.get(loop)
            if http is None:
                http = self._http("async")
                self._raw[loop] = http
        return http

    async def aclose(self) -> None:
        """Close the async clients of the running event loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async.pop(loop, {})
            http = self._raw.pop(loop, None)
        for client in clients.values():
            await client.close()
        if http is not None:
            await http.aclose()

    def close(self) -> None:
        """Close the sync clients (async ones: :meth:`aclose` in their event loop)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            http, self._sync_http = self._sync_http, None
        for client in clients:
            client.close()
        if http is not None:
            http.close()


@functools.cache
def _http_classes() -> tuple[type[Any], type[Any]]:
    """The SDK's default HTTP clients, closing themselves when collected (as the SDK's own
    per-client wrappers do), so a router that is never closed leaks no connection."""
    import openai

    class Http(openai.DefaultHttpxClient):
        def __del__(self) -> None:
            with contextlib.suppress(Exception):
                self.close()

    class AsyncHttp(openai.DefaultAsyncHttpxClient):
        def __del__(self) -> None:
            if self.is_closed:
                return
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().create_task(self.aclose())

    return Http, AsyncHttp
