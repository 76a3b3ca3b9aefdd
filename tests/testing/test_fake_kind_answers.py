"""The fake provider's embeddings, Responses API and text completions: their answers, as the
openai SDK parses them and as the SDK's own models validate them strictly."""

from __future__ import annotations

import base64
import http.client
import json
import math
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pydantic
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.responses import Response, ResponseStreamEvent

from llamux.testing import (
    DEFAULT_DIMENSIONS,
    FakeClock,
    FakeEndpoint,
    FakeProvider,
    FakeStats,
    count_input_tokens,
    count_text_tokens,
    fake_embedding,
)

REPLY = "Hello from the fake provider."  # 29 bytes -> 8 tokens, 5 words
EVENTS = ResponseStreamEvent  # a union: validated through a TypeAdapter
STREAMED = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 5,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.fixture
def fclock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def fake(fclock: FakeClock) -> Iterator[FakeProvider]:
    endpoints = [
        FakeEndpoint("a", model="m"),
        FakeEndpoint("q", usage=False),
        FakeEndpoint("n", max_inputs=2),
    ]
    with FakeProvider(endpoints, clock=fclock.now) as fp:
        yield fp


@pytest.fixture
def client(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url("a"), api_key="k", max_retries=0) as c:
        yield c


def post(fp: FakeProvider, path: str, body: dict[str, Any]) -> tuple[int, str]:
    """POST ``body`` to ``path`` without the SDK: the status and the text of the answer."""
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(fp.url).port, timeout=5)
    try:
        headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def events_of(text: str) -> list[tuple[str | None, str]]:
    """The (event, data) of each server-sent event of a stream's text."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) <= {"event", "data"}
        out.append((fields.get("event"), fields["data"]))
    return out


# -- embeddings ----------------------------------------------------------------------------------


def test_fake_embedding_is_unit_float32_deterministic_and_shortens_as_a_prefix() -> None:
    one = fake_embedding("hello")
    assert len(one) == DEFAULT_DIMENSIONS == 8
    assert one == fake_embedding("hello") != fake_embedding("hellp")
    assert math.isclose(math.fsum(x * x for x in one), 1.0, rel_tol=1e-6)
    assert list(struct.unpack("<8f", struct.pack("<8f", *one))) == one  # float32 values
    long, short = fake_embedding("hello", 64), fake_embedding("hello", 4)
    norm = math.sqrt(math.fsum(x * x for x in long[:4]))
    assert short == pytest.approx([x / norm for x in long[:4]], rel=1e-6)
    assert fake_embedding([1, 2, 3]) != fake_embedding("1,2,3")  # token ids are not a text


def test_embeddings_as_the_sdk_asks_by_default_base64_decoded(
    client: openai.OpenAI, fake: FakeProvider
) -> None:
    result = client.embeddings.create(model="m", input=["hello", "world!"])
    assert isinstance(result, CreateEmbeddingResponse)
    assert result.object == "list" and result.model == "m"
    assert [(d.object, d.index) for d in result.data] == [("embedding", 0), ("embedding", 1)]
    assert [d.embedding for d in result.data] == [fake_embedding("hello"), fake_embedding("world!")]
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (2 + 2, 4)
    assert fake.stats("a") == FakeStats(1, 0, 0, 4, 0, 4)
    assert fake.stats("a", "embeddings") == fake.stats("a")
    assert fake.stats("a", "chat") == FakeStats()


def test_embeddings_float_and_base64_carry_the_same_vectors(
    client: openai.OpenAI, fake: FakeProvider
) -> None:
    floats = client.embeddings.create(model="m", input="hi", encoding_format="float")
    assert floats.data[0].embedding == fake_embedding("hi")
    body = {"model": "m", "input": "hi", "dimensions": 3, "encoding_format": "base64"}
    status, text = post(fake, "/a/v1/embeddings", body)
    encoded = json.loads(text)["data"][0]["embedding"]
    assert status == 200 and isinstance(encoded, str)
    _, text = post(fake, "/a/v1/embeddings", {"model": "m", "input": "hi"})
    assert json.loads(text)["data"][0]["embedding"] == fake_embedding("hi")  # the API's default
    assert list(struct.unpack("<3f", base64.b64decode(encoded))) == fake_embedding("hi", 3)
    sized = client.embeddings.create(model="m", input="hi", dimensions=5)
    assert sized.data[0].embedding == fake_embedding("hi", 5)


@pytest.mark.parametrize(
    ("value", "inputs"),
    [
        ("héllo", ["héllo"]),
        (["a", "bcdef"], ["a", "bcdef"]),
        ([5, 6, 7], [[5, 6, 7]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_every_form_of_input_and_its_tokens(fake: FakeProvider, value: Any, inputs: Any) -> None:
    body = {"model": "m", "input": value, "encoding_format": "float"}
    status, text = post(fake, "/a/v1/embeddings", body)
    assert status == 200
    answer = CreateEmbeddingResponse.model_validate_json(text)  # strictly the SDK's shape
    assert [d.embedding for d in answer.data] == [fake_embedding(i) for i in inputs]
    tokens = count_input_tokens(inputs)
    assert tokens == sum(count_text_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
    assert answer.usage.model_dump() == {"prompt_tokens": tokens, "total_tokens": tokens}
    assert fake.trace("a")[-1].tokens == tokens


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["a", 1]}, "input"),
        ({"model": "m", "input": [[1], []]}, "input"),
        ({"model": "m", "input": [True]}, "input"),
        ({"model": "m", "input": {"text": "a"}}, "input"),
        ({"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
        ({"model": "m", "input": "a", "dimensions": 100_000}, "dimensions"),
        ({"input": "a"}, "model"),
    ],
)
def test_embeddings_bad_requests(fake: FakeProvider, body: dict[str, Any], param: str) -> None:
    status, text = post(fake, "/a/v1/embeddings", body)
    assert status == 400
    assert json.loads(text)["error"]["param"] == param
    assert fake.stats("a") == FakeStats() and fake.trace("a") == ()


def test_more_inputs_than_max_inputs_is_a_400_that_charges_nothing(fake: FakeProvider) -> None:
    with openai.OpenAI(base_url=fake.base_url("n"), api_key="k", max_retries=0) as c:
        assert len(c.embeddings.create(model="m", input=["a", "b"]).data) == 2
        with pytest.raises(openai.BadRequestError) as info:
            c.embeddings.create(model="m", input=["a", "b", "c"])
        assert info.value.body == {
            "message": "Too many inputs: at most 2 inputs per request, got 3.",
            "type": "invalid_request_error",
            "param": "input",
            "code": None,
        }
        c.embeddings.create(model="m", input=[[1, 2, 3, 4, 5]])  # one input of 5 tokens
        c.completions.create(model="m", prompt=["a", "b", "c"])  # embeddings only
    assert fake.stats("n").served == 3 and len(fake.trace("n")) == 3


def test_embeddings_without_usage(fake: FakeProvider) -> None:
    status, text = post(fake, "/q/v1/embeddings", {"model": "m", "input": "hello"})
    assert status == 200 and "usage" not in json.loads(text)
    assert fake.stats("q") == FakeStats(1, 0, 0, 2, 0, 2)  # still charged and counted


# -- the Responses API ---------------------------------------------------------------------------


def test_a_response_as_the_sdk_parses_it(client: openai.OpenAI, fake: FakeProvider) -> None:
    result = client.responses.create(model="m", input="hi", instructions="Be terse.")
    assert isinstance(result, Response)
    assert result.id.startswith("resp_") and result.object == "response"
    assert (result.created_at, result.status, result.model) == (1000, "completed", "m")
    assert result.output_text == REPLY
    [message] = result.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.id.startswith("msg_")
    assert result.instructions == "Be terse." and result.incomplete_details is None
    usage = result.usage
    assert usage is not None
    prompt = count_text_tokens("Be terse.") + 4 + 1  # instructions, then one message "hi"
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (prompt, 8, prompt + 8)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert fake.stats("a", "responses") == FakeStats(1, 0, 0, prompt, 8, prompt + 8)


def test_a_response_is_strictly_the_sdks_shape(fake: FakeProvider) -> None:
    items = [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]
    body = {"model": "m", "input": items, "metadata": {"k": "v"}, "temperature": 0.5}
    status, text = post(fake, "/a/v1/responses", body)
    assert status == 200
    answer = Response.model_validate_json(text)
    assert answer.metadata == {"k": "v"} and answer.temperature == 0.5
    assert answer.usage is not None
    assert answer.usage.input_tokens == (4 + 3) + (4 + 2) + (4 + 1)


def test_max_output_tokens_caps_the_response(client: openai.OpenAI) -> None:
    result = client.responses.create(model="m", input="hi", max_output_tokens=4)
    assert result.status == "incomplete"
    assert result.incomplete_details is not None
    assert result.incomplete_details.reason == "max_output_tokens"
    assert result.output_text == REPLY[: len(REPLY) * 4 // 8]
    assert result.usage is not None and result.usage.output_tokens == 4
    assert result.max_output_tokens == 4


def test_a_streamed_response_has_the_real_events_in_order(fake: FakeProvider) -> None:
    status, text = post(fake, "/a/v1/responses", {"model": "m", "input": "hi", "stream": True})
    assert status == 200
    events = events_of(text)
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(EVENTS)
    parsed = [adapter.validate_json(data) for _, data in events]  # strictly the SDK's shapes
    assert [name for name, _ in events] == [e.type for e in parsed] == STREAMED
    assert [e.sequence_number for e in parsed] == list(range(len(STREAMED)))
    assert "".join(e.delta for e in parsed if e.type == "response.output_text.delta") == REPLY
    created, final = parsed[0].response, parsed[-1].response
    assert (created.status, created.output, created.usage) == ("in_progress", [], None)
    assert final.status == "completed" and final.output_text == REPLY
    assert final.usage.total_tokens == 5 + 8
    assert {e.item_id for e in parsed[3:-2] if hasattr(e, "item_id")} == {final.output[0].id}


def test_the_sdks_stream_helper_assembles_the_response(client: openai.OpenAI) -> None:
    with client.responses.stream(model="m", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == STREAMED
    assert final.output_text == REPLY and final.usage is not None
    assert final.usage.output_tokens == 8


def test_a_capped_stream_ends_incomplete(client: openai.OpenAI) -> None:
    stream = client.responses.create(model="m", input="hi", stream=True, max_output_tokens=2)
    events = list(stream)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_responses_without_usage(fake: FakeProvider) -> None:
    _, text = post(fake, "/q/v1/responses", {"model": "m", "input": "hi"})
    assert Response.model_validate_json(text).usage is None
    _, text = post(fake, "/q/v1/responses", {"model": "m", "input": "hi", "stream": True})
    assert json.loads(events_of(text)[-1][1])["response"]["usage"] is None
    assert fake.stats("q") == FakeStats(2, 0, 0, 10, 16, 26)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["hi"]}, "input"),
        ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input"),
        ({"model": "m", "input": "hi", "instructions": 3}, "instructions"),
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_responses_bad_requests(fake: FakeProvider, body: dict[str, Any], param: str) -> None:
    status, text = post(fake, "/a/v1/responses", body)
    assert status == 400 and json.loads(text)["error"]["param"] == param


# -- legacy text completions ---------------------------------------------------------------------


def test_a_text_completion_as_the_sdk_parses_it(client: openai.OpenAI, fake: FakeProvider) -> None:
    result = client.completions.create(model="m", prompt="Say hello")
    assert isinstance(result, Completion)
    assert result.id.startswith("cmpl-") and result.object == "text_completion"
    assert (result.created, result.model) == (1000, "m")
    [choice] = result.choices
    assert (choice.text, choice.index, choice.finish_reason, choice.logprobs) == (
        REPLY,
        0,
        "stop",
        None,
    )
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (3, 8)
    assert fake.stats("a", "completions") == FakeStats(1, 0, 0, 3, 8, 11)


def test_one_choice_per_prompt_and_the_cap_per_choice(fake: FakeProvider) -> None:
    body = {"model": "m", "prompt": [[7], [1, 2, 3]], "max_tokens": 3}
    status, text = post(fake, "/a/v1/completions", body)
    answer = Completion.model_validate_json(text)
    assert status == 200
    short = REPLY[: len(REPLY) * 3 // 8]
    assert [(c.index, c.text, c.finish_reason) for c in answer.choices] == [
        (0, short, "length"),
        (1, short, "length"),
    ]
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (1 + 3, 2 * 3)
    assert fake.trace("a")[-1].tokens == 4 + 6


def test_a_streamed_text_completion_with_usage(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="m", prompt="hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(isinstance(c, Completion) and c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (1, 8)
    assert all(c.usage is None for c in chunks[:-1])


def test_a_streamed_text_completion_is_strictly_the_sdks_shape(fake: FakeProvider) -> None:
    body = {"model": "m", "prompt": ["a", "b"], "stream": True}
    _, text = post(fake, "/a/v1/completions", body)
    events = events_of(text)
    assert events[-1] == (None, "[DONE]")
    payloads = [json.loads(data) for _, data in events[:-1]]
    for payload in payloads:  # a real stream's finish_reason is null until the end, which
        for choice in payload["choices"]:  # the SDK's model, shared with JSON, does not allow
            choice["finish_reason"] = choice["finish_reason"] or "stop"
    chunks = [Completion.model_validate(payload) for payload in payloads]
    assert [json.loads(data)["choices"][0]["finish_reason"] for _, data in events[:-1]] == [
        *[None] * 5,
        "stop",
    ] * 2
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    for index in (0, 1):
        mine = [c.choices[0] for c in chunks if c.choices[0].index == index]
        assert "".join(c.text for c in mine) == REPLY


def test_text_completions_without_usage(fake: FakeProvider) -> None:
    body = {"model": "m", "prompt": "hi", "stream": True, "stream_options": {"include_usage": True}}
    _, text = post(fake, "/q/v1/completions", body)
    assert all("usage" not in json.loads(data) for _, data in events_of(text)[:-1])
    _, text = post(fake, "/q/v1/completions", {"model": "m", "prompt": "hi"})
    assert "usage" not in json.loads(text)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 3}, "prompt"),
        ({"model": "m", "prompt": "hi", "max_tokens": -1}, "max_tokens"),
    ],
)
def test_text_completion_bad_requests(fake: FakeProvider, body: dict[str, Any], param: str) -> None:
    status, text = post(fake, "/a/v1/completions", body)
    assert status == 400 and json.loads(text)["error"]["param"] == param
