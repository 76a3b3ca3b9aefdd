"""The bodies of a provider's successful answers, as the fake provider and the mock send them:
a ``chat.completion`` and the ``data:`` payloads of a streamed one."""

from __future__ import annotations

import json
from typing import Any


def chat_body(base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None) -> str:
    """A chat.completion answer; without a ``usage`` member when ``usage`` is None."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    extra = {"usage": usage} if usage is not None else {}
    return json.dumps({**base, "object": "chat.completion", "choices": [choice], **extra})


def sse_events(
    base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None
) -> list[str]:
    """The ``data:`` payloads of a streamed answer: role, a few pieces, finish, usage, [DONE]."""
    extra = {"usage": None} if usage is not None else {}

    def chunk(delta: dict[str, str], reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}
        return json.dumps({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    words = text.split(" ")
    pieces = [w + " " for w in words[:-1]] + words[-1:]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces if piece]
    events.append(chunk({}, finish))
    if usage is not None:
        last = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
        events.append(json.dumps(last))
    return [*events, "[DONE]"]
