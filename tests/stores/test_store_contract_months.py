"""The store contract for month windows (``rpmo``, ``tpmo``), on every store with a fake clock:
a rolling month is 30 days in 900 s buckets, a calendar month starts at local midnight on
the 1st (DST-aware), both read the same buckets, and old buckets are pruned."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from llamux._policy.quota import Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import QuotaStore

from conftest import store_used

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DAY = 86400.0
LA = ZoneInfo("America/Los_Angeles")


def month(resets: dict[str, str] | None = None, **limits: int) -> Scope:
    return Scope("ep", rules_from_limits(limits.items(), resets or {}))


def local(*when: int) -> float:
    return datetime(*when, tzinfo=LA).timestamp()


def test_a_rolling_month_frees_thirty_days_and_one_bucket_later(store: QuotaStore) -> None:
    ep = month(rpmo=2, tpmo=1000)
    assert isinstance(store.reserve("ep", [ep], Cost(300), T0), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(300), T0 + 10 * DAY), Reservation)
    refusal = store.reserve("ep", [ep], Cost(300), T0 + 20 * DAY)
    assert isinstance(refusal, Refusal) and refusal.rule == "rpmo"
    assert refusal.retry_at == T0 + 30 * DAY + 900  # the oldest bucket counts whole
    assert isinstance(store.reserve("ep", [ep], Cost(300), T0 + 30 * DAY + 899), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(300), T0 + 30 * DAY + 900), Reservation)
    assert store_used(store, ep, T0 + 30 * DAY + 900) == {"rpmo": 2, "tpmo": 600}


def test_tokens_per_month_refuse_what_does_not_fit(store: QuotaStore) -> None:
    ep = month(tpmo=1000)
    r = store.reserve("ep", [ep], Cost(900), T0)
    assert isinstance(r, Reservation)
    refusal = store.reserve("ep", [ep], Cost(200), T0 + DAY)
    assert isinstance(refusal, Refusal) and (refusal.rule, refusal.used) == ("tpmo", 900)
    assert store.settle(r.id, 700, T0 + 1)  # the real usage frees the rest at once
    assert isinstance(store.reserve("ep", [ep], Cost(300), T0 + DAY), Reservation)


def test_a_calendar_month_starts_at_local_midnight_on_the_first_across_dst(
    store: QuotaStore,
) -> None:
    ep = month({"rpmo": "America/Los_Angeles"}, rpmo=1)
    # the last second of February (PST) belongs to February
    assert isinstance(
        store.reserve("ep", [ep], Cost(0), local(2026, 2, 28, 23, 59, 59)), Reservation
    )
    march = local(2026, 3, 1)
    assert isinstance(store.reserve("ep", [ep], Cost(0), march), Reservation)
    # DST began on March 8: April starts at midnight PDT, one hour less after March's start
    refusal = store.reserve("ep", [ep], Cost(0), local(2026, 3, 31, 23, 59))
    assert isinstance(refusal, Refusal) and refusal.retry_at == local(2026, 4, 1)
    assert local(2026, 4, 1) - march == 31 * DAY - 3600
    assert isinstance(store.reserve("ep", [ep], Cost(0), local(2026, 4, 1) - 1), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(0), local(2026, 4, 1)), Reservation)


def test_rolling_and_calendar_months_share_history_longer_than_thirty_days(
    store: QuotaStore,
) -> None:
    rolling = month(rpmo=1)
    calendar = month({"rpmo": "UTC"}, rpmo=1)
    assert isinstance(store.reserve("ep", [calendar], Cost(0), T0 + 600), Reservation)
    assert isinstance(store.reserve("ep", [rolling], Cost(0), T0 + DAY), Refusal)
    # January has 31 days: after 30.5 the rolling month admits (and prunes what it no
    # longer counts), while the calendar month still counts January 1st
    late = T0 + 30.5 * DAY
    assert isinstance(store.reserve("ep", [rolling], Cost(0), late), Reservation)
    refusal = store.reserve("ep", [calendar], Cost(0), late + 60)
    assert isinstance(refusal, Refusal) and refusal.used == 2
    assert refusal.retry_at == T0 + 31 * DAY
    assert store_used(store, calendar, T0 + 31 * DAY) == {"rpmo": 0}


def test_month_buckets_stay_bounded(store: QuotaStore) -> None:
    ep = month(rpmo=10**6)
    now = T0
    for _ in range(200):  # a request every 5 hours for 41 days
        assert isinstance(store.reserve("ep", [ep], Cost(1), now), Reservation)
        now += 5 * 3600
    used = store_used(store, ep, now)["rpmo"]
    assert used == 144  # 30 days and a bucket of requests, 5 hours apart
    stats = getattr(store, "stats", None)
    if stats is not None:  # SQLite: rows older than the longest calendar month are pruned
        assert stats()["buckets"] <= 31 * 24 // 5 + 2
