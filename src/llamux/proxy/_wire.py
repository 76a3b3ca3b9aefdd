"""The proxy's wire format, free of any web framework: a chat request parsed and checked,
and every failure as the OpenAI error shape, ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .._engine.call import ROUTER_PARAMS
from .._engine.inputs import MAX_DEPTH, check_input, check_params
from .._engine.served import Attempt
from .._errors import (
    InvalidRequest,
    LlamuxError,
    NoEndpointAvailable,
    ProviderError,
    RequestTooLarge,
    StoreError,
    redact,
)
from .._policy.kinds import KIND

MAX_WAIT = 300.0
"""The longest ``"llamux": {"wait": ...}`` a client may ask for, in seconds."""


class Problem(Exception):
    """An error answer: HTTP status, headers and the OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        error = {"message": message, "type": kind, "param": param, "code": code}
        self.body: dict[str, Any] = {"error": {**error, **(extra or {})}}


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        f"the request body is over {limit} bytes, this proxy's limit; send less, or start "
        "the proxy with a larger --max-body",
        "request_too_large",
    )


def parse_chat(raw: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, params) of a chat request body; ``params`` with the llamux options applied
    and the ``llamux`` object removed (it is never forwarded). Raises :class:`Problem` (400)
    for a body that is not strict JSON, nests too deeply, or has parameters llamux cannot
    count with (see :func:`~llamux._admission.check_params`): before anything is reserved."""
    body = _json_object(raw)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Problem(400, "messages must be a non-empty array of objects", param="messages")
    for message in messages:
        if not isinstance(message, dict):
            raise Problem(400, "each message must be an object", param="messages")
        if not isinstance(message.get("role"), str):
            raise Problem(
                400, 'each message needs a "role" string such as "user"', param="messages"
            )
    skip = {"messages", "llamux", *ROUTER_PARAMS}
    params = {k: v for k, v in body.items() if k not in skip}
    try:
        check_params(params, messages)
    except InvalidRequest as error:
        raise Problem(400, str(error), "invalid_request", param=_param(str(error), body)) from None
    params.update(_options(body.get("llamux")))
    return messages, params


def parse_request(raw: bytes, kind: str) -> tuple[Any, dict[str, Any]]:
    """(input, params) of a request of ``kind``: a chat's messages (:func:`parse_chat`), an
    embeddings or Responses ``input``, a text completion's ``prompt``; ``params`` as
    :func:`parse_chat` makes them. Raises :class:`Problem` (400) before anything is
    reserved."""
    if kind == "chat":
        return parse_chat(raw)
    body = _json_object(raw)
    field = KIND[kind].field
    given = body.get(field)
    skip = {field, "llamux", *ROUTER_PARAMS}
    params = {k: v for k, v in body.items() if k not in skip}
    try:
        check_input(kind, given, params)
    except InvalidRequest as error:
        param = field if str(error).startswith(field) else _param(str(error), body)
        raise Problem(400, str(error), "invalid_request", param=param) from None
    params.update(_options(body.get("llamux")))
    return given, params


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object: strict (no ``NaN``), valid UTF-8, nesting bounded."""
    if not raw.strip():
        raise Problem(400, "the request body is empty; send a JSON object with messages")
    try:
        body = json.loads(raw, parse_constant=_constant)
    except UnicodeDecodeError:
        raise Problem(400, "the request body is not valid UTF-8; send UTF-8 JSON") from None
    except json.JSONDecodeError as error:
        raise Problem(
            400, f"the request body is not valid JSON ({error}); send a JSON object"
        ) from None
    except ValueError:  # an integer literal of thousands of digits
        raise Problem(400, "the request body holds a number too long to read") from None
    except RecursionError:
        raise Problem(
            400, f"the request body nests more than {MAX_DEPTH} levels deep; flatten it"
        ) from None
    if not isinstance(body, dict):
        raise Problem(400, f"the request body must be a JSON object, not a JSON {_kind(body)}")
    return body


def _constant(name: str) -> Any:
    raise Problem(400, f"the request body holds {name}, which is not JSON; send finite numbers")


def _kind(value: Any) -> str:
    kinds = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return kinds.get(type(value), "null")


def _param(message: str, body: Mapping[str, Any]) -> str | None:
    """The parameter an ``InvalidRequest`` message starts with (``max_tokens must ...``)."""
    top = message.split(" ", 1)[0].split(".", 1)[0].split("[", 1)[0]
    return top if top in body else None


def _options(given: Any) -> dict[str, Any]:
    """The ``"llamux"`` object: ``strategy`` (a name) and ``wait`` (seconds, capped)."""
    if given is None:
        return {}
    unknown = set(given) - set(ROUTER_PARAMS) if isinstance(given, dict) else {"?"}
    if unknown:
        raise Problem(
            400, 'llamux must be an object with only "strategy" and "wait"', param="llamux"
        )
    options: dict[str, Any] = {}
    if given.get("strategy") is not None:
        if not isinstance(given["strategy"], str):
            raise Problem(400, "llamux.strategy must be a strategy name", param="llamux")
        options["strategy"] = given["strategy"]
    wait = given.get("wait")
    if wait is not None:
        if isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0:
            raise Problem(400, "llamux.wait must be a number of seconds >= 0", param="llamux")
        options["wait"] = MAX_WAIT if wait > MAX_WAIT else float(wait)  # a huge int: no overflow
    return options


