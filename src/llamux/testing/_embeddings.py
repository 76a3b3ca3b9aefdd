"""The fake provider's embeddings: ``POST /{name}/v1/embeddings``.

``input`` is a string, a list of strings, a list of token ids or a list of token-id lists
(none empty); each input gets a vector of ``dimensions`` floats (default
:data:`DEFAULT_DIMENSIONS`) that depends only on the input (:func:`fake_embedding`), sent as
a JSON list, or with ``encoding_format: "base64"`` (what the ``openai`` SDK asks for unless
told otherwise) as the base64 of its little-endian float32 bytes. The tokens charged are the
inputs' (:func:`~llamux.testing.count_text_tokens` of each text, one per token id); there is
no output. More inputs than the endpoint's ``max_inputs`` is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._requests import (
    NO_OUTPUT,
    Answer,
    Input,
    Output,
    Reply,
    _BadRequest,
    _Request,
    count_input_tokens,
    metadata_ingress,
    positive_int,
    read_inputs,
    read_model,
)

if TYPE_CHECKING:
    from ._endpoint import FakeEndpoint

DEFAULT_DIMENSIONS = 8
"""The length of a fake embedding when the request names no ``dimensions``."""
MAX_DIMENSIONS = 4096


def _floats(seed: bytes, count: int) -> list[float]:
    """``count`` numbers in [-1, 1) drawn from SHA-256 of ``seed`` and a counter."""
    out: list[float] = []
    block = 0
    while len(out) < count:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        out += [n / 2**31 - 1 for n in struct.unpack(">8I", digest)]
        block += 1
    return out[:count]


def fake_embedding(value: Input, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The fake's vector for one input (a text or a list of token ids): unit length, float32
    values, the same for the same input every time. A shorter one is the longer one's start,
    scaled back to unit length (as OpenAI's ``dimensions`` shortens a vector)."""
    seed = value if isinstance(value, str) else "tokens:" + ",".join(map(str, value))
    raw = _floats(seed.encode("utf-8"), dimensions)
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in raw))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _encoded(vector: Sequence[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


@dataclass(frozen=True)
class EmbeddingsAsk:
    """An embeddings request: its inputs, vector length and encoding."""

    request: _Request
    inputs: Sequence[Input]
    dimensions: int
    encoding: str

    def output(self, endpoint: FakeEndpoint) -> Output:
        return NO_OUTPUT

    def answer(self, reply: Reply) -> Answer:
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encoded(fake_embedding(item, self.dimensions), self.encoding),
            }
            for i, item in enumerate(self.inputs)
        ]
        body: dict[str, Any] = {"object": "list", "data": data, "model": self.request.model}
        if reply.usage:
            tokens = self.request.prompt_tokens
            body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Answer(json.dumps(body))


def parse_embeddings(body: Mapping[str, Any], endpoint: FakeEndpoint) -> EmbeddingsAsk:
    model = read_model(body)
    if "input" not in body:
        raise _BadRequest("you must provide an input parameter", "input")
    inputs = read_inputs(body["input"], "input")
    if any(item == "" for item in inputs):
        raise _BadRequest("'input' cannot contain an empty string", "input")
    most = endpoint.max_inputs
    if most is not None and len(inputs) > most:
        message = f"Too many inputs: at most {most} inputs per request, got {len(inputs)}."
        raise _BadRequest(message, "input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise _BadRequest("encoding_format must be 'float' or 'base64'", "encoding_format")
    dimensions = positive_int(body, "dimensions") or DEFAULT_DIMENSIONS
    if dimensions > MAX_DIMENSIONS:
        raise _BadRequest(f"dimensions must be at most {MAX_DIMENSIONS}", "dimensions")
    tokens = count_input_tokens(inputs)
    request = _Request(
        model, tokens, None, False, False, metadata_ingress(body), "embeddings", len(inputs)
    )
    return EmbeddingsAsk(request, inputs, dimensions, str(encoding))
