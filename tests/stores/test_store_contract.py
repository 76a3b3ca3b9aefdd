"""One contract, every store: the same tests run against memory and SQLite (and Redis)."""

from __future__ import annotations

import threading

import pytest

from llamux._policy.passing import Candidate
from llamux._policy.performance import ALPHA, Sample
from llamux._policy.quota import Cost, Refusal, Reservation
from llamux._policy.rules import Scope, rules_from_limits
from llamux._stores import QuotaStore

from conftest import store_used

T0 = 1_767_225_600.0


def scope(key: str = "ep", **limits: int) -> Scope:
    return Scope(key, rules_from_limits(limits.items(), {}))


def test_admits_up_to_the_limit_then_refuses_with_retry_at(store: QuotaStore) -> None:
    ep = scope(rpm=3)
    for i in range(3):
        assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + i), Reservation)
    refusal = store.reserve("ep", [ep], Cost(1), T0 + 3)
    assert isinstance(refusal, Refusal)
    assert (refusal.rule, refusal.used, refusal.limit) == ("rpm", 3, 3)
    assert refusal.retry_at == T0 + 61
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 60.9), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1), refusal.retry_at), Reservation)


def test_reserve_is_all_or_nothing_across_scopes(store: QuotaStore) -> None:
    ep = scope("ep", rpm=10, tpm=1000)
    pool = scope("pool:p", rpm=1)
    assert isinstance(store.reserve("ep", [ep, pool], Cost(100), T0), Reservation)
    refusal = store.reserve("ep", [ep, pool], Cost(100), T0 + 1)
    assert isinstance(refusal, Refusal) and refusal.scope == "pool:p"
    assert store_used(store, ep, T0 + 1) == {"rpm": 1, "tpm": 100}  # nothing charged by the refusal


def test_settle_corrects_tokens_once(store: QuotaStore) -> None:
    ep = scope(tpm=1000, tpd=5000)
    r = store.reserve("ep", [ep], Cost(600), T0)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 250, T0 + 2)
    assert store_used(store, ep, T0 + 2) == {"tpm": 250, "tpd": 250}
    assert not store.settle(r.id, 999, T0 + 3)  # a second settle changes nothing
    assert store_used(store, ep, T0 + 3) == {"tpm": 250, "tpd": 250}
    # the freed tokens are usable at once
    assert isinstance(store.reserve("ep", [ep], Cost(750), T0 + 3), Reservation)


def test_settle_above_the_estimate_is_recorded(store: QuotaStore) -> None:
    ep = scope(tpm=1000)
    r = store.reserve("ep", [ep], Cost(100), T0)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 400, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"tpm": 400}


def test_release_gives_everything_back(store: QuotaStore) -> None:
    ep = scope(rpm=1, tpm=100)
    r = store.reserve("ep", [ep], Cost(100), T0)
    assert isinstance(r, Reservation)
    assert store.release(r.id, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"rpm": 0, "tpm": 0}
    assert not store.release(r.id, T0 + 1)
    assert isinstance(store.reserve("ep", [ep], Cost(100), T0 + 1), Reservation)


def test_cool_down_blocks_until_deadline_and_later_wins(store: QuotaStore) -> None:
    ep = scope(rpm=100)
    store.cool_down("ep", T0 + 30, "429 from provider", "cooldown", T0)
    store.cool_down("ep", T0 + 10, "shorter", "cooldown", T0)  # does not shorten it
    refusal = store.reserve("ep", [ep], Cost(1), T0 + 5)
    assert isinstance(refusal, Refusal) and refusal.retry_at == T0 + 30
    assert "429 from provider" in refusal.reason
    assert set(store.cooldowns(T0 + 5)) == {"ep"}
    assert store.cooldowns(T0 + 30) == {}
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 30), Reservation)
    store.cool_down("ep", T0 + 100, "parked", "parked", T0 + 31)
    assert store.cooldowns(T0 + 31)["ep"].kind == "parked"


