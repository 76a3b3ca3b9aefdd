"""A router over endpoints with dollar budgets: requests priced at admission from the
prompt estimate and the reserved output, settled from the real usage (prompt and completion
tokens priced apart), refused once the budget is spent; status data, the CLI and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router, served_by
from llamux._status import status_data
from llamux.cli._screen import Screen
from llamux.cli._status_view import status_lines
from llamux.proxy._metrics import Metrics
from llamux.testing import FakeClock, FakeEndpoint, FakeProvider, count_prompt_tokens

MESSAGES = [{"role": "user", "content": "hi"}]
INPUT, OUTPUT = 1000.0, 3000.0
"""USD per million tokens: one input token costs $0.001, one output token $0.003."""


def router_for(fake: FakeProvider, tmp_path: Path, budget: str = "0.10") -> Router:
    path = tmp_path / "endpoints.md"
    path.write_text(
        "| name | provider | model | base_url | input_cost | output_cost | usd_day |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| a | fake | m-a | {fake.base_url('a')} | {INPUT} | {OUTPUT} | {budget} |\n"
    )
    return Router.from_csv(path, store="memory://", clock=FakeClock(1_767_225_600.0))


def budget_row(router: Router) -> dict[str, object]:
    rules = status_data(router)["endpoints"][0]["rules"]
    return dict(next(r for r in rules if r["rule"] == "usd_day"))


def test_a_request_is_priced_then_settled_from_its_real_usage(tmp_path: Path, keys: str) -> None:
    fake_ep = FakeEndpoint("a", completion_tokens=5)
    with FakeProvider([fake_ep]) as fake, router_for(fake, tmp_path) as router:
        *_, props = router.query(MESSAGES, max_tokens=20)
        estimate = props["usd"]
        assert estimate * 1e6 >= 20 * OUTPUT  # the whole reserved output, priced
        assert budget_row(router)["used"] == round(estimate * 1e6)
        router.settle(props["reservation"], {"prompt_tokens": 3, "completion_tokens": 2})
        assert budget_row(router)["used"] == 3 * 1000 + 2 * 3000
        response = router.completion(MESSAGES, max_tokens=20)
        usage = response.usage
        real = usage.prompt_tokens * 1000 + usage.completion_tokens * 3000
        row = budget_row(router)
        assert row["used"] == 9000 + real
        assert row["spent_usd"] == pytest.approx((9000 + real) / 1e6)
        assert row["budget_usd"] == 0.10 and row["metric"] == "usd"
        assert row["limit"] == 100_000 and row["remaining"] == 100_000 - 9000 - real


def test_requests_are_refused_once_the_budget_is_spent(tmp_path: Path, keys: str) -> None:
    fake_ep = FakeEndpoint("a", completion_tokens=10)
    with FakeProvider([fake_ep]) as fake, router_for(fake, tmp_path) as router:
        served = 0
        with pytest.raises(NoEndpointAvailable, match=r"usd_day \$0\.\d+/\$0\.10 used"):
            for _ in range(100):
                router.completion(MESSAGES, max_tokens=10)
                served += 1
        row = budget_row(router)
        assert served > 0 and isinstance(row["used"], int) and row["used"] <= 100_000
        prompt = count_prompt_tokens(MESSAGES)
        assert row["used"] == served * (prompt * 1000 + 10 * 3000)
        assert fake.stats("a").served == served


def test_a_request_priced_over_the_whole_budget_never_fits(tmp_path: Path, keys: str) -> None:
    with FakeProvider([FakeEndpoint("a")]) as fake, router_for(fake, tmp_path) as router:
        with pytest.raises(NoEndpointAvailable, match=r"usd_day budget \$0\.10 is below"):
            router.completion(MESSAGES, max_tokens=1000)  # $3 of output alone
        assert budget_row(router)["used"] == 0


def test_status_shows_spend_against_the_budget(tmp_path: Path, keys: str) -> None:
    fake_ep = FakeEndpoint("a", completion_tokens=5)
    with FakeProvider([fake_ep]) as fake, router_for(fake, tmp_path, budget="1.00") as router:
        *_, props = router.query(MESSAGES, max_tokens=20)
        router.settle(props["reservation"], {"prompt_tokens": 120, "completion_tokens": 100})
        lines = "\n".join(status_lines(status_data(router), Screen(width=120, color=False)))
    assert "usd_day" in lines and "$0.42/$1.00" in lines
    assert "$0.58 left" in lines or "$0.58" in lines


def test_metrics_count_spend_per_endpoint(tmp_path: Path, keys: str) -> None:
    fake_ep = FakeEndpoint("a", completion_tokens=5)
    with FakeProvider([fake_ep]) as fake, router_for(fake, tmp_path, budget="1.00") as router:
        metrics = Metrics(lambda: 0.0)
        for _ in range(2):
            response = router.completion(MESSAGES, max_tokens=20)
            served = served_by(response)
            assert served is not None and served.usd is not None
            metrics.observe(served.attempts, served, 0.1)
        usage = response.usage
        one = (usage.prompt_tokens * 1000 + usage.completion_tokens * 3000) / 1e6
        text = metrics.text(status_data(router))
    assert metrics.requests()["endpoints"]["a"]["usd"] == pytest.approx(2 * one)
    assert f'llamux_spend_usd_total{{endpoint="a"}} {2 * one:.6f}'.rstrip("0") in text
    assert 'llamux_quota_limit{scope="a",rule="usd_day"} 1' in text
