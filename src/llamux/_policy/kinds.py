"""The kinds of request llamux routes: chat completions, embeddings, the Responses API and
legacy text completions. Pure: what each carries its input in, how its tokens are estimated
before the call, where its stream reports usage.

One engine serves them all (``_engine/call.Call``); a kind only says these few things.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .tokens import input_tokens, output_budget, prompt_tokens, response_input_tokens

CHAT_STREAM = "chunk"
"""A stream whose last chunk carries the usage when ``stream_options.include_usage`` asks."""
EVENT_STREAM = "completed"
"""A stream of typed events whose ``response.completed`` carries the usage."""


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of request."""

    name: str
    """chat, embeddings, responses or completions (``_config.endpoint.KINDS``)."""
    field: str
    """The request field holding its input: messages, input or prompt."""
    path: str
    """Its path under an OpenAI-compatible base URL."""
    prompt: Callable[[Any, Mapping[str, Any]], int]
    """The input's tokens, estimated conservatively."""
    output_keys: tuple[str, ...]
    """The parameters that set its output budget, the first one given winning (none: it
    has no output, as embeddings)."""
    streams: str | None
    """How its stream reports usage (``CHAT_STREAM``, ``EVENT_STREAM``), None: no stream."""

    def output(self, params: Mapping[str, Any], default: int) -> int:
        """The output tokens a provider may charge up front (``default``: the endpoint's)."""
        if not self.output_keys:
            return 0
        if self.output_keys == ("max_completion_tokens", "max_tokens"):
            return output_budget(params, default)
        budget = next((params[k] for k in self.output_keys if params.get(k)), None) or default
        return int(budget) * int(params.get("n") or 1)

    def stream_usage(self, chunk: Any) -> Any:
        """The usage a stream item carries, if it carries one."""
        if self.streams == EVENT_STREAM:
            if getattr(chunk, "type", None) != "response.completed":
                return None
            return getattr(getattr(chunk, "response", None), "usage", None)
        return getattr(chunk, "usage", None)


def _chat_prompt(messages: Any, params: Mapping[str, Any]) -> int:
    return prompt_tokens(messages, params)


def _plain_prompt(value: Any, params: Mapping[str, Any]) -> int:
    return input_tokens(value) + input_tokens(params.get("suffix") or "")


CHAT = Kind(
    "chat",
    "messages",
    "chat/completions",
    _chat_prompt,
    ("max_completion_tokens", "max_tokens"),
    CHAT_STREAM,
)
EMBEDDINGS = Kind("embeddings", "input", "embeddings", _plain_prompt, (), None)
RESPONSES = Kind(
    "responses", "input", "responses", response_input_tokens, ("max_output_tokens",), EVENT_STREAM
)
COMPLETIONS = Kind(
    "completions", "prompt", "completions", _plain_prompt, ("max_tokens",), CHAT_STREAM
)

KIND: Mapping[str, Kind] = {kind.name: kind for kind in (CHAT, EMBEDDINGS, RESPONSES, COMPLETIONS)}
"""Every kind by name; its keys are exactly ``_config.endpoint.KINDS`` (a test holds them)."""
