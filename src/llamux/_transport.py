"""Calls one endpoint through the official ``openai`` SDK (imported on first call).

One cached client per endpoint and key, the SDK's own retries off (llamux fails over
instead), response headers kept for provider feedback. SDK errors become
:class:`ProviderError` subclasses whose messages never carry the API key.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ._endpoint import DEFAULT_TIMEOUT
from ._errors import (
    InvalidRequest,
    LlamuxError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderStatusError,
    ProviderTimeout,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

    from ._config import Endpoint


@dataclass(frozen=True, slots=True)
class Reply:
    """A provider's successful answer: a ``ChatCompletion``, or with ``stream=True`` the SDK's
    (async) stream of chunks, not yet read; ``latency`` is the time to the response head."""

    body: Any
    headers: Mapping[str, str]
    latency: float


class Transport(Protocol):
    """Sends one chat request to one endpoint; raises :class:`ProviderError` on failure."""

    def complete(self, endpoint: Endpoint, api_key: str, params: dict[str, Any]) -> Reply: ...

    async def acomplete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], *, raw: bool = False
    ) -> Reply:
        """With ``raw``, ``Reply.body`` is the unparsed HTTP response (see OpenAITransport)."""
        ...


def url_vars(endpoint: Endpoint) -> tuple[tuple[str, str], ...]:
    """(placeholder, environment variable) pairs that fill the endpoint's base URL."""
    if "{" not in endpoint.base_url:
        return ()
    from ._catalog import provider

    known = provider(endpoint.provider)
    return known.url_vars if known is not None else ()


def endpoint_url(endpoint: Endpoint) -> str:
    """The endpoint's base URL with ``{ACCOUNT_ID}``-style placeholders filled from the env."""
    url = endpoint.base_url
    for placeholder, variable in url_vars(endpoint):
        url = url.replace("{" + placeholder + "}", os.environ.get(variable, ""))
    return url


def missing_url_vars(endpoint: Endpoint) -> list[str]:
    """Environment variables the base URL needs that are not set."""
    return [variable for _, variable in url_vars(endpoint) if not os.environ.get(variable)]


