"""The kinds of request the fake provider serves, each a route under ``/{name}/v1``, a parser
of its JSON body into an :class:`~llamux.testing._requests.Ask` and its answers.

- ``chat``: ``POST chat/completions``, ``messages``; ``max_tokens`` / ``max_completion_tokens``
  (the smaller) cap the reply; ``stream`` with ``stream_options.include_usage``;
- ``embeddings``: ``POST embeddings`` (:mod:`llamux.testing._embeddings`);
- ``responses``: ``POST responses`` (:mod:`llamux.testing._responses`);
- ``completions``: ``POST completions``, legacy text completions: ``prompt`` a string, a list
  of strings, a list of token ids or a list of token-id lists, one choice per prompt (each
  the endpoint's reply, capped by ``max_tokens``, which is charged up front once per prompt);
  tokens as for embeddings; ``stream`` with ``stream_options.include_usage`` as chat.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from .._config.endpoint import KINDS
from ._answers import (
    chat_body,
    sse_events,
    text_completion_body,
    text_completion_events,
    usage_of,
)
from ._dialects import error_body
from ._embeddings import parse_embeddings
from ._requests import (
    Answer,
    Ask,
    Output,
    Reply,
    _BadRequest,
    _Request,
    count_input_tokens,
    count_prompt_tokens,
    frame,
    metadata_ingress,
    output_of,
    positive_int,
    read_inputs,
    read_model,
    wants_usage,
)
from ._responses import parse_responses

if TYPE_CHECKING:
    from ._endpoint import FakeEndpoint


Usage = dict[str, int] | None
Body = Callable[[dict[str, Any], str, str, Usage], str]
"""A JSON body from the base fields (id, created, model), text, finish reason and usage."""
Events = Callable[[dict[str, Any], str, str, Usage], list[str]]
"""The ``data:`` payloads of a stream, from the same."""


@dataclass(frozen=True)
class _Choices:
    """A chat or text-completion request: its answers are lists of choices. ``prefix`` starts
    its ids; ``cut_at``: the payloads a cut stream sends, up to its first content."""

    request: _Request
    prefix: str
    body: Body
    events: Events
    cut_at: int

    def output(self, endpoint: FakeEndpoint) -> Output:
        return output_of(endpoint, self.request.cap)

    def answer(self, reply: Reply) -> Answer:
        request, out = self.request, reply.output
        base = {"id": f"{self.prefix}-{uuid.uuid4().hex}", "created": reply.created}
        base["model"] = request.model
        usage = usage_of(request.prompt_tokens, out.tokens * request.items)
        told = usage if reply.usage else None
        if not request.stream:
            return Answer(self.body(base, out.text, out.finish, told))
        streamed = told if request.include_usage else None
        events = self.events(base, out.text, out.finish, streamed)
        return Answer(frames=[frame(e) for e in events], cut_at=self.cut_at)


def _cap(body: Mapping[str, Any], *keys: str) -> int | None:
    given = [c for c in (positive_int(body, key) for key in keys) if c is not None]
    return min(given) if given else None


def _basics(body: Mapping[str, Any]) -> tuple[bool, bool, float | None]:
    """``stream``, ``stream_options.include_usage`` and the hold the request names."""
    return body.get("stream") is True, wants_usage(body), metadata_ingress(body)


def parse_chat(body: Mapping[str, Any], endpoint: FakeEndpoint | None = None) -> _Choices:
    model, messages = read_model(body), body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("messages must be a non-empty array", "messages")
    cap = _cap(body, "max_tokens", "max_completion_tokens")
    request = _Request(model, count_prompt_tokens(messages), cap, *_basics(body))
    return _Choices(request, "chatcmpl", chat_body, sse_events, 2)


def parse_completions(body: Mapping[str, Any], endpoint: FakeEndpoint | None = None) -> _Choices:
    model = read_model(body)
    if "prompt" not in body:
        raise _BadRequest("you must provide a prompt parameter", "prompt")
    prompts = read_inputs(body["prompt"], "prompt")
    tokens, cap, n = count_input_tokens(prompts), _cap(body, "max_tokens"), len(prompts)
    request = _Request(model, tokens, cap, *_basics(body), "completions", n)
    body_of, events_of = (
        partial(text_completion_body, prompts=n),
        partial(text_completion_events, prompts=n),
    )
    return _Choices(request, "cmpl", body_of, events_of, 1)


@dataclass(frozen=True)
class Kind:
    """One kind of request: its name (in ``KINDS``), its route under ``/v1``, what messages
    call it, and its parser (which may refuse with a 400 for the endpoint at hand)."""

    name: str
    path: str
    what: str
    parse: Callable[[Mapping[str, Any], FakeEndpoint], Ask]

    def unsupported(self, model: str) -> bytes:
        """The 404 body of a request of this kind to an endpoint that does not serve it."""
        message = (
            f"The model `{model}` does not support {self.what}: it is not supported "
            f"in the v1/{self.path} endpoint."
        )
        return error_body(message, "invalid_request_error", None, "model")


ROUTES: Mapping[str, Kind] = {
    kind.path: kind
    for kind in (
        Kind("chat", "chat/completions", "chat completions", parse_chat),
        Kind("embeddings", "embeddings", "embeddings", parse_embeddings),
        Kind("responses", "responses", "the Responses API", parse_responses),
        Kind("completions", "completions", "text completions", parse_completions),
    )
}
"""Each kind by its route under ``/{name}/v1``."""
assert sorted(kind.name for kind in ROUTES.values()) == sorted(KINDS)