def failure(
    error: LlamuxError,
    secrets: Sequence[str],
    *,
    attempts: Sequence[Attempt] = (),
    wait: float | None = None,
) -> Problem:
    """The answer for an error of the router; ``secrets`` (provider keys) are scrubbed.
    ``attempts``: the request's, which a 429 lists (if the error does not carry them);
    ``wait``: what it asked to wait."""
    if isinstance(error, NoEndpointAvailable):
        tried = error.attempts or tuple(attempts)
        if error.providers_failed:
            return _all_failed(error, tried, secrets)
        return _unavailable(error, tried, wait)
    if isinstance(error, RequestTooLarge):
        return Problem(400, str(error), "context_length_exceeded", param="messages")
    if isinstance(error, ProviderError):
        return _upstream(error, secrets)
    if isinstance(error, StoreError):
        return Problem(503, str(error), "store_unavailable", kind="server_error")
    return Problem(400, str(error), "invalid_llamux_request")


def _unavailable(
    error: NoEndpointAvailable, attempts: Sequence[Attempt], wait: float | None
) -> Problem:
    """429, with ``Retry-After`` when capacity returns at a known time, and the reasons.
    The message is the proxy's own: the library's names its ``wait=`` argument, a client
    of the proxy has ``"llamux": {"wait": N}`` in its request body instead."""
    retry = error.retry_after
    headers = {} if retry is None else {"retry-after": str(max(1, math.ceil(retry)))}
    reasons = [{"endpoint": r.endpoint, "reason": r.reason} for r in error.refusals]
    tried = [f"{a.endpoint}: {a.reason}" for a in attempts if a.outcome != "served"]
    why = "; ".join(tried or [f"{r['endpoint']}: {r['reason']}" for r in reasons]) or "none"
    return Problem(
        429,
        f"no endpoint can serve this request now ({why}); {_when(retry, wait)}",
        "rate_limit_exceeded",
        kind="rate_limit_error",
        headers=headers,
        extra={"retry_after": retry, "reasons": reasons},
    )


def _all_failed(
    error: NoEndpointAvailable, attempts: Sequence[Attempt], secrets: Sequence[str]
) -> Problem:
    """502: every endpoint that could take the request was called and failed (5xx, timeout,
    connection, a refused key): the providers are the cause, not quota, so not a 429."""
    retry = error.retry_after
    headers = {} if retry is None else {"retry-after": str(max(1, math.ceil(retry)))}
    failed = [a for a in attempts if a.outcome == "failed"]
    why = "; ".join(f"{a.endpoint}: {a.reason}" for a in failed)
    reasons = [{"endpoint": a.endpoint, "reason": a.reason, "status": a.status} for a in failed]
    message = (
        f"every endpoint that could serve this request failed ({why}): the providers are "
        "down, unreachable or refusing the key; check their status, the network and "
        "base_url, then try again"
    )
    return Problem(
        502,
        redact(message, secrets),
        "upstream_failed",
        kind="upstream_error",
        headers=headers,
        extra={"retry_after": retry, "reasons": redact(reasons, secrets)},
    )


def _when(retry: float | None, wait: float | None) -> str:
    """When capacity returns, and how a client can wait for it."""
    if retry is None:
        return (
            "none will admit it before a reset or a fix; see GET /v1/llamux/status or "
            "the dashboard for each endpoint's state"
        )
    after = f"capacity returns in {retry:.1f} s: retry after the Retry-After header's seconds"
    if wait:
        return f"{after} (that is longer than the {wait:g} s this request would wait)"
    if retry > MAX_WAIT:
        return f"{after} (longer than this proxy waits for a request, {MAX_WAIT:g} s at most)"
    asked = max(1, math.ceil(retry))
    return (
        f'{after}, or send "llamux": {{"wait": {asked}}} in the request body and the proxy '
        "holds the request until capacity returns"
    )


def _upstream(error: ProviderError, secrets: Sequence[str]) -> Problem:
    """The provider's own error object with its status, else one built from the message."""
    status = error.status if error.status is not None and 400 <= error.status <= 599 else 502
    problem = Problem(status, redact(str(error), secrets), error.code, kind="upstream_error")
    if isinstance(error.body, Mapping) and "message" in error.body:
        body = {"error": redact(dict(error.body), secrets)}
        try:  # the provider's own object, if it is strict JSON (no NaN)
            json.dumps(body, allow_nan=False)
        except (TypeError, ValueError):
            return problem
        problem.body = body
    return problem