class OpenAITransport:
    """The default transport: the ``openai`` SDK, sync and async, one client per endpoint
    (and, for async, per event loop)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._clients: dict[tuple[str, str, str], OpenAI] = {}
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, str], AsyncOpenAI]
        ] = weakref.WeakKeyDictionary()
        self._raw: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OpenAITransport(timeout={self.timeout!r})"

    def _client(self, endpoint: Endpoint, api_key: str) -> OpenAI:
        url = endpoint_url(endpoint)
        key = (endpoint.id, url, api_key)
        client = self._clients.get(key)
        if client is None:
            from openai import OpenAI

            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    client = OpenAI(
                        api_key=api_key, base_url=url, max_retries=0, timeout=self.timeout
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
            clients = self._async.setdefault(loop, {})
            client = clients.get(key)
            if client is None:
                from openai import AsyncOpenAI

                client = AsyncOpenAI(
                    api_key=api_key, base_url=url, max_retries=0, timeout=self.timeout
                )
                clients[key] = client
        return client

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

    def complete(self, endpoint: Endpoint, api_key: str, params: dict[str, Any]) -> Reply:
        client = self._client(endpoint, api_key)
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            raw = client.chat.completions.with_raw_response.create(**params)
        except Exception as exc:
            failure = sending_error(exc, endpoint, api_key)
        else:
            try:
                body = raw.parse()
            except Exception as exc:
                failure = provider_error(exc, endpoint, api_key)
        if failure is not None:  # raised here, outside the except: no SDK exception chained
            raise failure
        headers = {k.lower(): v for k, v in raw.headers.items()}
        return Reply(body, headers, time.perf_counter() - started)

    async def acomplete(
        self, endpoint: Endpoint, api_key: str, params: dict[str, Any], *, raw: bool = False
    ) -> Reply:
        """With ``raw``, ``Reply.body`` is the provider's HTTP response itself, unparsed (a
        stream not yet read): the proxy relays its bytes. Error statuses raise either way."""
        if raw:
            return await self._araw(endpoint, api_key, params)
        client = self._aclient(endpoint, api_key)
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            answer = await client.chat.completions.with_raw_response.create(**params)
        except Exception as exc:
            failure = sending_error(exc, endpoint, api_key)
        else:
            try:
                body = answer.parse()
            except Exception as exc:
                failure = provider_error(exc, endpoint, api_key)
        if failure is not None:
            raise failure
        headers = {k.lower(): v for k, v in answer.headers.items()}
        return Reply(body, headers, time.perf_counter() - started)

    async def _araw(self, endpoint: Endpoint, api_key: str, params: dict[str, Any]) -> Reply:
        """The relay's path: the same HTTP call the SDK makes, without building typed
        objects the proxy would only serialise again (half the proxy's cost, profiled)."""
        http = self._ahttp()
        started = time.perf_counter()
        failure: LlamuxError | None = None
        try:
            request = http.build_request(
                "POST",
                endpoint_url(endpoint).rstrip("/") + "/chat/completions",
                json=params,
                headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            )
        except (ValueError, TypeError, RecursionError) as exc:
            failure = unencodable(exc)
        else:
            try:
                response = await http.send(request, stream=True)
            except Exception as exc:
                failure = http_error(exc, endpoint, api_key)
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
                failure = http_error(exc, endpoint, api_key)
            finally:
                await response.aclose()
            if failure is not None:
                raise failure
        return Reply(response, headers, time.perf_counter() - started)

    def _ahttp(self, loop: asyncio.AbstractEventLoop | None = None) -> Any:
        """This event loop's HTTP client for raw calls (connection pool shared by endpoints)."""
        loop = loop or asyncio.get_running_loop()
        with self._lock:
            http = self._raw.get(loop)
            if http is None:
                http = _httpx().AsyncClient(timeout=self.timeout)
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
        for client in clients:
            client.close()


def unencodable(exc: BaseException) -> InvalidRequest:
    """The request could not be encoded as JSON (``nan``, a lone surrogate, a cycle ...):
    a local failure, never the provider's, so it cools nothing down."""
    return InvalidRequest(
        f"the request cannot be sent as JSON ({type(exc).__name__}: {str(exc)[:200]}); "
        "pass only finite numbers, valid text and plain lists and objects"
    )


def sending_error(exc: Exception, endpoint: Endpoint, api_key: str) -> LlamuxError:
    """Translate an exception of the SDK's ``create``: before the request left (the SDK
    encoding the body), an :class:`InvalidRequest`; else what :func:`provider_error` says."""
    import openai

    if isinstance(exc, ValueError | RecursionError) and not isinstance(exc, openai.APIError):
        return unencodable(exc)
    return provider_error(exc, endpoint, api_key)


def provider_error(exc: Exception, endpoint: Endpoint, api_key: str) -> ProviderError:
    """Translate an SDK exception; the message names the endpoint and never the key.

    Raise the result outside the ``except`` block that caught ``exc`` (or ``from None`` and
    clear ``__context__``): the SDK's exception holds the request, whose headers carry the key.
    """
    import openai

    secrets = (api_key,)
    where = f"endpoint {endpoint.id} ({endpoint_url(endpoint)})"
    if isinstance(exc, openai.APIStatusError):  # the SDK has read the error body
        headers = {k.lower(): v for k, v in exc.response.headers.items()}
        return status_error(endpoint, api_key, exc.status_code, headers, exc.response.content)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(
            f"{where} did not answer in time; it may have processed the request",
            endpoint=endpoint.id,
            accepted=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        refused = cause is not None and type(cause).__name__ in ("ConnectError", "ConnectTimeout")
        return ProviderConnectionError(
            f"{where} could not be reached: {cause or exc}",
            endpoint=endpoint.id,
            accepted=not refused,
            secrets=secrets,
        )
    if isinstance(exc, openai.APIError):
        return ProviderError(
            f"{where} failed: {exc}", endpoint=endpoint.id, accepted=True, secrets=secrets
        )
    if isinstance(exc, ValueError):  # an answer that is not a chat completion (bad JSON ...)
        return ProviderError(
            f"{where} answered something that is not a chat completion "
            f"({type(exc).__name__}); it may have processed the request",
            endpoint=endpoint.id,
            accepted=True,
        )
    raise exc


def _httpx() -> Any:
    """The HTTP library the openai SDK runs on: httpx2 (openai 3.x) or httpx (2.x)."""
    try:
        import httpx2

        return httpx2
    except ImportError:  # pragma: no cover - openai 2.x
        import httpx  # type: ignore[import-not-found, unused-ignore]

        return httpx


def status_error(
    endpoint: Endpoint, api_key: str, status: int, headers: Mapping[str, str], content: bytes
) -> ProviderError:
    """An HTTP error answer, as the SDK would report it (message, code, inner error body)."""
    import json

    text = content.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    body = parsed.get("error", parsed) if isinstance(parsed, Mapping) else parsed
    message = text or f"HTTP {status}"
    code = None
    if isinstance(body, Mapping):
        message = str(body.get("message") or message)
        code = body.get("code")
    where = f"endpoint {endpoint.id} ({endpoint_url(endpoint)})"
    cls = ProviderRateLimited if status == 429 else ProviderStatusError
    return cls(  # the key scrubbed from every field: providers echo it ("Incorrect API key")
        f"{where} answered HTTP {status}: {message}",
        endpoint=endpoint.id,
        status=status,
        code=None if code is None else str(code),
        headers=headers,
        body=body,
        secrets=(api_key,),
    )


def http_error(exc: Exception, endpoint: Endpoint, api_key: str) -> ProviderError:
    """A failure to get an answer at all, from the HTTP library."""
    httpx = _httpx()
    where = f"endpoint {endpoint.id} ({endpoint_url(endpoint)})"
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(
            f"{where} did not answer in time; it may have processed the request",
            endpoint=endpoint.id,
            accepted=not isinstance(exc, httpx.ConnectTimeout),
        )
    if isinstance(exc, httpx.TransportError):
        return ProviderConnectionError(
            f"{where} could not be reached: {exc}",
            endpoint=endpoint.id,
            accepted=not isinstance(exc, httpx.ConnectError),
            secrets=(api_key,),
        )
    raise exc
