"""A router over an endpoint with a concurrency limit: query leases, waits, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router
from llamux._status import status_data
from llamux.cli._status_view import state_text
from llamux.testing import FakeEndpoint, FakeProvider

MESSAGES = [{"role": "user", "content": "hi"}]


def router_for(fake: FakeProvider, tmp_path: Path) -> Router:
    path = tmp_path / "endpoints.md"
    path.write_text(
        "| name | provider | model | base_url | rpm | concurrency |\n|---|---|---|---|---|---|\n"
        f"| a | fake | m-a | {fake.base_url('a')} | 100 | 1 |\n"
    )
    return Router.from_csv(path, store="memory://")


def test_a_query_holds_the_lease_until_settled(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a")]) as fake, router_for(fake, tmp_path) as router:
        *_, props = router.query(MESSAGES)
        data = status_data(router)
        assert data["endpoints"][0]["concurrency"] == {"in_flight": 1, "limit": 1}
        assert data["endpoints"][0]["state"] == "busy"  # every lease held: not "ok"
        assert state_text(data["endpoints"][0])[0] == "busy (1/1 in flight; frees as calls end)"
        with pytest.raises(NoEndpointAvailable, match="concurrency 1/1 in flight"):
            router.query(MESSAGES)
        router.settle(props["reservation"], 10)
        *_, again = router.query(MESSAGES)
        router.release(again["reservation"])
        assert router.completion(MESSAGES).choices[0].message is not None
        data = status_data(router)
        assert data["endpoints"][0]["concurrency"] == {"in_flight": 0, "limit": 1}
        assert data["endpoints"][0]["state"] == "ok"