def test_usage_reports_next_free_time(store: QuotaStore) -> None:
    ep = scope(rpm=5, tpd=1000)
    store.reserve("ep", [ep], Cost(10), T0 + 0.5)
    store.reserve("ep", [ep], Cost(20), T0 + 20.5)
    rows = {u.rule.name: u for u in store.usage([ep], T0 + 30)}
    assert rows["rpm"].used == 2 and rows["rpm"].remaining == 3
    assert rows["rpm"].next_free_at == T0 + 61
    assert rows["tpd"].used == 30 and rows["tpd"].next_free_at == T0 + 86400 + 900
    assert store.usage([ep], T0 + 200)[0].used == 0


def test_windows_free_capacity_and_old_buckets_do_not_count(store: QuotaStore) -> None:
    ep = scope(rpm=2, rph=3)
    for t in (0, 1):
        assert isinstance(store.reserve("ep", [ep], Cost(0), T0 + t), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(0), T0 + 61), Reservation)
    refusal = store.reserve("ep", [ep], Cost(0), T0 + 200)
    assert isinstance(refusal, Refusal) and refusal.rule == "rph"
    assert refusal.retry_at == T0 + 3600 + 60


def test_reset_one_scope_or_all(store: QuotaStore) -> None:
    a, b = scope("a", rpm=1), scope("b", rpm=1)
    store.reserve("a", [a], Cost(0), T0)
    store.reserve("b", [b], Cost(0), T0)
    store.cool_down("a", T0 + 99, "x", "cooldown", T0)
    store.reset("a")
    assert store_used(store, a, T0) == {"rpm": 0} and store_used(store, b, T0) == {"rpm": 1}
    assert store.cooldowns(T0) == {}
    store.reset()
    assert store_used(store, b, T0) == {"rpm": 0}


def test_calendar_rule_counts_the_period(store: QuotaStore) -> None:
    ep = Scope("ep", rules_from_limits([("rpd", 1)], {"rpd": "UTC"}))
    assert isinstance(store.reserve("ep", [ep], Cost(0), T0 + 86399), Reservation)
    refusal = store.reserve("ep", [ep], Cost(0), T0 + 86399.5)
    assert isinstance(refusal, Refusal) and refusal.retry_at == T0 + 86400
    assert isinstance(store.reserve("ep", [ep], Cost(0), T0 + 86400), Reservation)


def test_a_late_settle_counts_the_request_from_then_on(store: QuotaStore) -> None:
    # the caller learned the outcome only at T0 + 501: the provider may have counted the
    # request as late as that, so it counts for one window from then
    ep = scope(rpm=2, tpm=100)
    r = store.reserve("ep", [ep], Cost(5), T0)
    assert isinstance(r, Reservation)
    store.reserve("ep", [ep], Cost(5), T0 + 500)  # prunes the old bucket
    assert store.settle(r.id, 50, T0 + 501)
    assert store_used(store, ep, T0 + 501) == {"rpm": 2, "tpm": 55}
    assert store_used(store, ep, T0 + 562) == {"rpm": 0, "tpm": 0}


def test_threads_never_over_admit(store: QuotaStore) -> None:
    ep = scope(rpm=50, tpm=10_000)
    admitted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            if isinstance(store.reserve("ep", [ep], Cost(150), T0 + 1), Reservation):
                with lock:
                    admitted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50  # 50 requests * 150 tokens = 7,500 <= 10,000
    assert store_used(store, ep, T0 + 1) == {"rpm": 50, "tpm": 7500}


def test_absorb_counts_usage_the_provider_reported(store: QuotaStore) -> None:
    ep = scope(rpm=5, tpm=100)
    store.absorb("ep", "minute", 3, 60, T0)
    assert store_used(store, ep, T0) == {"rpm": 3, "tpm": 60}
    refusal = store.reserve("ep", [ep], Cost(50), T0 + 1)
    assert isinstance(refusal, Refusal) and refusal.rule == "tpm"
    assert isinstance(store.reserve("ep", [ep], Cost(50), T0 + 61), Reservation)


def test_performance_is_a_moving_average(store: QuotaStore) -> None:
    assert store.performance(["ep"]) == {}
    store.record("ep", Sample(latency=1.0, tokens_per_second=100.0))
    store.record("ep", Sample(latency=2.0, ttft=0.5))
    got = store.performance(["ep", "other"])
    assert set(got) == {"ep"}
    perf = got["ep"]
    assert perf.samples == 2
    assert perf.latency == pytest.approx(1.0 + ALPHA * (2.0 - 1.0))
    assert perf.tokens_per_second == 100.0 and perf.ttft == 0.5
    store.reset("ep")
    assert store.performance(["ep"]) == {}


