"""MockTransport: the router's real transport with the HTTP connection replaced by a function.

Routing, failover, streams, settling and the proxy's relay run as in production, without a
socket: these tests prove the mock is faithful enough to unit-test the router on."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from llamux import InvalidRequest, ProviderError, Router, served_by
from llamux.proxy import create_app
from llamux.testing import (
    FakeClock,
    MockRequest,
    MockTransport,
    count_prompt_tokens,
    count_text_tokens,
    fake_embedding,
    mock_error,
    mock_refused,
    mock_reply,
)

from conftest import HI, KEY, cooling_of, used_of

TABLE = """\
| provider | model                   | rpm | tpm   |
| -------- | ----------------------- | --- | ----- |
| cerebras | llama3.3-70b            | 30  | 60000 |
| groq     | llama-3.3-70b-versatile | 30  | 6000  |
"""
FIRST, SECOND = "cerebras:llama3.3-70b", "groq:llama-3.3-70b-versatile"


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("MockTransport opened a socket")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield


def router_on(tmp_path: Path, handler: Any = None) -> tuple[Router, MockTransport]:
    path = tmp_path / "endpoints.md"
    path.write_text(TABLE)
    mock = MockTransport(handler)
    router = Router.from_csv(path, store="memory://", clock=FakeClock(), transport=mock)
    return router, mock


def by_host(answers: dict[str, Any]) -> Any:
    """A handler answering by the endpoint's host: a response, or an exception to raise."""

    def handle(request: MockRequest) -> Any:
        for host, answer in answers.items():
            if host in request.url:
                if isinstance(answer, Exception):
                    raise answer
                return answer(request) if callable(answer) else answer
        raise AssertionError(f"unexpected request to {request.url}")

    return handle


