"""The shared test helpers of conftest.py, checked where calendars are tricky."""

from __future__ import annotations

import pytest

from conftest import la, midnight_after, utc

HOUR = 3600


@pytest.mark.parametrize(
    ("moment", "midnight"),
    [
        ((2026, 6, 15, 13), (2026, 6, 16)),  # a plain day
        ((2026, 1, 31, 12), (2026, 2, 1)),  # a month end
        ((2026, 4, 30, 23, 59, 59), (2026, 5, 1)),  # a 30-day month's end, a second before
        ((2028, 2, 28, 12), (2028, 2, 29)),  # a leap year's February
        ((2028, 2, 29, 12), (2028, 3, 1)),
        ((2026, 12, 31, 18), (2027, 1, 1)),  # a year end
        ((2026, 6, 1), (2026, 6, 2)),  # at midnight: the next one
    ],
)
def test_midnight_after_is_the_next_local_midnight(
    moment: tuple[int, ...], midnight: tuple[int, ...]
) -> None:
    assert midnight_after(la(*moment)) == la(*midnight)


def test_midnight_after_follows_dst_in_los_angeles() -> None:
    spring = la(2026, 3, 8)  # 2026-03-08 has 23 hours (02:00 PST -> 03:00 PDT)
    assert midnight_after(spring) - spring == 23 * HOUR
    assert midnight_after(la(2026, 3, 8, 12)) == utc(2026, 3, 9, 7)  # PDT midnight
    fall = la(2026, 11, 1)  # 2026-11-01 has 25 hours (02:00 PDT -> 01:00 PST)
    assert midnight_after(fall) - fall == 25 * HOUR
    assert midnight_after(la(2026, 11, 1, 12)) == utc(2026, 11, 2, 8)  # PST midnight


def test_midnight_after_a_month_end_across_a_dst_change() -> None:
    # late at night on the last day of October, in PDT; the next midnight is still PDT
    assert midnight_after(la(2026, 10, 31, 23, 30)) == utc(2026, 11, 1, 7)
    # UTC keeps its own calendar
    assert midnight_after(utc(2026, 1, 31, 23), "UTC") == utc(2026, 2, 1)


def test_local_times_take_the_earlier_of_an_ambiguous_hour() -> None:
    assert la(2026, 11, 1, 1, 30) == utc(2026, 11, 1, 8, 30)  # 01:30 PDT, not PST
    assert la(2026, 1, 15) == utc(2026, 1, 15, 8)  # PST is UTC-8
    assert la(2026, 7, 15) == utc(2026, 7, 15, 7)  # PDT is UTC-7