def test_turn_counts_atomically(store: QuotaStore) -> None:
    assert [store.turn("rr") for _ in range(3)] == [1, 2, 3]
    assert store.turn("other") == 1
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            value = store.turn("shared")
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 101))


# -- the provider's clock: charges held in flight, moved when the outcome is known ---------


def test_an_in_flight_charge_counts_until_its_outcome_is_known(store: QuotaStore) -> None:
    ep = scope(rpm=1)
    r = store.reserve("ep", [ep], Cost(1), T0, flight=300)
    assert isinstance(r, Reservation)
    # no outcome after 100 s: the provider may still receive it, so it still counts
    refusal = store.reserve("ep", [ep], Cost(1), T0 + 100)
    assert isinstance(refusal, Refusal) and refusal.rule == "rpm"
    assert refusal.retry_at == T0 + 161  # the soonest: if the outcome came now
    assert store.settle(r.id, 1, T0 + 100)  # the answer began at T0 + 100
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 160.9), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 161), Reservation)


def test_a_reservation_whose_process_died_counts_until_flight_and_a_window(
    store: QuotaStore,
) -> None:
    ep = scope(rpm=1)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0, flight=100), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 160.9), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 161), Reservation)


def test_settle_moves_the_charge_to_the_outcome_once(store: QuotaStore) -> None:
    ep = scope(rpm=1, tpm=100)
    r = store.reserve("ep", [ep], Cost(80), T0, flight=300)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 30, T0 + 2)  # answered at T0 + 2
    assert store_used(store, ep, T0 + 2) == {"rpm": 1, "tpm": 30}
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 62.9), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 63), Reservation)


def test_a_stream_settles_at_its_end_with_the_moment_of_its_first_chunk(
    store: QuotaStore,
) -> None:
    ep = scope(rpm=1, tpm=100)
    r = store.reserve("ep", [ep], Cost(80), T0, flight=300)
    assert isinstance(r, Reservation)
    assert store_used(store, ep, T0 + 40) == {"rpm": 1, "tpm": 80}  # still streaming: held
    assert store.settle(r.id, 90, T0 + 1)  # ended at T0 + 40, its first chunk at T0 + 1
    assert store_used(store, ep, T0 + 40) == {"rpm": 1, "tpm": 90}
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 61.9), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 62), Reservation)
    assert not store.settle(r.id, 90, T0 + 62)


def test_releasing_an_in_flight_charge_frees_it_at_once(store: QuotaStore) -> None:
    ep = scope(rpm=1, tpm=100)
    r = store.reserve("ep", [ep], Cost(80), T0, flight=300)
    assert isinstance(r, Reservation)
    assert store.release(r.id, T0 + 1)
    assert store_used(store, ep, T0 + 1) == {"rpm": 0, "tpm": 0}
    assert isinstance(store.reserve("ep", [ep], Cost(100), T0 + 1), Reservation)


def test_now_may_be_a_clock_read_inside_the_atomic_step(store: QuotaStore) -> None:
    ep = scope(rpm=1)
    reads: list[float] = []

    def clock() -> float:
        reads.append(T0 + 59.5)
        return reads[-1]

    assert isinstance(store.reserve("ep", [ep], Cost(1), T0), Reservation)
    refusal = store.reserve("ep", [ep], Cost(1), clock)
    assert reads and isinstance(refusal, Refusal) and refusal.retry_at == T0 + 61
    r = store.reserve("ep", [ep], Cost(1), lambda: T0 + 61)
    assert isinstance(r, Reservation) and r.created == T0 + 61


def test_the_oldest_partial_bucket_still_counts_when_older_ones_are_pruned(
    store: QuotaStore,
) -> None:
    # T0 - 0.5 lands in a bucket that is stale at T0 + 60.2; T0 + 0.5 lands exactly in the
    # oldest bucket still counted then: pruning the stale one must keep it
    ep = scope(rpm=2)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 - 0.5), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 0.5), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 60.2), Reservation)
    refusal = store.reserve("ep", [ep], Cost(1), T0 + 60.3)
    assert isinstance(refusal, Refusal) and refusal.used == 2