def test_a_completion_is_answered_in_process_and_settled_from_its_usage(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    router, mock = router_on(tmp_path, lambda request: mock_reply(request, "four words of text"))
    with router:
        response = router.completion(HI, max_tokens=50)
    assert response.choices[0].message.content == "four words of text"
    assert served_by(response).endpoint == FIRST
    (sent,) = mock.requests
    assert sent.url == "https://api.cerebras.ai/v1/chat/completions"
    assert sent.model == "llama3.3-70b" and sent.body["max_tokens"] == 50
    tokens = count_prompt_tokens(HI) + count_text_tokens("four words of text")
    assert used_of(router, FIRST) == {"rpm": 1, "tpm": tokens}


def test_the_key_reaches_the_provider_but_not_the_recorded_request(
    tmp_path: Path, keys: str
) -> None:
    seen: list[str] = []

    def handle(request: MockRequest) -> Any:
        seen.append(repr(request) + str(dict(request.headers)))
        return mock_reply(request)

    router, mock = router_on(tmp_path, handle)
    with router:
        router.completion(HI)
    assert KEY not in seen[0] and KEY not in repr(mock)
    assert "authorization" not in mock.requests[0].headers


def test_a_429_fails_over_and_cools_the_endpoint_down(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    limited = mock_error(429, "Rate limit reached", headers={"retry-after": "7"})
    router, mock = router_on(tmp_path, by_host({"cerebras": limited, "groq": mock_reply}))
    with router:
        response = router.completion(HI)
    assert served_by(response).endpoint == SECOND
    assert [r.url.split("/")[2] for r in mock.requests] == ["api.cerebras.ai", "api.groq.com"]
    cooling = cooling_of(router, FIRST)
    assert cooling.kind == "cooldown" and cooling.until - router.clock.now() == pytest.approx(7)
    assert used_of(router, FIRST)["rpm"] == 1  # the provider counted the refused request


def test_a_refused_connection_fails_over_and_gives_the_charge_back(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    router, _ = router_on(tmp_path, by_host({"cerebras": mock_refused(), "groq": mock_reply}))
    with router:
        response = router.completion(HI)
    assert served_by(response).endpoint == SECOND
    assert used_of(router, FIRST) == {"rpm": 0, "tpm": 0}


def test_a_bad_request_goes_to_the_caller_without_failing_over(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    bad = mock_error(400, "max_tokens is too large", code="invalid_value")
    router, mock = router_on(tmp_path, lambda request: bad)
    with router, pytest.raises(ProviderError, match="max_tokens is too large") as raised:
        router.completion(HI)
    assert raised.value.status == 400 and len(mock.requests) == 1


def test_a_stream_is_read_chunk_by_chunk_and_settled(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    router, mock = router_on(tmp_path, lambda request: mock_reply(request, "a streamed answer"))
    with router:
        pieces = [
            c.choices[0].delta.content or ""
            for c in router.completion(HI, stream=True)
            if c.choices
        ]
    assert "".join(pieces) == "a streamed answer"
    assert mock.requests[0].stream
    tokens = count_prompt_tokens(HI) + count_text_tokens("a streamed answer")
    assert used_of(router, FIRST) == {"rpm": 1, "tpm": tokens}


def test_acompletion_and_an_async_stream_go_through_the_handler(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    router, mock = router_on(tmp_path, lambda request: mock_reply(request, "async answer"))

    async def run() -> tuple[str, str]:
        response = await router.acompletion(HI)
        stream = await router.acompletion(HI, stream=True)
        pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await router.aclose()
        return response.choices[0].message.content, "".join(pieces)

    assert asyncio.run(run()) == ("async answer", "async answer")
    assert [r.stream for r in mock.requests] == [False, True]


def test_the_proxy_relays_the_mocked_bytes(tmp_path: Path, keys: str, no_sockets: None) -> None:
    limited = mock_error(429, "slow down", headers={"retry-after": "3"})
    router, mock = router_on(tmp_path, by_host({"cerebras": limited, "groq": mock_reply}))
    with router, TestClient(create_app(router)) as client:
        answer = client.post("/v1/chat/completions", json={"messages": HI})
    assert answer.status_code == 200
    assert answer.headers["x-llamux-endpoint"] == SECOND
    assert answer.json()["choices"][0]["message"]["content"] == "ok"
    assert len(mock.requests) == 2


def test_a_bad_input_never_reaches_the_handler(tmp_path: Path, keys: str) -> None:
    router, mock = router_on(tmp_path)
    with router, pytest.raises(InvalidRequest):
        router.completion(HI, max_tokens=-1)
    assert mock.requests == []


KINDS_TABLE = """\
| provider | model        | base_url                  | serves                                   |
| -------- | ------------ | ------------------------- | ---------------------------------------- |
| other    | every-kind   | https://api.example.com/v1 | chat, embeddings, responses, completions |
"""


def test_every_kind_is_answered_as_the_fake_provider_answers_it(
    tmp_path: Path, keys: str, no_sockets: None
) -> None:
    path = tmp_path / "endpoints.md"
    path.write_text(KINDS_TABLE)
    mock = MockTransport(lambda request: mock_reply(request, "two words"))
    router = Router.from_csv(path, store="memory://", clock=FakeClock(), transport=mock)
    with router:
        vectors = router.embeddings(["a", "b"], encoding_format="float")
        response = router.responses("hi", max_output_tokens=50)
        events = [e.type for e in router.responses("hi", stream=True, max_output_tokens=50)]
        completion = router.text_completion("hi", max_tokens=50)
    assert [d.embedding for d in vectors.data] == [fake_embedding("a"), fake_embedding("b")]
    assert response.output_text == "two words" and response.usage.input_tokens == 5
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert completion.choices[0].text == "two words"
    assert [r.path for r in mock.requests] == [
        "/v1/embeddings",
        "/v1/responses",
        "/v1/responses",
        "/v1/completions",
    ]


def test_a_body_the_fake_refuses_is_its_400_and_an_unknown_route_a_404() -> None:
    body = {"model": "m", "input": ""}
    refused = mock_reply(MockRequest("https://x.example/v1/embeddings", body, {}))
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "'input' cannot contain an empty string"
    unknown = mock_reply(MockRequest("https://x.example/v1/images/generations", body, {}))
    assert unknown.status_code == 404
