"""What a request may ask for: checked before anything is reserved, so bad input never
costs quota. ``check_params`` raises ``InvalidRequest`` naming the parameter and what is
accepted; ``capabilities_needed`` says what an endpoint must support to take the request."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import InvalidRequest

MAX_OUTPUT_TOKENS = 2**31 - 1
"""The largest ``max_tokens`` / ``max_completion_tokens`` / ``n`` llamux counts with (no
model comes near it; the store's 64-bit counters must be able to add up many requests)."""
MAX_REQUEST_OUTPUT = 2**40
"""The largest output budget of one request, ``n`` times ``max_tokens`` (about 10^12)."""
MAX_WAIT_SECONDS = 366 * 24 * 3600
"""The longest ``wait=``: a year (longer than any window llamux knows)."""
MAX_DEPTH = 128
"""How deeply lists and objects may nest in a request (a JSON schema needs a dozen levels;
deeper input only exhausts the encoder's stack)."""
INT64 = 2**63
"""Integers must lie in [-2^63, 2^63 - 1]: what JSON peers and the store can hold."""


def check_params(
    params: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None = None
) -> None:
    """Raise ``InvalidRequest`` for a request llamux cannot count with or cannot send, before
    anything is reserved: a negative ``max_tokens`` would free others' quota, a huge one
    overflow the store's counters, a ``nan`` anywhere (params or, when given, messages)
    cannot be encoded as JSON and would be blamed on the provider."""
    for key in ("max_tokens", "max_completion_tokens", "n"):
        _check_count(key, params.get(key))
    _check_budget(params)
    wait = params.get("wait")
    if wait is not None and (type(wait) not in (int, float) or not 0 <= wait <= MAX_WAIT_SECONDS):
        raise InvalidRequest(
            f"wait must be a number of seconds >= 0 and <= {MAX_WAIT_SECONDS:,}, not {_shown(wait)}"
        )
    stream = params.get("stream")
    if stream is not None and type(stream) is not bool:
        raise InvalidRequest(f"stream must be true or false, not {_shown(stream)}")
    options = params.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidRequest(
            f"stream_options must be an object such as {{'include_usage': True}}, "
            f"not {_shown(options)}"
        )
    model = params.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest(
            f"model must be a string (an endpoint, route or model name), not {_shown(model)}"
        )
    # one quick walk over everything; only a bad request is walked again to say where
    if not _encodable([*params.values(), messages or ()]):
        for key, value in params.items():
            _check_json(value, str(key))
        if messages is not None:
            _check_json(messages, "messages")


def check_input(kind: str, value: Any, params: Mapping[str, Any]) -> None:
    """Raise ``InvalidRequest`` for a non-chat request's input that no provider takes, before
    anything is reserved: embeddings ``input`` and a text completion's ``prompt`` are a
    non-empty string, list of strings, token ids or lists of token ids; a Responses
    ``input`` is a non-empty string or list of items. Then as :func:`check_params`."""
    field = "prompt" if kind == "completions" else "input"
    if kind == "responses":
        if not (isinstance(value, str) and value) and not (isinstance(value, list) and value):
            raise InvalidRequest(
                f"input must be a non-empty string or a list of input items (messages such "
                f"as {{'role': 'user', 'content': 'hi'}}), not {_shown(value)}"
            )
    elif not _texts_or_tokens(value):
        raise InvalidRequest(
            f"{field} must be a non-empty string, a list of strings, a list of token ids or "
            f"a list of lists of token ids, not {_shown(value)}"
        )
    for key in ("max_output_tokens", "dimensions"):
        _check_count(key, params.get(key))
    check_params(params, [{"content": value}])


def _texts_or_tokens(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value:
        return False
    if all(isinstance(item, str) and item for item in value):
        return True
    if all(type(item) is int for item in value):
        return True
    return all(
        isinstance(item, list) and item and all(type(t) is int for t in item) for item in value
    )


def _check_count(key: str, value: Any) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_OUTPUT_TOKENS):
        raise InvalidRequest(
            f"{key} must be a whole number >= 1 and <= {MAX_OUTPUT_TOKENS:,}, not {_shown(value)}"
        )


def _check_budget(params: Mapping[str, Any]) -> None:
    """The output budget llamux reserves, ``n`` times the output limit, must be countable."""
    choices = params.get("n") or 1
    for key in ("max_completion_tokens", "max_tokens"):
        budget = params.get(key)
        if budget and budget * choices > MAX_REQUEST_OUTPUT:
            raise InvalidRequest(
                f"n x {key} is {budget * choices:,} output tokens, more than the "
                f"{MAX_REQUEST_OUTPUT:,} llamux can count for one request; lower n or {key}"
            )


def _check_json(value: Any, where: str) -> None:
    """Raise ``InvalidRequest`` unless ``value`` encodes as strict JSON: finite numbers,
    integers in 64 bits, text without lone surrogates, nesting at most ``MAX_DEPTH`` deep.
    Iterative, so no input can exhaust the stack. Values of other types are left to the
    encoder (the SDK accepts some of its own objects). Every request is walked once
    quickly; only a bad one is walked again to name where it is bad."""
    if not _encodable([value]):
        _explain(value, where)


def _encodable(values: list[Any]) -> bool:
    """Whether every one of ``values`` passes :func:`_check_json` (the fast walk, one nesting
    level at a time: no paths, no per-item bookkeeping)."""
    level, depth = values, 0
    while level:
        deeper: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _SURROGATE.search(item):
                    return False
            elif kind is dict:
                deeper.extend(item.values())
            elif kind is list or kind is tuple:
                deeper.extend(item)
            elif kind is float:
                if item != item or item in (_INF, -_INF):
                    return False
            elif kind is int:
                if not -INT64 <= item < INT64:
                    return False
            elif isinstance(item, Mapping):
                deeper.extend(item.values())
            elif isinstance(item, list | tuple):
                deeper.extend(item)
            else:
                continue
            if depth >= MAX_DEPTH and kind is not str:
                return False
        level, depth = deeper, depth + 1
    return True


_SURROGATE = re.compile("[\ud800-\udfff]")


def _explain(value: Any, where: str) -> None:
    """Raise the ``InvalidRequest`` that says where ``value`` cannot be encoded."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _check_text(item, path)
        elif kind is float:
            if item != item or item in (_INF, -_INF):
                raise InvalidRequest(
                    f"{path} is {item!r}, which JSON cannot encode; pass a finite number"
                )
        elif kind is int:
            if not -INT64 <= item < INT64:
                raise InvalidRequest(
                    f"{path} is an integer of {item.bit_length()} bits; integers must be "
                    f"from -2^63 to 2^63 - 1"
                )
        elif isinstance(item, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                raise InvalidRequest(
                    f"{path} nests lists and objects more than {MAX_DEPTH} levels deep; "
                    "flatten the request"
                )
            if isinstance(item, Mapping):
                stack.extend((v, f"{path}.{k}", depth + 1) for k, v in item.items())
            else:
                stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


_INF = float("inf")


def _check_text(text: str, path: str) -> None:
    if _SURROGATE.search(text):
        raise InvalidRequest(
            f"{path} holds a lone surrogate character, which is not valid text; "
            "send well-formed Unicode"
        )


def _shown(value: Any) -> str:
    if type(value) is int and value.bit_length() > 128:  # repr() refuses 4,300+ digits
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def capabilities_needed(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> frozenset[str]:
    """What an endpoint must support to take the request: tools, vision, json."""
    needed = set()
    if params.get("tools") or params.get("functions"):
        needed.add("tools")
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") != "text":
        needed.add("json")
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image")
            for part in content
        ):
            needed.add("vision")
    return frozenset(needed)
