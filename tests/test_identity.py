"""A quota's identity is what the provider counts by (server, model, key variable): renaming
an endpoint, changing how its limits reset or moving it into a pool keeps its history;
endpoints and pools never share counters; the store says what this config disagrees with."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router
from llamux._stores.memory import MemoryStore
from llamux.testing import FakeClock

from conftest import HI, used_of

HEAD = "| provider | model | rpd |"


def table(tmp_path: Path, name: str, header: str, *rows: str) -> Path:
    path = tmp_path / f"{name}.md"
    cols = header.count("|") - 1
    path.write_text("\n".join([header, "|" + "---|" * cols, *rows]) + "\n")
    return path


def spend(router: Router, times: int) -> None:
    for _ in range(times):
        router.query(HI, max_tokens=1)


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("| name | provider | model | rpd |", "| my-groq | groq | llama-3.3-70b-versatile | 3 |"),
        (
            "| provider | model | rpd | reset |",
            "| groq | llama-3.3-70b-versatile | 3 | UTC |",
        ),
    ],
    ids=["a name added", "a reset added"],
)
def test_editing_how_an_endpoint_is_named_or_resets_keeps_its_history(
    tmp_path: Path, keys: str, header: str, row: str
) -> None:
    store, clock = MemoryStore(), FakeClock(1_767_225_600.0 + 3600)
    before = table(tmp_path, "before", HEAD, "| groq | llama-3.3-70b-versatile | 3 |")
    spend(Router.from_csv(before, store=store, clock=clock), 3)
    after = Router.from_csv(table(tmp_path, "after", header, row), store=store, clock=clock)
    with pytest.raises(NoEndpointAvailable):
        after.query(HI, max_tokens=1)  # the provider still remembers the 3
    # the limits now reset differently: said once (the next config to start records them)
    assert len(after.warnings()) == ("reset" in header)


@pytest.fixture
def openrouter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test-0123456789")


def test_moving_an_endpoint_into_a_pool_keeps_its_own_history(
    tmp_path: Path, openrouter: None
) -> None:
    store, clock = MemoryStore(), FakeClock()
    before = table(tmp_path, "before", HEAD, "| openrouter | x:free | 2 |")
    spend(Router.from_csv(before, store=store, clock=clock), 2)
    pooled = table(
        tmp_path,
        "after",
        "| provider | model | rpd | pool |",
        "| openrouter | x:free | 2 | openrouter-free |",
    )
    after = Router.from_csv(pooled, store=store, clock=clock)
    with pytest.raises(NoEndpointAvailable) as caught:
        after.query(HI, max_tokens=1)
    assert [r.rule for r in caught.value.refusals] == ["rpd"]


def test_an_endpoint_named_like_a_pool_does_not_share_its_counters(
    tmp_path: Path, openrouter: None
) -> None:
    path = table(
        tmp_path,
        "t",
        "| name | provider | model | rpm | pool |",
        "| pool:openrouter-free | openrouter | a:free | 100 | |",
        "| b | openrouter | b:free | 100 | openrouter-free |",
    )
    router = Router.from_csv(path, store=MemoryStore(), clock=FakeClock())
    for _ in range(5):
        router.query(HI, model="pool:openrouter-free", max_tokens=1)
    assert used_of(router, "pool:openrouter-free") == {"rpm": 5}
    pool = [u for u in router.status()[1].usage if u.scope == "pool:openrouter-free"]
    assert {u.rule.name: u.used for u in pool} == {"rpm": 0, "rpd": 0}


def test_usage_no_configured_endpoint_owns_is_reported(tmp_path: Path, keys: str) -> None:
    store, clock = MemoryStore(), FakeClock()
    old = table(tmp_path, "old", HEAD, "| groq | llama-3.1-8b-instant | 10 |")
    spend(Router.from_csv(old, store=store, clock=clock), 1)
    new = Router.from_csv(
        table(tmp_path, "new", HEAD, "| groq | openai/gpt-oss-120b | 10 |"),
        store=store,
        clock=clock,
    )
    (warning,) = new.warnings()
    assert "llama-3.1-8b-instant" in warning and "no configured endpoint" in warning
    clock.advance(86400 + 900 + 1)  # a day later nothing of it counts any more
    assert new.warnings() == []


def test_two_configs_with_different_limits_for_one_quota_are_warned_about(
    tmp_path: Path, keys: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    Router.from_csv(table(tmp_path, "a", HEAD, "| groq | m | 5 |"), store=store)
    second = Router.from_csv(table(tmp_path, "b", HEAD, "| groq | m | 7 |"), store=store)
    (warning,) = second.warnings()
    assert "'rpd=5'" in warning and "'rpd=7'" in warning and "the same limits" in warning
    assert any("rpd=5" in record.getMessage() for record in caplog.records)
    same = Router.from_csv(table(tmp_path, "c", HEAD, "| groq | m | 7 |"), store=store)
    assert same.warnings() == []
