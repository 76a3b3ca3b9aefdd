"""Windows: buckets, the lag before a charge stops counting, and calendar days (DST)."""

from __future__ import annotations

import pytest

from llamux._policy.window import LATENCY_MARGIN, Window

from conftest import LA, la

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a whole number of days


def test_rolling_buckets_and_lag() -> None:
    minute = Window("minute")
    assert minute.charge_bucket(T0 + 10.2) == T0 + 10
    # a charge just before a bucket edge goes to the next bucket (latency margin)
    assert minute.charge_bucket(T0 + 10.99) == T0 + 11
    assert minute.oldest_counted(T0 + 70.5) == T0 + 10
    # an event at T0+10.2 is dropped at T0+71: exact would be T0+70.2, lag <= 1 s + margin
    assert minute.frees_at(int(T0 + 10)) == T0 + 71
    assert minute.frees_at(int(T0 + 10)) - (T0 + 10.2) - 60 <= 1 + LATENCY_MARGIN
    day = Window("day")
    assert day.bucket_seconds == 900
    assert day.frees_at(int(T0)) == T0 + 86400 + 900


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        ((2026, 6, 15, 13, 0), (2026, 6, 15), (2026, 6, 16)),  # PDT, a 24 h day
        ((2026, 3, 8, 12, 0), (2026, 3, 8), (2026, 3, 9)),  # spring forward: 23 h
        ((2026, 11, 1, 23, 59), (2026, 11, 1), (2026, 11, 2)),  # fall back: 25 h
    ],
)
def test_calendar_day_in_los_angeles(
    moment: tuple[int, ...], start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    window = Window("day", LA)
    now = la(*moment)
    bucket = window.charge_bucket(now)
    assert bucket <= now < bucket + 900  # the day's buckets are the rolling day's
    assert window.oldest_counted(now) == la(*start)
    assert window.frees_at(bucket) == la(*end)
    assert window.frees_at(window.oldest_counted(now)) == la(*end)


def test_calendar_day_lengths_follow_dst() -> None:
    window = Window("day", LA)
    spring = window.oldest_counted(la(2026, 3, 8, 12))
    fall = window.oldest_counted(la(2026, 11, 1, 12))
    assert window.frees_at(spring) - spring == 23 * 3600
    assert window.frees_at(fall) - fall == 25 * 3600


def test_unknown_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="minute, hour, day or month"):
        Window("week")