def test_rolling_and_calendar_rules_read_the_same_history(store: QuotaStore) -> None:
    rolling = Scope("ep", rules_from_limits([("rpd", 2)], {}))
    calendar = Scope("ep", rules_from_limits([("rpd", 2)], {"rpd": "UTC"}))
    assert isinstance(store.reserve("ep", [rolling], Cost(1), T0 + 10), Reservation)
    assert isinstance(store.reserve("ep", [calendar], Cost(1), T0 + 20), Reservation)
    assert isinstance(store.reserve("ep", [rolling], Cost(1), T0 + 30), Refusal)
    assert isinstance(store.reserve("ep", [calendar], Cost(1), T0 + 40), Refusal)
    # the next UTC day: the calendar rule starts afresh, the rolling one still counts
    assert isinstance(store.reserve("ep", [rolling], Cost(1), T0 + 86400), Refusal)
    assert isinstance(store.reserve("ep", [calendar], Cost(1), T0 + 86400), Reservation)


# -- one store step per decision, one after a call -------------------------------------------


def test_reserve_first_admits_the_first_that_fits_and_explains_the_ones_passed(
    store: QuotaStore,
) -> None:
    full, cool, free, spare = (
        scope("full", rpm=1),
        scope("cool", rpm=5),
        scope("free", rpm=5),
        scope("spare", rpm=5),
    )
    assert isinstance(store.reserve("full", [full], Cost(1), T0), Reservation)
    store.cool_down("cool", T0 + 30, "429 from the provider", "cooldown", T0)
    order = [
        Candidate("full", [full], Cost(1)),
        Candidate("cool", [cool], Cost(1)),
        Candidate("free", [free], Cost(1)),
        Candidate("spare", [spare], Cost(1)),
    ]
    pick = store.reserve_first(order, T0 + 1)
    assert pick.reservation is not None and pick.reservation.endpoint == "free"
    assert [(r.endpoint, r.rule) for r in pick.refusals] == [("full", "rpm"), ("cool", None)]
    assert pick.refusals[0].retry_at == T0 + 61 and pick.refusals[1].retry_at == T0 + 30
    assert "429 from the provider" in pick.refusals[1].reason
    assert store_used(store, free, T0 + 1) == {"rpm": 1}
    assert store_used(store, spare, T0 + 1) == {"rpm": 0}  # nothing charged past the pick
    assert store_used(store, cool, T0 + 1) == {"rpm": 0}


def test_reserve_first_with_none_admitting_charges_nothing(store: QuotaStore) -> None:
    a, b = scope("a", rpm=1), scope("b", tpm=10)
    assert isinstance(store.reserve("a", [a], Cost(1), T0), Reservation)
    pick = store.reserve_first([Candidate("a", [a], Cost(1)), Candidate("b", [b], Cost(50))], T0)
    assert pick.reservation is None
    assert [r.endpoint for r in pick.refusals] == ["a", "b"]
    assert pick.refusals[1].retry_at is None  # 50 tokens never fit a 10-token minute
    assert store_used(store, a, T0) == {"rpm": 1} and store_used(store, b, T0) == {"tpm": 0}


def test_reserve_first_reads_the_clock_inside_its_step(store: QuotaStore) -> None:
    ep = scope("ep", rpm=1)
    pick = store.reserve_first([Candidate("ep", [ep], Cost(1))], lambda: T0 + 5)
    assert pick.reservation is not None and pick.reservation.created == T0 + 5


def test_settle_with_a_sample_records_the_speed_in_the_same_step(store: QuotaStore) -> None:
    ep = scope("ep", tpm=1000)
    r = store.reserve("ep", [ep], Cost(100), T0)
    assert isinstance(r, Reservation)
    assert store.settle(r.id, 80, T0 + 1, Sample(latency=0.5, tokens_per_second=40.0, ttft=None))
    measured = store.performance(["ep"])["ep"]
    assert (measured.latency, measured.tokens_per_second, measured.samples) == (0.5, 40.0, 1)
    assert not store.settle(
        r.id, 80, T0 + 2, Sample(latency=9.0, tokens_per_second=None, ttft=None)
    )
    assert store.performance(["ep"])["ep"].samples == 1  # an unknown reservation records nothing


