"""The proxy serves embeddings, the Responses API and text completions as it serves chat, to
the official openai SDK as a client; and tells every client its route's quota in headers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY

HEAD = (
    "| name | provider | model | base_url | api_key_env | rpm | tpm | serves |\n"
    "|---|---|---|---|---|---|---|---|\n"
)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", KEY)


@contextlib.contextmanager
def proxied(tmp_path: Path) -> Iterator[tuple[openai.OpenAI, FakeProvider, Router, str]]:
    endpoints = [
        FakeEndpoint("chat", rpm=20, tpm=50_000, serves=frozenset({"chat"})),
        FakeEndpoint("emb", rpm=4, tpm=10_000, serves=frozenset({"embeddings"})),
        FakeEndpoint("emb2", rpm=100, tpm=100_000, serves=frozenset({"embeddings"})),
        FakeEndpoint("resp", rpm=30, tpm=50_000, serves=frozenset({"responses", "completions"})),
    ]
    rows = [
        ("chat", "20 | 50000 | chat"),
        ("emb", "4 | 10000 | embeddings"),
        ("emb2", "100 | 100000 | embeddings"),
        ("resp", "30 | 50000 | responses, completions"),
    ]
    with FakeProvider(endpoints) as fake:
        lines = [
            f"| {n} | fake | m-{n} | {fake.base_url(n)} | FAKE_API_KEY | {cells} |"
            for n, cells in rows
        ]
        path = tmp_path / "endpoints.md"
        path.write_text(HEAD + "\n".join(lines) + "\n")
        router = Router.from_csv(path, store=MemoryStore())
        with ProxyThread(create_app(router)) as running:
            client = openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0)
            yield client, fake, router, running.url


def test_the_sdk_gets_embeddings_responses_and_text_completions(tmp_path: Path) -> None:
    with proxied(tmp_path) as (client, fake, router, _):
        vectors = client.embeddings.create(model="auto", input=["one", "two", "three"])
        assert len(vectors.data) == 3 and len(vectors.data[0].embedding) > 0
        answer = client.responses.create(model="auto", input="Say hi", max_output_tokens=16)
        assert answer.output_text and answer.usage is not None
        events = list(client.responses.create(model="auto", input="Story", stream=True))
        assert events[0].type == "response.created" and events[-1].type == "response.completed"
        text = client.completions.create(model="auto", prompt="Once upon", max_tokens=8)
        assert text.choices[0].text
        chunks = list(client.completions.create(model="auto", prompt="Once", stream=True))
        assert chunks and all(chunk.choices for chunk in chunks)  # llamux's usage chunk hidden
        assert fake.stats("emb").served == 1 and fake.stats("resp").served == 4
        assert fake.stats("chat").served == 0  # only endpoints of each kind
        assert all(fake.stats(n).unsupported == 0 for n in ("chat", "emb", "emb2", "resp"))
        # settled from the usage the provider reported, streams included
        resp = {u.rule.name: u.used for u in router.status()[3].usage}
        assert resp == {"rpm": 4, "tpm": fake.stats("resp").total_tokens}


def test_the_quota_headers_are_the_routes_tightest_minute_rule(tmp_path: Path) -> None:
    with proxied(tmp_path) as (_, _fake, router, url):
        for _ in range(3):
            answer = httpx.post(
                url + "/v1/embeddings", json={"model": "m-emb", "input": "hi"}, timeout=30
            )
            assert answer.status_code == 200
        assert answer.headers["x-llamux-endpoint"] == "emb"
        assert answer.headers["x-ratelimit-limit-requests"] == "4"
        # the store's own view: emb has served 3 of its 4 a minute, as the headers say
        rpm = next(u for u in router.status()[1].usage if u.rule.name == "rpm")
        assert rpm.remaining == 1
        assert answer.headers["x-ratelimit-remaining-requests"] == "1"
        assert answer.headers["x-ratelimit-limit-tokens"] == "10000"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
        both = httpx.post(url + "/v1/embeddings", json={"model": "auto", "input": "hi"}, timeout=30)
        # auto: emb and emb2 serve it; the tightest rule is emb's
        assert both.headers["x-ratelimit-limit-requests"] == "4"


def test_models_say_what_each_name_serves_and_unknown_routes_say_what_is_served(
    tmp_path: Path,
) -> None:
    with proxied(tmp_path) as (client, _, _, url):
        listed = {m.id: m for m in client.models.list().data}
        assert listed["auto"].serves == ["chat", "embeddings", "responses", "completions"]  # type: ignore[attr-defined]
        assert listed["emb"].serves == ["embeddings"]  # type: ignore[attr-defined]
        assert listed["resp"].serves == ["responses", "completions"]  # type: ignore[attr-defined]
        missing = httpx.post(url + "/v1/images/generations", json={}, timeout=30)
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == "unknown_url" and "POST /v1/embeddings" in error["message"]


def test_a_bad_input_is_a_400_that_costs_nothing_and_a_kind_nobody_serves_a_404(
    tmp_path: Path,
) -> None:
    with proxied(tmp_path) as (_client, fake, router, url):
        bad = httpx.post(url + "/v1/embeddings", json={"model": "auto", "input": []}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"
        wrong = httpx.post(url + "/v1/responses", json={"model": "chat", "input": "hi"}, timeout=30)
        assert wrong.status_code == 404 and "serves responses" in wrong.json()["error"]["message"]
        assert sum(fake.stats(n).served for n in ("chat", "emb", "emb2", "resp")) == 0
        assert all(u.used == 0 for row in router.status() for u in row.usage)
