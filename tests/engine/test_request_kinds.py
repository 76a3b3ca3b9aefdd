"""Embeddings, the Responses API and text completions through the one request engine, against
the strict fake provider: routed only to endpoints of their kind, quota exact, settled from
usage, failover before the first event, batches never split."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamux import InvalidRequest, Router, served_by
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY, used_of

HEAD = (
    "| name | provider | model | base_url | api_key_env | rpm | tpm | serves | max_inputs |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", KEY)


def router_for(fake: FakeProvider, tmp_path: Path, rows: list[str]) -> Router:
    """Rows: ``name | rpm | tpm | serves | max_inputs`` cells after the base URL."""
    lines = []
    for row in rows:
        name, rest = row.split("|", 1)
        name = name.strip()
        lines.append(f"| {name} | fake | m-{name} | {fake.base_url(name)} | FAKE_API_KEY |{rest}|")
    path = tmp_path / "endpoints.md"
    path.write_text(HEAD + "\n".join(lines) + "\n")
    return Router.from_csv(path, store="memory://")


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    endpoints = [
        FakeEndpoint("chat", serves=frozenset({"chat"})),
        FakeEndpoint("emb", rpm=6, tpm=100_000, serves=frozenset({"embeddings"}), max_inputs=4),
        FakeEndpoint("emb2", rpm=100, serves=frozenset({"embeddings"})),
        FakeEndpoint("resp", rpm=50, serves=frozenset({"responses", "completions"})),
        FakeEndpoint("resp2", rpm=50, serves=frozenset({"responses", "completions"})),
    ]
    with FakeProvider(endpoints) as provider:
        yield provider


ROWS = [
    "chat | | | chat | ",
    "emb | 6 | 100000 | embeddings | 4",
    "emb2 | 100 | | embeddings | ",
    "resp | 50 | | responses, completions | ",
    "resp2 | 50 | | responses, completions | ",
]


def test_each_kind_goes_only_to_endpoints_that_serve_it(fake: FakeProvider, tmp_path: Path) -> None:
    router = router_for(fake, tmp_path, ROWS)
    hi = [{"role": "user", "content": "hi"}]
    assert served_by(router.completion(hi)).endpoint == "chat"  # type: ignore[union-attr]
    vectors = router.embeddings(["one", "two"])
    assert len(vectors.data) == 2 and served_by(vectors).endpoint == "emb"  # type: ignore[union-attr]
    answer = router.responses("Say hi", max_output_tokens=16)
    assert answer.output_text and served_by(answer).endpoint == "resp"  # type: ignore[union-attr]
    text = router.text_completion("Once upon", max_tokens=8)
    assert text.choices[0].text and served_by(text).endpoint == "resp"  # type: ignore[union-attr]
    assert all(fake.stats(name).unsupported == 0 for name in ("chat", "emb", "emb2", "resp"))
    # settled from the usage the provider reported: llamux counts what the provider counted
    assert used_of(router, "emb")["tpm"] == fake.stats("emb").total_tokens > 0


def test_embeddings_quota_is_exact_under_concurrency(fake: FakeProvider, tmp_path: Path) -> None:
    router = router_for(fake, tmp_path, ROWS)
    served: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        body = router.embeddings(f"text number {i}")
        with lock:
            served.append(served_by(body).endpoint)  # type: ignore[union-attr]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(served) == 16
    assert served.count("emb") == 6 and served.count("emb2") == 10  # emb's 6 a minute, exactly
    assert fake.stats("emb").refused == 0 and fake.stats("emb2").refused == 0


def test_a_batch_larger_than_an_endpoint_takes_goes_to_one_that_takes_it(
    fake: FakeProvider, tmp_path: Path
) -> None:
    router = router_for(fake, tmp_path, ROWS)
    body = router.embeddings([f"t{i}" for i in range(6)])  # emb takes 4 at most
    assert served_by(body).endpoint == "emb2"  # type: ignore[union-attr]
    only = router_for(fake, tmp_path, ROWS[:2])
    with pytest.raises(InvalidRequest, match=r"carries 6 inputs .* at most 4 per request; split"):
        only.embeddings([f"t{i}" for i in range(6)])
    assert used_of(only, "emb")["rpm"] == 0  # nothing reserved
    with pytest.raises(InvalidRequest, match="input must be a non-empty string"):
        only.embeddings([])


def test_a_responses_stream_fails_over_before_its_first_event_and_settles_from_completed(
    fake: FakeProvider, tmp_path: Path
) -> None:
    router = router_for(fake, tmp_path, ROWS)
    fake.inject("resp", 503, kind="responses")
    events = list(router.responses("Tell me a story", stream=True, max_output_tokens=32))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    final = events[-1].response
    assert used_of(router, "resp2")["rpm"] == 1
    assert fake.stats("resp2").total_tokens == final.usage.total_tokens


def test_a_text_completion_stream_is_settled_from_its_usage(
    fake: FakeProvider, tmp_path: Path
) -> None:
    router = router_for(fake, tmp_path, ["resp | 50 | 100000 | completions | "])
    chunks = list(router.text_completion("Once upon", stream=True, max_tokens=8))
    assert all(chunk.choices for chunk in chunks)  # the usage-only chunk is llamux's own
    assert "".join(c.choices[0].text for c in chunks)
    assert used_of(router, "resp") == {"rpm": 1, "tpm": fake.stats("resp").total_tokens}


def test_the_async_twins(fake: FakeProvider, tmp_path: Path) -> None:
    router = router_for(fake, tmp_path, ROWS)

    async def main() -> tuple[int, str, int]:
        vectors = await router.aembeddings("hello")
        answer = await router.aresponses("hi", max_output_tokens=8)
        events = [e.type async for e in await router.aresponses("hi", stream=True)]
        text = await router.atext_completion("hi", max_tokens=4)
        await router.aclose()
        return len(vectors.data), answer.status, len(events) + len(text.choices)

    count, status, more = asyncio.run(main())
    assert (count, status) == (1, "completed") and more > 3


def test_no_endpoint_of_the_kind_is_a_clear_error(fake: FakeProvider, tmp_path: Path) -> None:
    router = router_for(fake, tmp_path, ROWS[:1])
    from llamux import ConfigError

    with pytest.raises(ConfigError, match="no endpoint of this config serves embeddings"):
        router.embeddings("x")


def test_a_model_that_does_not_take_a_kind_is_passed_over_not_disabled(
    fake: FakeProvider, tmp_path: Path
) -> None:
    # the table says chat serves embeddings too; the provider says no (404): the request
    # goes on to emb, and chat is not disabled for what it does serve
    router = router_for(fake, tmp_path, ["chat | | | chat, embeddings | ", ROWS[1]])
    body = router.embeddings("hello")
    assert served_by(body).endpoint == "emb"  # type: ignore[union-attr]
    assert fake.stats("chat").unsupported == 1
    hi = [{"role": "user", "content": "hi"}]
    assert served_by(router.completion(hi)).endpoint == "chat"  # type: ignore[union-attr]


def test_a_chat_request_never_tries_an_endpoint_that_serves_only_embeddings(
    fake: FakeProvider, tmp_path: Path
) -> None:
    router = router_for(fake, tmp_path, [ROWS[1], ROWS[0]])  # emb first, then chat
    hi = [{"role": "user", "content": "hi"}]
    assert served_by(router.completion(hi)).endpoint == "chat"  # type: ignore[union-attr]
    assert fake.stats("emb").unsupported == 0  # never asked
    assert [e.id for e in router.candidates(None)[0]] == ["chat"]
    assert router.candidates(None, "embeddings")[0][0].id == "emb"
