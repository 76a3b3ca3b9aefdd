"""``auto`` limits and learned limits, end to end against the strict fake provider: learned
from the first answer, one request at a time while nothing is known, a 429 body that states
a limit, configured limits tightened, and what is learned shared through the store."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llamux import Router, served_by
from llamux._policy.known_limits import CATALOG, LEARNED, TIGHTENED, UNKNOWN
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider

from conftest import KEY, cooling_of, used_of

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
HEAD = (
    "| name | provider | model | base_url | api_key_env | rpm | tpm | rpd | tpd |\n"
    "|---|---|---|---|---|---|---|---|---|\n"
)


def table(fake: FakeProvider, rows: list[tuple[str, str, str]], tmp_path: Path) -> Path:
    """A table of the fake's endpoints: (name, provider, limit cells rpm|tpm|rpd|tpd)."""
    lines = [
        f"| {name} | {provider} | m-{name} | {fake.base_url(name)} | FAKE_API_KEY | {cells} |"
        for name, provider, cells in rows
    ]
    path = tmp_path / "endpoints.md"
    path.write_text(HEAD + "\n".join(lines) + "\n")
    return path


def known(router: Router, endpoint: str) -> dict[str, tuple[int | None, str]]:
    return {k.name: (k.limit, k.origin) for k in router.quotas.known[endpoint]}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_API_KEY", KEY)


def test_auto_learns_from_the_first_answer_then_never_meets_a_429(tmp_path: Path) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", rpm=3, tpm=100_000)], clock=clock.now) as fake:
        path = table(fake, [("a", "openai", "auto | auto |  |")], tmp_path)
        router = Router.from_csv(path, store="memory://", clock=clock)
        assert known(router, "a") == {"rpm": (None, UNKNOWN), "tpm": (None, UNKNOWN)}
        assert "a" in router.quotas.gated
        start = clock.now()
        for _ in range(10):
            router.completion(HELLO, wait=120)
        assert known(router, "a") == {"rpm": (3, LEARNED), "tpm": (100_000, LEARNED)}
        assert "a" not in router.quotas.gated
        stats = fake.stats("a")
        assert (stats.served, stats.refused) == (10, 0)
        assert clock.now() - start >= 180  # it waited for the window, as 3 rpm demand


