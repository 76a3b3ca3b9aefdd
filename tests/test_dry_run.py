"""Router.query(dry_run=True): the endpoint a query would take now, with nothing written;
and EndpointStatus.to_dict(), one endpoint as ``llamux status --json`` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router
from llamux._status import status_data
from llamux._stores import QuotaStore
from llamux.testing import FakeClock

from conftest import used_of

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
CEREBRAS, GROQ = "cerebras:llama3.3-70b", "groq:llama-3.3-70b-versatile"


@pytest.fixture
def router(seed_config: str, store: QuotaStore) -> Router:
    """The seed table on each kind of store (memory, SQLite, Redis), on a fake clock."""
    return Router.from_csv(seed_config, store=store, clock=FakeClock())


def test_a_dry_run_answers_as_query_would_and_writes_nothing(
    router: Router, store: QuotaStore
) -> None:
    since = router.clock.now()
    provider, model, id_, props = router.query(HELLO, dry_run=True, max_tokens=50)
    assert (provider, model, id_) == ("cerebras", "llama3.3-70b", CEREBRAS)
    assert props["reservation"] is None and props["tokens"] > 50
    assert used_of(router, CEREBRAS) == dict.fromkeys(("rpm", "tpm", "rph", "tph", "rpd", "tpd"), 0)
    assert store.counted_scopes(since) == set()
    _, _, real_id, real = router.query(HELLO, max_tokens=50)  # what would be left, was left
    assert real_id == id_ and real["remaining"] == props["remaining"]
    assert props["remaining"]["rpm"] == 29 and real["reservation"]


def test_a_dry_run_passes_a_full_endpoint_and_refuses_as_query_does(router: Router) -> None:
    for _ in range(30):
        router.query(HELLO)
    assert router.query(HELLO, dry_run=True)[2] == GROQ
    with pytest.raises(NoEndpointAvailable) as real:
        for _ in range(31):
            router.query(HELLO)
    before = used_of(router, GROQ)
    with pytest.raises(NoEndpointAvailable) as caught:
        router.query(HELLO, dry_run=True)
    error = caught.value
    assert [r.reason for r in error.refusals] == [r.reason for r in real.value.refusals]
    assert {r.endpoint for r in error.refusals} == {CEREBRAS, GROQ}
    assert error.retry_after is not None and 0 < error.retry_after <= 61
    assert not error.providers_failed and "rpm 30/30 used" in str(error)
    assert used_of(router, GROQ) == before
    router.clock.sleep(61)  # type: ignore[attr-defined]
    assert router.query(HELLO, dry_run=True)[2] == CEREBRAS


def test_a_dry_run_skips_an_endpoint_cooling_down(router: Router, store: QuotaStore) -> None:
    own = router.quotas.own[CEREBRAS]
    now = router.clock.now()
    store.cool_down(own, now + 30, "HTTP 503", "cooldown", now)
    assert router.query(HELLO, dry_run=True)[2] == GROQ


def test_a_dry_run_takes_no_turn_of_a_rotation(seed_config: str) -> None:
    router = Router.from_csv(seed_config, store="memory://", clock=FakeClock())
    turns = [router.query(HELLO, strategy="round_robin")[2] for _ in range(2)]
    assert router.query(HELLO, strategy="round_robin", dry_run=True)[2] == CEREBRAS
    turns.append(router.query(HELLO, strategy="round_robin")[2])
    assert turns == [CEREBRAS, GROQ, CEREBRAS]


def test_a_dry_run_holds_no_lease_of_an_endpoint_with_unknown_limits(
    tmp_path: Path, keys: str
) -> None:
    table = tmp_path / "auto.md"
    table.write_text(
        "| provider | model | base_url | rpm |\n|---|---|---|---|\n"
        "| fake | m | http://127.0.0.1:9/v1 | auto |\n"
    )
    router = Router.from_csv(table, store="memory://", clock=FakeClock())
    assert router.query(HELLO, dry_run=True)[2] == "fake:m"
    assert router.query(HELLO, dry_run=True)[2] == "fake:m"
    assert router.query(HELLO)[3]["reservation"]  # one at a time: the dry runs took none


def test_to_dict_is_one_endpoint_of_status_json(router: Router) -> None:
    router.query(HELLO)
    rows = router.status()
    data = status_data(router)
    assert [row.to_dict() for row in rows] == data["endpoints"]
    first = rows[0].to_dict()
    json.dumps(first)  # JSON-ready
    rpm = next(r for r in first["rules"] if r["rule"] == "rpm")
    assert first["id"] == CEREBRAS and rpm["used"] == 1 and rpm["limit"] == 30
    later = rows[0].to_dict(now=rows[0].at + 10)
    frees = next(r for r in later["rules"] if r["rule"] == "rpm")["frees_in"]
    assert frees is not None and rpm["frees_in"] is not None and frees == rpm["frees_in"] - 10
