"""The fake provider's Responses API: ``POST /{name}/v1/responses``.

``input`` is a string (one user message) or a list of input items: messages (``role``,
``content`` a string or parts, of which ``input_text`` / ``output_text`` / ``text`` count)
and other items (a ``function_call_output``, ...). Tokens: a message costs
``4 + count_text_tokens(text)`` as in chat, another item 4 plus its ``output`` and
``arguments`` strings, and ``instructions`` their text's tokens. ``max_output_tokens`` caps the
reply (then ``status: "incomplete"``, ``incomplete_details.reason: "max_output_tokens"``)
and is the output budget charged up front.

The answer is a ``response`` object; with ``stream: true``, the events ``response.created``,
``response.in_progress``, ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` (one per word), ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done`` and ``response.completed``
(``response.incomplete`` when capped) carrying the whole response with its usage, each
``event: NAME`` / ``data: {..., "sequence_number": n}``. Without usage (the endpoint's
``usage=False``) the response's ``usage`` is null.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._requests import (
    Answer,
    Output,
    Reply,
    _BadRequest,
    _Request,
    content_text,
    count_text_tokens,
    frame,
    metadata_ingress,
    output_of,
    pieces,
    positive_int,
    read_model,
)

if TYPE_CHECKING:
    from ._endpoint import FakeEndpoint

_ECHOED: Mapping[str, Any] = {
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "store": True,
    "temperature": 1.0,
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "user": None,
}
"""Request fields a response states, with the value it states when the request names none."""

_FIXED: Mapping[str, Any] = {
    "background": False,
    "error": None,
    "reasoning": {"effort": None, "summary": None},
    "service_tier": "default",
    "text": {"format": {"type": "text"}},
    "truncation": "disabled",
}


def _item_tokens(item: object) -> int:
    if not isinstance(item, dict):
        raise _BadRequest("each input item must be an object", "input")
    if "content" in item:
        return 4 + count_text_tokens(content_text(item["content"], "input"))
    strings = [item.get(key) for key in ("output", "arguments")]
    return 4 + sum(count_text_tokens(s) for s in strings if isinstance(s, str))


def _input_tokens(body: Mapping[str, Any]) -> int:
    value, instructions = body.get("input"), body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _BadRequest("instructions must be a string", "instructions")
    tokens = count_text_tokens(instructions or "")
    if isinstance(value, str):
        return tokens + 4 + count_text_tokens(value)
    if isinstance(value, list) and value:
        return tokens + sum(_item_tokens(item) for item in value)
    raise _BadRequest("input must be a string or a non-empty array of input items", "input")


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


@dataclass(frozen=True)
class ResponsesAsk:
    """A Responses API request and the request fields its response states."""

    request: _Request
    echoed: Mapping[str, Any]

    def output(self, endpoint: FakeEndpoint) -> Output:
        return output_of(endpoint, self.request.cap)

    def _response(
        self, rid: str, reply: Reply, status: str, output: list[Any], done: bool
    ) -> dict[str, Any]:
        """The response object at one point of its life (``done``: with output and usage)."""
        prompt, made = self.request.prompt_tokens, reply.output.tokens
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": made,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + made,
        }
        capped = status == "incomplete"
        return {
            "id": rid,
            "object": "response",
            "created_at": reply.created,
            "status": status,
            "completed_at": reply.created if status == "completed" else None,
            "incomplete_details": {"reason": "max_output_tokens"} if capped else None,
            "model": self.request.model,
            "output": output,
            "usage": usage if done and reply.usage else None,
            **_FIXED,
            **self.echoed,
        }

    def answer(self, reply: Reply) -> Answer:
        rid, mid = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
        text, status = reply.output.text, "incomplete" if reply.output.capped else "completed"
        message = {"id": mid, "type": "message", "status": status, "role": "assistant"}
        final = self._response(rid, reply, status, [{**message, "content": [_part(text)]}], True)
        if not self.request.stream:
            return Answer(json.dumps(final))
        begun = self._response(rid, reply, "in_progress", [], False)
        at = {"item_id": mid, "output_index": 0, "content_index": 0}
        events: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": begun}),
            ("response.in_progress", {"response": begun}),
            ("response.output_item.added", {"output_index": 0, "item": {**message, "content": []}}),
            ("response.content_part.added", {**at, "part": _part("")}),
        ]
        events += [
            ("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in pieces(text)
        ]
        events += [
            ("response.output_text.done", {**at, "text": text, "logprobs": []}),
            ("response.content_part.done", {**at, "part": _part(text)}),
            ("response.output_item.done", {"output_index": 0, "item": final["output"][0]}),
            (f"response.{status}", {"response": final}),
        ]
        frames = [
            frame(json.dumps({"type": name, "sequence_number": n, **data}), name)
            for n, (name, data) in enumerate(events)
        ]
        return Answer(frames=frames, cut_at=5)


def parse_responses(body: Mapping[str, Any], endpoint: FakeEndpoint) -> ResponsesAsk:
    model, tokens = read_model(body), _input_tokens(body)
    cap = positive_int(body, "max_output_tokens")
    stream = body.get("stream") is True
    request = _Request(model, tokens, cap, stream, True, metadata_ingress(body), "responses")
    echoed = {k: d if body.get(k) is None else body[k] for k, d in _ECHOED.items()}
    return ResponsesAsk(request, echoed)
