"""The bodies of a provider's successful answers, as the fake provider and the mock send them:
a ``chat.completion`` or ``text_completion`` and the ``data:`` payloads of a streamed one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._requests import pieces


def usage_of(prompt: int, completion: int) -> dict[str, int]:
    """Chat's (and text completions') usage object."""
    total = prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def chat_body(base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None) -> str:
    """A chat.completion answer; without a ``usage`` member when ``usage`` is None."""
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    extra = {"usage": usage} if usage is not None else {}
    return json.dumps({**base, "object": "chat.completion", "choices": [choice], **extra})


def _chunks(
    base: dict[str, Any], kind: str, choices: Sequence[dict[str, Any]], usage: dict[str, int] | None
) -> list[str]:
    """One chunk per choice (each with ``usage: null`` when usage follows), the usage chunk
    (no choices), then ``[DONE]``."""
    extra = {"usage": None} if usage is not None else {}
    events = [json.dumps({**base, "object": kind, "choices": [c], **extra}) for c in choices]
    if usage is not None:
        events.append(json.dumps({**base, "object": kind, "choices": [], "usage": usage}))
    return [*events, "[DONE]"]


def sse_events(
    base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None
) -> list[str]:
    """The ``data:`` payloads of a streamed answer: role, a few pieces, finish, usage, [DONE]."""

    def choice(delta: dict[str, str], reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}

    choices = [choice({"role": "assistant", "content": ""})]
    choices += [choice({"content": piece}) for piece in pieces(text)]
    choices.append(choice({}, finish))
    return _chunks(base, "chat.completion.chunk", choices, usage)


def _text_choice(index: int, text: str, reason: str | None) -> dict[str, Any]:
    return {"text": text, "index": index, "logprobs": None, "finish_reason": reason}


def text_completion_body(
    base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None, prompts: int = 1
) -> str:
    """A text_completion answer: one choice of ``text`` per prompt."""
    choices = [_text_choice(i, text, finish) for i in range(prompts)]
    extra = {"usage": usage} if usage is not None else {}
    return json.dumps({**base, "object": "text_completion", "choices": choices, **extra})


def text_completion_events(
    base: dict[str, Any], text: str, finish: str, usage: dict[str, int] | None, prompts: int = 1
) -> list[str]:
    """The ``data:`` payloads of a streamed text completion: per prompt its pieces, then its
    finish (empty text); the usage chunk; [DONE]."""
    choices = []
    for i in range(prompts):
        choices += [_text_choice(i, piece, None) for piece in pieces(text)]
        choices.append(_text_choice(i, "", finish))
    return _chunks(base, "text_completion", choices, usage)