# -- a spent scope is remembered, and forgotten when usage in it is given back -------------


def test_a_spent_scope_admits_again_once_usage_in_it_is_released(store: QuotaStore) -> None:
    ep = scope("ep", rpd=2)
    first = store.reserve("ep", [ep], Cost(1), T0)
    assert isinstance(first, Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 1), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 2), Refusal)  # remembered
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 3), Refusal)
    assert store.release(first.id, T0 + 4)
    assert isinstance(store.reserve("ep", [ep], Cost(1), T0 + 5), Reservation)


def test_a_settle_below_the_estimate_frees_what_was_remembered(store: QuotaStore) -> None:
    ep = scope("ep", tpm=100)
    held = store.reserve("ep", [ep], Cost(80), T0)
    assert isinstance(held, Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(50), T0 + 1), Refusal)  # remembered
    assert store.settle(held.id, 10, T0 + 2)  # the answer used 10 tokens, not 80
    assert isinstance(store.reserve("ep", [ep], Cost(50), T0 + 3), Reservation)


def test_a_remembered_refusal_holds_only_for_costs_at_least_as_large(store: QuotaStore) -> None:
    ep = scope("ep", tpm=100)
    assert isinstance(store.reserve("ep", [ep], Cost(60), T0), Reservation)
    assert isinstance(store.reserve("ep", [ep], Cost(50), T0 + 1), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(70), T0 + 2), Refusal)
    assert isinstance(store.reserve("ep", [ep], Cost(40), T0 + 3), Reservation)


def test_a_remembered_refusal_does_not_bind_other_limits(store: QuotaStore) -> None:
    tight, loose = scope("ep", rpm=1), scope("ep", rpm=5)  # two configs, one quota
    assert isinstance(store.reserve("ep", [tight], Cost(1), T0), Reservation)
    assert isinstance(store.reserve("ep", [tight], Cost(1), T0 + 1), Refusal)
    assert isinstance(store.reserve("ep", [loose], Cost(1), T0 + 2), Reservation)


def test_a_spent_pool_refuses_its_other_endpoints_by_name(store: QuotaStore) -> None:
    pool = scope("pool:p", rpm=1)
    a, b = scope("a", rpm=10), scope("b", rpm=10)
    assert isinstance(store.reserve("a", [a, pool], Cost(1), T0), Reservation)
    assert isinstance(store.reserve("a", [a, pool], Cost(1), T0 + 1), Refusal)
    refusal = store.reserve("b", [b, pool], Cost(1), T0 + 2)
    assert isinstance(refusal, Refusal)
    assert (refusal.endpoint, refusal.scope, refusal.retry_at) == ("b", "pool:p", T0 + 61)
    assert isinstance(store.reserve("b", [b, pool], Cost(1), T0 + 61), Reservation)


# -- limits the providers stated ------------------------------------------------------------


def test_learned_limits_are_kept_per_scope_and_rule_the_latest_winning(store: QuotaStore) -> None:
    assert store.learned(["ep", "other"]) == {}
    store.learn("ep", {"rpd": 1000, "tpm": 8000}, T0, "headers")
    store.learn("ep", {"tpd": 200000}, T0 + 5, "429")
    store.learn("other", {"rpm": 30}, T0 + 6, "probe")
    store.learn("ep", {"rpd": 1400}, T0 + 9, "headers")  # the provider raised it
    got = store.learned(["ep", "other", "unknown"])
    assert set(got) == {"ep", "other"}
    ep = {rule: (k.limit, k.at, k.source) for rule, k in got["ep"].items()}
    assert ep == {
        "rpd": (1400, T0 + 9, "headers"),
        "tpm": (8000, T0, "headers"),
        "tpd": (200000, T0 + 5, "429"),
    }
    assert got["other"]["rpm"].limit == 30
    assert store.learned([]) == {}


def test_reset_forgets_learned_limits_of_that_scope_or_of_all(store: QuotaStore) -> None:
    store.learn("ep", {"rpm": 5}, T0, "headers")
    store.learn("other", {"rpm": 6}, T0, "headers")
    store.reset("ep")
    assert set(store.learned(["ep", "other"])) == {"other"}
    store.reset()
    assert store.learned(["ep", "other"]) == {}
