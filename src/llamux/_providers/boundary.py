"""The one provider-error boundary: every exception the openai SDK or its HTTP library
raises while llamux talks to a provider becomes a llamux error here, chosen by type (in the
spirit of httpx's ``map_httpcore_exceptions``), never by class name.

Where the failure happened decides what the provider may have seen (:class:`Stage`):

* ``SEND``: building or sending the request. A body that cannot be encoded is an
  :class:`InvalidRequest` (a local failure: nothing is cooled down); a connection refused or
  a connect timeout never reached the provider (``accepted=False``); anything later may
  have been processed.
* ``ANSWER``: the answer's head had arrived and its body could not be read as a chat
  completion: the provider processed the request.
* ``STREAM``: a stream broke after its head: the provider bills it (``accepted=True``).

Raise the result outside the ``except`` block that caught the SDK's exception: that one
holds the request, whose headers carry the key. Every message names the endpoint and never
the key (:class:`ProviderError` scrubs it from every field).
"""

from __future__ import annotations

import enum
import functools
import importlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._config.base_url import endpoint_url
from .._errors import (
    InvalidRequest,
    LlamuxError,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderStatusError,
    ProviderTimeout,
)

if TYPE_CHECKING:
    from .._config.load import Endpoint


class Stage(enum.Enum):
    """Where a call failed: what the provider may have seen of it."""

    SEND = "send"
    ANSWER = "answer"
    STREAM = "stream"


@functools.cache
def httpx_module() -> Any:
    """The HTTP library the installed openai SDK runs on: httpx2 (openai 3.x) or httpx (2.x),
    read from the SDK's own client class (both may be installed)."""
    import openai

    base = openai.DefaultHttpxClient.__mro__[1]  # httpx2.Client or httpx.Client
    return importlib.import_module(base.__module__.split(".")[0])


def translate(exc: Exception, endpoint: Endpoint, api_key: str, stage: Stage) -> LlamuxError:
    """The llamux error for ``exc``, raised by the SDK or the HTTP library at ``stage``.

    Raises ``exc`` itself when it is neither's (a bug of llamux's must not look like a
    provider's failure)."""
    import openai

    if isinstance(exc, LlamuxError):
        return exc
    httpx = httpx_module()
    where = f"endpoint {endpoint.id} ({endpoint_url(endpoint)})"
    late = stage is not Stage.SEND  # the answer had begun: the provider has the request
    if isinstance(exc, openai.APIStatusError):  # the SDK has read the error answer
        headers = {k.lower(): v for k, v in exc.response.headers.items()}
        return status_error(endpoint, api_key, exc.status_code, headers, exc.response.content)
    cause = exc.__cause__ if isinstance(exc, openai.APIError) else exc
    if isinstance(exc, openai.APITimeoutError) or isinstance(cause, httpx.TimeoutException):
        return ProviderTimeout(
            f"{where} did not answer in time; it may have processed the request",
            endpoint=endpoint.id,
            accepted=late or not isinstance(cause, httpx.ConnectTimeout),
        )
    if isinstance(exc, openai.APIConnectionError) or isinstance(cause, httpx.TransportError):
        refused = isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
        verb = "broke off its answer" if late else "could not be reached"
        return ProviderConnectionError(
            f"{where} {verb}: {cause or exc}",
            endpoint=endpoint.id,
            accepted=late or not refused,
            secrets=(api_key,),
        )
    if isinstance(exc, openai.APIError):
        return ProviderError(
            f"{where} failed: {exc}", endpoint=endpoint.id, accepted=True, secrets=(api_key,)
        )
    return _not_the_libraries(exc, endpoint, api_key, stage)


def _not_the_libraries(
    exc: Exception, endpoint: Endpoint, api_key: str, stage: Stage
) -> LlamuxError:
    """An exception raised by neither library: what it means depends on the stage."""
    if stage is Stage.SEND:
        if isinstance(exc, ValueError | RecursionError):
            return unencodable(exc)  # the SDK could not encode the body
        raise exc  # not the provider's (a TypeError: parameters the SDK refuses)
    where = f"endpoint {endpoint.id} ({endpoint_url(endpoint)})"
    if stage is Stage.ANSWER and isinstance(exc, ValueError):
        return ProviderError(  # an answer that is not a chat completion (bad JSON ...)
            f"{where} answered something that is not a chat completion "
            f"({type(exc).__name__}); it may have processed the request",
            endpoint=endpoint.id,
            accepted=True,
        )
    return ProviderConnectionError(  # a stream that broke, whatever broke it
        f"{where} broke off its stream ({type(exc).__name__})",
        endpoint=endpoint.id,
        accepted=True,
        secrets=(api_key,),
    )


def stream_error(exc: Exception, endpoint: Endpoint, api_key: str) -> ProviderError:
    """The error of a stream that broke after its head, before or after its first chunk:
    the provider has the request (a stream's failure is never a local one)."""
    error = translate(exc, endpoint, api_key, Stage.STREAM)
    assert isinstance(error, ProviderError)
    return error


def unencodable(exc: BaseException) -> InvalidRequest:
    """The request could not be encoded as JSON (``nan``, a lone surrogate, a cycle ...):
    a local failure, never the provider's, so it cools nothing down."""
    return InvalidRequest(
        f"the request cannot be sent as JSON ({type(exc).__name__}: {str(exc)[:200]}); "
        "pass only finite numbers, valid text and plain lists and objects"
    )


def status_error(
    endpoint: Endpoint, api_key: str, status: int, headers: Mapping[str, str], content: bytes
) -> ProviderError:
    """An HTTP error answer, as the SDK would report it (message, code, inner error body)."""
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
