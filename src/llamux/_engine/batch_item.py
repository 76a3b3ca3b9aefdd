"""One request of a batch: its kind and its OpenAI request body (:class:`BatchItem`), made
from a value or a line of the OpenAI Batch API's input (``{"url": ..., "body": ...}``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import InvalidRequest
from .._policy.kinds import KIND

URLS: Mapping[str, str] = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/v1/completions": "completions",
}
"""The OpenAI Batch API's ``url`` of each kind of request."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """A request of any kind: ``kind`` (chat, embeddings, responses, completions) and
    ``body``, the request as the OpenAI API takes it (``messages``, ``input`` or
    ``prompt``, ``model``, and every other parameter). ``model`` selects endpoints as in
    ``Router.completion`` (absent or ``auto``: all that serve the kind)."""

    kind: str
    body: Mapping[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in KIND:
            raise InvalidRequest(
                f"unknown kind of request {self.kind!r}; use one of {', '.join(KIND)}"
            )
        if not isinstance(self.body, Mapping):
            raise InvalidRequest(f"a request body must be a JSON object, not {_type(self.body)}")
        field = KIND[self.kind].field
        if field not in self.body:
            raise InvalidRequest(f"a {self.kind} request needs {field!r} in its body; add it")
        if self.body.get("stream"):
            raise InvalidRequest("a batch request cannot stream; remove 'stream' from its body")

    @property
    def input(self) -> Any:
        """What the request carries: a chat's messages, an ``input``, a prompt."""
        return self.body[KIND[self.kind].field]

    @property
    def params(self) -> dict[str, Any]:
        """Every other field of the body (``model`` included)."""
        field = KIND[self.kind].field
        return {k: v for k, v in self.body.items() if k != field}

    @property
    def model(self) -> Any:
        return self.body.get("model")


def batch_item(value: BatchItem | Mapping[str, Any]) -> BatchItem:
    """``value`` as a :class:`BatchItem`: itself, or an OpenAI Batch line (a mapping with
    ``body`` and ``url``, the url one of ``URLS``; without ``url``: chat). Raises
    ``InvalidRequest`` saying what is wrong."""
    if isinstance(value, BatchItem):
        return value
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            f"a batch item is a BatchItem or a mapping with 'url' and 'body', not {_type(value)}"
        )
    if "body" not in value:
        raise InvalidRequest("a batch line needs a 'body' (the request); add it")
    url = value.get("url")
    if url is None:
        return BatchItem("chat", value["body"])
    kind = URLS.get(url) if isinstance(url, str) else None
    if kind is None:
        raise InvalidRequest(f"unknown url {url!r}; use one of {', '.join(URLS)}")
    return BatchItem(kind, value["body"])


def _type(value: Any) -> str:
    return type(value).__name__
