"""The store contract for dollar budgets (``usd_day``, ``usd_month``), on every store with a
fake clock: a request's price (micro-dollars, ``Cost.usd``) is admitted only while it fits
the budget, a refusal charges nothing, settle re-prices from the real usage, release gives
it back, and day and month budgets follow their windows (rolling or calendar)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from llamux._policy.quota import Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import QuotaStore

from conftest import store_used

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86400.0
DOLLAR = 1_000_000  # micro-dollars
LA = ZoneInfo("America/Los_Angeles")


def budget(key: str = "ep", resets: dict[str, str] | None = None, **limits: int) -> Scope:
    return Scope(key, rules_from_limits(limits.items(), resets or {}))


def test_admits_until_the_budget_then_refuses_with_a_retry_time(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    for i in range(2):
        assert isinstance(store.reserve("ep", [ep], Cost(10, usd=400_000), T0 + i), Reservation)
    refusal = store.reserve("ep", [ep], Cost(10, usd=400_000), T0 + 2)
    assert isinstance(refusal, Refusal)
    assert (refusal.rule, refusal.used, refusal.limit) == ("usd_day", 800_000, DOLLAR)
    assert refusal.requested == 400_000
    assert refusal.retry_at == T0 + DAY + 900  # the oldest bucket counts whole
    assert "usd_day $0.80/$1.00 used, $0.40 more needed" in refusal.reason
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=200_000), T0 + 3), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=1), T0 + 4), Refusal)
    assert store_used(store, ep, T0 + 4) == {"usd_day": DOLLAR}
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=1), T0 + DAY + 900), Reservation)


def test_a_refusal_charges_nothing(store: QuotaStore) -> None:
    ep = budget(rpm=10, usd_day=DOLLAR)
    pool = budget("pool:p", rpd=1, usd_day=5 * DOLLAR)
    assert isinstance(store.reserve("ep", [ep, pool], Cost(5, usd=300_000), T0), Reservation)
    by_pool = store.reserve("ep", [ep, pool], Cost(5, usd=300_000), T0 + 1)
    assert isinstance(by_pool, Refusal) and by_pool.scope == "pool:p" and by_pool.rule == "rpd"
    by_budget = store.reserve("ep", [ep], Cost(5, usd=800_000), T0 + 2)
    assert isinstance(by_budget, Refusal) and by_budget.rule == "usd_day"
    assert store_used(store, ep, T0 + 2) == {"rpm": 1, "usd_day": 300_000}
    assert store_used(store, pool, T0 + 2) == {"rpd": 1, "usd_day": 300_000}


def test_a_price_above_the_budget_never_fits(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    refusal = store.reserve("ep", [ep], Cost(5, usd=DOLLAR + 1), T0)
    assert isinstance(refusal, Refusal) and refusal.retry_at is None
    assert "usd_day budget $1.00 is below the $1.00 requested" in refusal.reason
    assert store_used(store, ep, T0) == {"usd_day": 0}


def test_settle_reprices_from_the_real_usage(store: QuotaStore) -> None:
    ep = budget(tpd=10_000, usd_day=DOLLAR)
    r = store.reserve("ep", [ep], Cost(1000, usd=900_000), T0)
    assert isinstance(r, Reservation) and r.usd == 900_000
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=200_000), T0 + 1), Refusal)
    assert store.settle(r.id, 400, T0 + 2, usd=250_000)
    assert store_used(store, ep, T0 + 2) == {"tpd": 400, "usd_day": 250_000}
    assert not store.settle(r.id, 400, T0 + 3, usd=0)  # once only
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=750_000), T0 + 3), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=1), T0 + 4), Refusal)


def test_settle_without_a_price_keeps_the_estimate(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    r = store.reserve("ep", [ep], Cost(1000, usd=600_000), T0)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 10, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"usd_day": 600_000}


def test_settle_above_the_estimate_is_recorded(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    r = store.reserve("ep", [ep], Cost(10, usd=100_000), T0)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 10, T0 + 1, usd=950_000)
    refusal = store.reserve("ep", [ep], Cost(10, usd=100_000), T0 + 2)
    assert isinstance(refusal, Refusal) and refusal.used == 950_000


def test_an_in_flight_charge_moves_with_its_real_price(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    r = store.reserve("ep", [ep], Cost(10, usd=500_000), T0, flight=3600)
    assert isinstance(r, Reservation)
    assert store_used(store, ep, T0) == {"usd_day": 500_000}  # in flight: it counts now
    assert store.settle(r.id, 10, T0 + 5, usd=100_000)
    assert store_used(store, ep, T0 + 5) == {"usd_day": 100_000}
    assert store_used(store, ep, T0 + DAY + 900) == {"usd_day": 0}  # moved to T0 + 5's bucket


def test_release_gives_the_price_back(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR)
    r = store.reserve("ep", [ep], Cost(10, usd=700_000), T0)
    assert isinstance(r, Reservation)
    assert store.release(r.id, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"usd_day": 0}
    assert isinstance(store.reserve("ep", [ep], Cost(10, usd=DOLLAR), T0 + 2), Reservation)


def test_unpriced_requests_cost_a_budget_nothing(store: QuotaStore) -> None:
    ep = budget(rpd=100, usd_day=DOLLAR)
    for i in range(3):
        assert isinstance(store.reserve("ep", [ep], Cost(10), T0 + i), Reservation)
    assert store_used(store, ep, T0 + 3) == {"rpd": 3, "usd_day": 0}


def test_micro_dollars_add_exactly(store: QuotaStore) -> None:
    ep = budget(usd_day=1000)
    for i in range(1000):
        assert isinstance(store.reserve("ep", [ep], Cost(1, usd=1), T0 + i * 0.01), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=1), T0 + 11), Refusal)
    assert store_used(store, ep, T0 + 11) == {"usd_day": 1000}


def test_a_calendar_day_budget_resets_at_local_midnight(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR, resets={"usd_day": "America/Los_Angeles"})
    evening = datetime(2026, 3, 10, 23, 0, tzinfo=LA).timestamp()
    midnight = datetime(2026, 3, 11, tzinfo=LA).timestamp()
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=DOLLAR), evening), Reservation)
    refusal = store.reserve("ep", [ep], Cost(1, usd=1), evening + 60)
    assert isinstance(refusal, Refusal) and refusal.retry_at == midnight
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=1), midnight - 1), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=DOLLAR), midnight), Reservation)


def test_a_month_budget_holds_for_thirty_days(store: QuotaStore) -> None:
    ep = budget(usd_day=DOLLAR, usd_month=3 * DOLLAR)
    for day in (0, 2, 4):  # each day's budget spent, a rolling day apart
        spend = store.reserve("ep", [ep], Cost(1, usd=DOLLAR), T0 + day * DAY)
        assert isinstance(spend, Reservation)
    refusal = store.reserve("ep", [ep], Cost(1, usd=1), T0 + 10 * DAY)
    assert isinstance(refusal, Refusal) and refusal.rule == "usd_month"
    assert refusal.retry_at == T0 + 30 * DAY + 900
    assert store_used(store, ep, T0 + 10 * DAY) == {"usd_day": 0, "usd_month": 3 * DOLLAR}
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=1), T0 + 30 * DAY + 899), Refusal)
    later = T0 + 30 * DAY + 900
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=DOLLAR), later), Reservation)


def test_a_calendar_month_budget_resets_on_the_first(store: QuotaStore) -> None:
    ep = budget(usd_month=DOLLAR, resets={"usd_month": "UTC"})
    end = T0 + 30 * DAY  # 2026-01-31 00:00 UTC
    first = T0 + 31 * DAY  # 2026-02-01
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=DOLLAR), end), Reservation)
    refusal = store.reserve("ep", [ep], Cost(1, usd=1), end + 3600)
    assert isinstance(refusal, Refusal) and refusal.retry_at == first
    assert isinstance(store.reserve("ep", [ep], Cost(1, usd=DOLLAR), first), Reservation)
