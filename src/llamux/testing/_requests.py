"""What the fake provider reads from a request of any kind, and the shapes every kind shares.

A request's JSON body is parsed by its kind (:mod:`llamux.testing._kinds`) into an
:class:`Ask`: the :class:`_Request` the limits see (model, prompt tokens, output budget, ...)
and a way to build its answer once admitted. Token counting is the fake's own and
deterministic (:func:`count_text_tokens`, :func:`count_prompt_tokens`, :func:`count_input_tokens`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._endpoint import FakeEndpoint


class _BadRequest(ValueError):
    """A request the fake refuses with a 400 (``param``: the field at fault)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def count_text_tokens(text: str) -> int:
    """The fake's token count of a text: one token per started group of 4 UTF-8 bytes."""
    return math.ceil(len(text.encode("utf-8")) / 4)


TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
"""The content parts whose text counts: chat's ``text``, the Responses API's two."""


def content_text(content: object, where: str) -> str:
    """The text of a message's content: a string, a list of parts (text parts only) or null."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") in TEXT_PARTS]
        return "".join(str(p.get("text") or "") for p in parts)
    raise _BadRequest("message content must be a string, a list of parts or null", where)


def _message_text(message: object) -> str:
    if not isinstance(message, dict):
        raise _BadRequest("each message must be an object", "messages")
    return content_text(message.get("content"), "messages")


def count_prompt_tokens(messages: Sequence[Any]) -> int:
    """Sum over messages of ``4 + count_text_tokens(text)`` (text parts only for lists)."""
    return sum(4 + count_text_tokens(_message_text(m)) for m in messages)


Input = str | list[int]
"""One input of an embeddings request or one prompt of a text completion."""


def _token_ids(value: object) -> list[int] | None:
    """``value`` as a non-empty list of token ids, or None if it is not one."""
    if not isinstance(value, list) or not value:
        return None
    ids = [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    return ids if len(ids) == len(value) else None


def read_inputs(value: object, param: str) -> list[Input]:
    """The inputs of ``input`` / ``prompt``: a string, a list of strings, a list of token ids
    or a list of token-id lists (each list non-empty)."""
    if isinstance(value, str):
        return [value]
    ids = _token_ids(value)
    if ids is not None:
        return [ids]
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value)
        lists = [_token_ids(v) for v in value]
        if all(ids is not None for ids in lists):
            return [ids for ids in lists if ids is not None]
    raise _BadRequest(
        f"'{param}' must be a string, an array of strings, an array of token ids "
        "or an array of token-id arrays, none of them empty",
        param,
    )


def count_input_tokens(inputs: Sequence[Input]) -> int:
    """Tokens of embeddings inputs or completion prompts: a text's own count, one per id."""
    return sum(count_text_tokens(i) if isinstance(i, str) else len(i) for i in inputs)


@dataclass(frozen=True)
class _Request:
    """A request as the fake's limits see it, whatever its kind.

    ``cap`` is the output budget of each of its ``items`` (chat and responses: one; text
    completions: one per prompt), charged up front; ``include_usage`` asks for usage in a
    stream. ``ingress``: the seconds of hold it names itself (``metadata.fake_ingress_ms``).
    """

    model: str
    prompt_tokens: int
    cap: int | None
    stream: bool
    include_usage: bool
    ingress: float | None = None  # seconds, from metadata.fake_ingress_ms
    kind: str = "chat"
    items: int = 1

    def charge(self, completion: int) -> int:
        """The tokens charged up front: the prompt and the output budget (``completion``,
        the output it will produce, when no cap is given)."""
        budget = completion if self.cap is None else self.cap * self.items
        return self.prompt_tokens + budget


def load_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _BadRequest("We could not parse the JSON body of your request.")
    return body


def read_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("you must provide a model parameter", "model")
    return model


def wants_usage(body: Mapping[str, Any]) -> bool:
    """``stream_options.include_usage`` is true."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def positive_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _BadRequest(f"{key} must be a positive integer", key)
    return value


def milliseconds(value: object, where: str) -> float | None:
    """Seconds from a number of milliseconds given as text or a number (None: not given)."""
    if value is None:
        return None
    try:
        ms = float(value) if isinstance(value, str | int | float) else math.nan
    except ValueError:
        ms = math.nan
    if isinstance(value, bool) or not (math.isfinite(ms) and ms >= 0):
        raise _BadRequest(f"{where} must be a number of milliseconds >= 0, not {value!r}")
    return ms / 1000


def metadata_ingress(body: Mapping[str, Any]) -> float | None:
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return None
    return milliseconds(metadata.get("fake_ingress_ms"), "metadata.fake_ingress_ms")


@dataclass(frozen=True)
class Output:
    """What an endpoint produces for each item of a request: text, tokens, finish reason."""

    text: str
    tokens: int
    finish: str  # "stop", or "length" when the cap cut it

    @property
    def capped(self) -> bool:
        return self.finish == "length"


NO_OUTPUT = Output("", 0, "stop")


def output_of(endpoint: FakeEndpoint, cap: int | None) -> Output:
    """The endpoint's reply under an output cap: cut to the cap's share of its text."""
    text = endpoint.reply
    full = endpoint.completion_tokens
    full = count_text_tokens(text) if full is None else full
    if cap is not None and cap < full:
        return Output(text[: len(text) * cap // full], cap, "length")
    return Output(text, full, "stop")


@dataclass(frozen=True)
class Reply:
    """What an admitted request answers with: counted at ``created`` (the fake's clock,
    whole seconds), its output per item, and whether the endpoint tells usage."""

    created: int
    output: Output
    usage: bool


@dataclass(frozen=True)
class Answer:
    """A JSON ``body``, or the SSE ``frames`` of a stream (``cut_at``: the frames a stream
    cut mid-way sends, up to its first content)."""

    body: str = ""
    frames: Sequence[str] | None = None
    cut_at: int = 0


def frame(data: str, event: str | None = None) -> str:
    """One server-sent event: ``data: ...`` (after ``event: NAME`` when named), a blank line."""
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


def pieces(text: str) -> list[str]:
    """A reply's text in the pieces a stream sends: word by word, spaces kept."""
    words = text.split(" ")
    return [p for p in [w + " " for w in words[:-1]] + words[-1:] if p]


class Ask(Protocol):
    """A parsed request of some kind: what the limits see, and how it answers."""

    @property
    def request(self) -> _Request: ...

    def output(self, endpoint: FakeEndpoint) -> Output:
        """What it produces per item (before admission: the tokens it will charge)."""
        ...

    def answer(self, reply: Reply) -> Answer:
        """Its answer once admitted."""
        ...