def test_one_request_at_a_time_while_nothing_is_known(tmp_path: Path) -> None:
    # gemini states no limit in its headers: the endpoint stays unknown, so gated
    endpoints = [FakeEndpoint("g", rpm=100, delay=0.15, dialect="gemini"), FakeEndpoint("b")]
    with FakeProvider(endpoints) as fake:
        path = table(fake, [("g", "gemini", "auto |  |  |"), ("b", "fake", " |  |  |")], tmp_path)
        router = Router.from_csv(path, store="memory://")
        served: list[str] = []
        lock = threading.Lock()

        def one(model: str) -> None:
            body = router.completion(HELLO, model=model, wait=10)
            with lock:
                served.append(served_by(body).endpoint)

        # the first four insist on g: they wait their turn; four more may go elsewhere
        threads = [threading.Thread(target=one, args=("g",)) for _ in range(4)]
        threads += [threading.Thread(target=one, args=("auto",)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(served) == 8 and fake.stats("g").refused == 0
        arrivals = sorted(row.at for row in fake.trace("g"))
        assert len(arrivals) >= 4
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert min(gaps) >= 0.14, gaps  # never two in flight to g at once
        assert "b" in served  # the others went elsewhere instead of waiting
        assert "g" in router.quotas.gated


def test_a_catalog_entry_makes_auto_known_before_any_answer(tmp_path: Path) -> None:
    with FakeProvider([FakeEndpoint("llama-3.3-70b-versatile")]) as fake:
        path = tmp_path / "groq.md"
        base = fake.base_url("llama-3.3-70b-versatile")
        path.write_text(
            "| provider | model | base_url | rpm | tph | rpd |\n|---|---|---|---|---|---|\n"
            f"| groq | llama-3.3-70b-versatile | {base} | auto | auto | 500 |\n"
        )
        router = Router.from_csv(path, store="memory://")
        rows = known(router, "groq:llama-3.3-70b-versatile")
        assert rows["rpm"] == (30, CATALOG)
        assert rows["tph"] == (None, "none")  # the tier has no hourly token limit
        assert rows["rpd"] == (500, "configured")
        assert not router.quotas.gated


def test_a_configured_limit_above_the_providers_is_tightened_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    with FakeProvider([FakeEndpoint("a", rpm=2, tpm=50_000)], clock=clock.now) as fake:
        path = table(fake, [("a", "openai", "30 | 50000 |  |")], tmp_path)
        router = Router.from_csv(path, store="memory://", clock=clock)
        with caplog.at_level(logging.WARNING, logger="llamux"):
            router.completion(HELLO)
        assert known(router, "a")["rpm"] == (2, TIGHTENED)
        assert known(router, "a")["tpm"] == (50_000, "configured")
        said = "your table says rpm 30; the provider states 2"
        assert any(said in r.message for r in caplog.records)
        router.completion(HELLO, wait=120)
        start = clock.now()
        router.completion(HELLO, wait=120)  # the third of the minute waits for the window
        assert clock.now() - start > 30
        assert fake.stats("a").refused == 0


def test_a_groq_tpd_429_parks_the_endpoint_and_records_limit_and_usage(tmp_path: Path) -> None:
    clock = FakeClock()
    endpoint = FakeEndpoint("g", rpm=100, tpd=5000, dialect="groq", completion_tokens=900)
    with FakeProvider([endpoint], clock=clock.now) as fake:
        path = table(fake, [("g", "groq", "auto | auto | auto | auto")], tmp_path)
        router = Router.from_csv(path, store="memory://", clock=clock)
        for _ in range(8):
            try:
                router.completion(HELLO, max_tokens=900)
            except Exception:
                break
        assert fake.stats("g").refused == 1  # the one 429 that taught the daily limit
        rows = known(router, "g")
        assert rows["tpd"] == (5000, LEARNED)
        assert router.quotas.learned("g")["tpd"].source == "429"
        assert rows["rpm"] == (None, UNKNOWN)  # groq's headers speak of requests per day only
        cooling = cooling_of(router, "g")
        assert cooling.kind == "parked" and cooling.until > clock.now() + 60
        assert used_of(router, "g")["tpd"] >= fake.stats("g").total_tokens


LEARN = """
import sys
from llamux import Router, served_by
router = Router.from_csv(sys.argv[1], store=sys.argv[2])
router.completion([{"role": "user", "content": "hi"}])
router.close()
"""


def test_learned_limits_are_shared_by_processes_and_survive_a_restart(tmp_path: Path) -> None:
    with FakeProvider([FakeEndpoint("a", rpm=7, tpm=70_000)]) as fake:
        path = table(fake, [("a", "openai", "auto | auto |  |")], tmp_path)
        store = f"sqlite:///{tmp_path / 'state.db'}"
        watcher = Router.from_csv(path, store=store)  # opened before the other learns
        env = {"FAKE_API_KEY": KEY, "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, "-c", LEARN, str(path), store],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert KEY not in done.stdout + done.stderr
        restarted = Router.from_csv(path, store=store)
        assert known(restarted, "a") == {"rpm": (7, LEARNED), "tpm": (70_000, LEARNED)}
        assert "a" not in restarted.quotas.gated
        watcher.quotas.refresh(watcher.clock.now() + 60)  # its next decision reads it
        assert known(watcher, "a")["rpm"] == (7, LEARNED)
        rows = json.dumps({k: v.limit for k, v in restarted.quotas.learned("a").items()})
        assert rows == '{"rpm": 7, "tpm": 70000}'
