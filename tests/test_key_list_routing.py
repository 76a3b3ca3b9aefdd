"""Routing over a key list: one row, several keys, each key's endpoint with its own quota."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from llamux import FakeClock, NoEndpointAvailable, Router, served_by
from llamux._config.load import parse_toml
from llamux.testing import FakeEndpoint, FakeProvider

HI = [{"role": "user", "content": "hi"}]
ONE = "sk-one-0123456789abcdef"
TWO = "sk-two-0123456789abcdef"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    """``a`` takes any key; ``b`` only the second key."""
    with FakeProvider([FakeEndpoint("a"), FakeEndpoint("b", api_key=TWO)]) as provider:
        yield provider


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_ONE", ONE)
    monkeypatch.setenv("KEY_TWO", TWO)


def router(fake: FakeProvider, rows: str, toml: str = "") -> Router:
    """A router over ``[[endpoints]]`` tables at the fake (``{a}``, ``{b}``: base URLs)."""
    text = rows.format(a=fake.base_url("a"), b=fake.base_url("b")) + toml
    return Router(parse_toml(text, "c.toml"), store="memory://", clock=FakeClock())


def row(url: str, name: str = "", rpm: int = 1, pool: str = "") -> str:
    extra = (f'name = "{name}"\n' if name else "") + (f'pool = "{pool}"\n' if pool else "")
    return (
        f'[[endpoints]]\nprovider = "fake"\nmodel = "m"\nbase_url = "{url}"\nrpm = {rpm}\n'
        f'api_key_env = "KEY_ONE, KEY_TWO"\n{extra}'
    )


def served(r: Router, **params: object) -> str:
    got = served_by(r.completion(HI, **params))
    assert got is not None
    return got.endpoint


def test_the_first_key_serves_until_its_quota_is_spent_then_the_second(
    fake: FakeProvider,
) -> None:
    with router(fake, row("{a}")) as r:
        assert served(r) == "fake:m#1"
        assert served(r) == "fake:m#2"  # key 1's minute is spent, key 2's is its own
        with pytest.raises(NoEndpointAvailable):
            r.completion(HI)
        assert fake.stats("a").served == 2 and fake.stats("a").refused == 0


def test_a_key_the_provider_refuses_fails_over_to_the_next_key(fake: FakeProvider) -> None:
    with router(fake, row("{b}", rpm=10)) as r:
        assert served(r) == "fake:m#2"  # b refused KEY_ONE's key (401): disabled, next key
        assert served(r) == "fake:m#2"
        assert fake.stats("b").served == 2


def test_a_shared_pool_counts_once_for_every_key(fake: FakeProvider) -> None:
    with router(fake, row("{a}", rpm=10, pool="shared"), "[pools.shared]\nrpm = 1\n") as r:
        assert served(r) == "fake:m#1"
        with pytest.raises(NoEndpointAvailable):
            r.completion(HI)  # key 2 has its own rpm left, but the pool is full


def test_the_rows_id_its_model_and_a_route_select_every_key_in_order(
    fake: FakeProvider,
) -> None:
    rows = row("{a}", name="fast") + row("{a}", name="slow").replace('"m"', '"m2"')
    routes = '[routes.both]\nendpoints = ["slow", "fast#2"]\n'
    with router(fake, rows, routes) as r:
        every = ["fast#1", "fast#2", "slow#1", "slow#2"]
        assert [ep.id for ep in r.endpoints] == every
        assert [ep.id for ep in r.candidates("fast")[0]] == ["fast#1", "fast#2"]
        assert [ep.id for ep in r.candidates("m2")[0]] == ["slow#1", "slow#2"]
        assert [ep.id for ep in r.candidates("slow#2")[0]] == ["slow#2"]
        assert [ep.id for ep in r.candidates("both")[0]] == ["slow#1", "slow#2", "fast#2"]
        assert served(r, model="both") == "slow#1"
        assert served(r, model="both") == "slow#2"
        assert served(r, model="both") == "fast#2"
        assert served(r, model="fast") == "fast#1"


def test_a_missing_key_skips_its_endpoint_alone_with_one_warning(
    fake: FakeProvider, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KEY_ONE")
    with caplog.at_level(logging.WARNING, "llamux"), router(fake, row("{a}")) as r:
        assert served(r) == "fake:m#2"
        with pytest.raises(NoEndpointAvailable):
            r.completion(HI)
    warned = [rec.getMessage() for rec in caplog.records if "is skipped" in rec.getMessage()]
    assert len(warned) == 1 and "fake:m#1" in warned[0] and "KEY_ONE" in warned[0]
    assert ONE not in caplog.text and TWO not in caplog.text


def test_query_props_name_the_variable_never_the_key(fake: FakeProvider) -> None:
    with router(fake, row("{a}")) as r:
        for expected in ("KEY_ONE", "KEY_TWO"):
            _, _, _, props = r.query(HI)
            assert props["api_key_env"] == expected
            assert ONE not in repr(props) and TWO not in repr(props)


def test_the_proxy_lists_a_key_lists_id_and_probe_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx2 as httpx

    from llamux.cli import main
    from llamux.proxy import ProxyThread, create_app

    monkeypatch.setenv("K1", "key-one-0123456789")
    monkeypatch.setenv("K2", "key-two-0123456789")
    monkeypatch.setenv("COLUMNS", "250")
    with FakeProvider([FakeEndpoint("a", rpm=5)]) as fake:
        table = tmp_path / "t.md"
        table.write_text(
            "| name | provider | model | base_url | api_key_env |\n|---|---|---|---|---|\n"
            f"| g | fake | m | {fake.base_url('a')} | K1, K2 |\n"
        )
        router = Router.from_csv(table, store="memory://")
        with ProxyThread(create_app(router)) as running:
            listed = httpx.get(running.url + "/v1/models", timeout=30).json()["data"]
        group = next(m for m in listed if m["id"] == "g")
        assert group["endpoints"] == ["g#1", "g#2"]
        code = main(["--config", str(table), "--store", "memory://", "probe", "g", "--yes"])
        out = capsys.readouterr().out
        assert code == 0 and "g#1" in out and "g#2" in out
        assert "key-one" not in out and "key-two" not in out
