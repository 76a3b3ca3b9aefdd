"""Token arithmetic: a conservative estimate before the call, the real usage after it.

The estimate is what llamux reserves: the prompt (UTF-8 bytes / 4, CJK text one token per
character, plus a per-message overhead) and the output budget (``max_completion_tokens`` or
``max_tokens`` when given, since providers charge it up front, else the endpoint's default).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

PER_MESSAGE = 4
"""Tokens of framing around each message (role, separators)."""
PRIMING = 3
"""Tokens that start the assistant's reply."""
PER_IMAGE = 1105
"""An image part: OpenAI's cost of a 1024x1024 high-detail image."""


@functools.cache
def _cjk() -> re.Pattern[str]:
    """CJK characters (compiled on first use: 2 ms that ``import llamux`` need not pay)."""
    return re.compile(
        "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ffff]"
    )


def text_tokens(text: str) -> int:
    """Tokens of ``text``: bytes / 4 rounded up, but one per CJK character."""
    if text.isascii():
        return -(-len(text) // 4)
    cjk_pattern = _cjk()
    cjk = len(cjk_pattern.findall(text))
    rest = len(cjk_pattern.sub("", text).encode("utf-8")) if cjk else len(text.encode("utf-8"))
    return cjk + math.ceil(rest / 4)


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
        total = 0
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("text", "input_text", "output_text"):
                total += text_tokens(str(part.get("text", "")))
            elif kind in ("image_url", "input_image", "image"):
                total += PER_IMAGE
            else:
                total += _json_tokens(part)
        return total
    return _json_tokens(content)


def _json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, ensure_ascii=False, default=str))


def prompt_tokens(messages: Iterable[Mapping[str, Any]], params: Mapping[str, Any]) -> int:
    """A conservative count of the prompt: messages, tools and response schema."""
    total = PRIMING
    for message in messages:
        total += PER_MESSAGE + text_tokens(str(message.get("role", "")))
        total += _content_tokens(message.get("content"))
        for key in ("name", "tool_call_id"):
            if message.get(key):
                total += text_tokens(str(message[key]))
        if message.get("tool_calls"):
            total += _json_tokens(message["tool_calls"])
    for key in ("tools", "functions", "response_format"):
        if params.get(key):
            total += _json_tokens(params[key])
    return total


def output_budget(params: Mapping[str, Any], default: int) -> int:
    """The output tokens a provider may charge up front for this request."""
    budget = params.get("max_completion_tokens") or params.get("max_tokens") or default
    choices = params.get("n") or 1
    return int(budget) * int(choices)


def estimate(messages: Iterable[Mapping[str, Any]], params: Mapping[str, Any], default: int) -> int:
    """Tokens to reserve for a request: prompt plus output budget."""
    return prompt_tokens(messages, params) + output_budget(params, default)


def usage_tokens(value: Any) -> int | None:
    """Total tokens reported by a response, a stream's usage chunk, or a usage object/dict."""
    if isinstance(value, int):
        return value
    fields = _usage_fields(value)
    if fields is None:
        return None
    total, prompt, completion = fields
    if total is None and prompt is None and completion is None:
        return None
    return int(total if total is not None else (prompt or 0) + (completion or 0))


def usage_split(value: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens reported by a response or a usage object/dict, or None
    when it does not tell them apart (a bare count, a total alone)."""
    fields = None if isinstance(value, int) else _usage_fields(value)
    if fields is None or (fields[1] is None and fields[2] is None):
        return None
    return int(fields[1] or 0), int(fields[2] or 0)


def _usage_fields(value: Any) -> tuple[Any, Any, Any] | None:
    """(total, prompt, completion) of the usage in ``value`` (a response, a chunk, a usage
    object or dict; the Responses API's input/output names read as prompt/completion), or
    None when it carries no usage."""
    usage = value.get("usage", value) if isinstance(value, Mapping) else value
    inner = _attribute(usage, "usage")
    if inner is not None or _attribute(usage, "choices") is not None:
        usage = inner
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        total, prompt, completion, given, made = (usage.get(k) for k in _USAGE_KEYS)
    elif getattr(type(usage), "__pydantic_fields__", None) is not None:  # the SDK's, read once
        fields = {**(getattr(usage, "__pydantic_extra__", None) or {}), **usage.__dict__}
        total, prompt, completion, given, made = (fields.get(k) for k in _USAGE_KEYS)
    else:
        total, prompt, completion, given, made = (_attribute(usage, k) for k in _USAGE_KEYS)
    prompt = prompt if prompt is not None else given
    completion = completion if completion is not None else made
    return total, prompt, completion


_USAGE_KEYS = (
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
)


def input_tokens(value: Any) -> int:
    """Tokens of an embeddings input or a text-completion prompt: a string, a list of
    strings, a list of token ids or a list of such lists."""
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        total = 0
        for item in value:
            if isinstance(item, str):
                total += text_tokens(item)
            elif isinstance(item, int):
                total += 1
            else:
                total += input_tokens(item)
        return total
    return _json_tokens(value)


def response_input_tokens(value: Any, params: Mapping[str, Any]) -> int:
    """Tokens of a Responses API request: its ``input`` (a string, or items: messages and
    others), its ``instructions`` and its tools."""
    total = PRIMING + text_tokens(str(params.get("instructions") or ""))
    if isinstance(value, str):
        total += PER_MESSAGE + text_tokens(value)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        for item in value:
            if isinstance(item, Mapping) and "content" in item:
                total += PER_MESSAGE + text_tokens(str(item.get("role", "")))
                total += _content_tokens(item.get("content"))
            else:
                total += _json_tokens(item)
    elif value is not None:
        total += _json_tokens(value)
    for key in ("tools", "text"):
        if params.get(key):
            total += _json_tokens(params[key])
    return total


def completion_tokens(usage: Any) -> int | None:
    """The output tokens of a usage object or dict, if it says."""
    value = usage.get("completion_tokens") if isinstance(usage, Mapping) else None
    if value is None and not isinstance(usage, Mapping):
        value = _attribute(usage, "completion_tokens")
    return int(value) if value is not None else None


def _attribute(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, without the exception a pydantic model (the SDK's
    responses) raises inside for a name it lacks: its fields and extras are read directly."""
    if getattr(type(obj), "__pydantic_fields__", None) is not None:
        held = obj.__dict__
        if name in held:
            return held[name]
        extra = getattr(obj, "__pydantic_extra__", None)
        return extra.get(name) if extra else None
    return getattr(obj, name, None)
