"""The IETF RateLimit header fields: Structured Field syntax, conservative windows, and the
hints every dialect reads from them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamux._policy.ietf_fields import (
    Quota,
    conservative_window,
    parse_dictionary,
    parse_list,
    standard_quotas,
)
from llamux._policy.ratelimits import DIALECTS, Hint, parse_headers

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z

# --- Structured Fields ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ('"default";q=100;w=10', [("default", {"q": 100, "w": 10})]),
        (
            '"burst";q=100;w=60,"daily";q=1000;w=86400',
            [("burst", {"q": 100, "w": 60}), ("daily", {"q": 1000, "w": 86400})],
        ),
        ('"100-in-1min"; q=100; w=60', [("100-in-1min", {"q": 100, "w": 60})]),  # SP after ;
        ("10;w=1, 100;w=60", [(10, {"w": 1}), (100, {"w": 60})]),
        ("default;q=5", [("default", {"q": 5})]),  # a Token, as drafts -08 and -09 allowed
        (
            '"peruser";q=65535;qu="content-bytes";w=10;pk=:sdfjLJUOUH==:',
            [("peruser", {"q": 65535, "qu": "content-bytes", "w": 10, "pk": b"sdfjLJUOUH=="})],
        ),
        ('"a\\"b\\\\c";flag;x=?0', [('a"b\\c', {"flag": True, "x": False})]),
        ("1.5;w=2", [(1.5, {"w": 2})]),
        ('  "a";r=1  ,\t"b";r=2 ', [("a", {"r": 1}), ("b", {"r": 2})]),
        ("", []),
    ],
)
def test_parse_list(text: str, members: list[tuple[object, dict[str, object]]]) -> None:
    assert parse_list(text) == members


def test_parse_list_skips_what_these_fields_never_use() -> None:
    parsed = parse_list('(1 2);a=1, @1659578233, %"caf%c3%a9", "x";q=1')
    assert parsed is not None
    assert [params for _, params in parsed] == [{"a": 1}, {}, {}, {"q": 1}]
    assert parsed[3][0] == "x"


@pytest.mark.parametrize(
    "text",
    [
        '"a";q=1,',  # a trailing comma
        '"a";q=1,,"b"',
        '"unterminated;q=1',
        '"a";Q=1',  # keys are lower-case
        '"a";q=',
        '"a" "b"',
        '"a";q=1 junk',
        '"\x01"',
        "1234567890123456",  # sixteen digits: more than an Integer holds
        "(1 2",
        ":not base64!:",
    ],
)
def test_parse_list_malformed_is_none(text: str) -> None:
    assert parse_list(text) is None


def test_parse_dictionary() -> None:
    assert parse_dictionary("limit=100, remaining=50, reset=5") == {
        "limit": (100, {}),
        "remaining": (50, {}),
        "reset": (5, {}),
    }
    assert parse_dictionary("a, b=2;x") == {"a": (True, {}), "b": (2, {"x": True})}
    assert parse_dictionary('"default";r=1') is None


@given(st.text(max_size=80))
def test_parsers_never_raise(text: str) -> None:
    parse_list(text)
    parse_dictionary(text)
    standard_quotas({"ratelimit-policy": text, "ratelimit": text, "ratelimit-limit": text})


# --- Conservative windows ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "quota", "expected"),
    [
        (60, 100, ("minute", 100)),
        (3600, 1000, ("hour", 1000)),
        (86400, 5000, ("day", 5000)),
        (1, 10, ("minute", 10)),  # 10 a second: 10 a minute is stricter
        (59, 10, ("minute", 10)),
        (61, 100, ("minute", 50)),  # two minutes cover any 61 s
        (90, 100, ("minute", 50)),
        (120, 100, ("minute", 50)),
        (121, 100, ("minute", 33)),
        (600, 100, ("minute", 10)),
        (7200, 1000, ("hour", 500)),
        (43200, 1000, ("hour", 83)),
        (2 * 86400, 1000, ("day", 500)),
        (30 * 86400, 1000, ("day", 33)),
        (30 * 86400, 10, ("day", 0)),  # fewer than one a day: nothing is safe
        (60, 0, ("minute", 0)),
    ],
)
def test_conservative_window(seconds: float, quota: int, expected: tuple[str, int]) -> None:
    assert conservative_window(seconds, quota) == expected


@pytest.mark.parametrize("seconds", [0, -60, math.nan, math.inf])
def test_conservative_window_of_no_window(seconds: float) -> None:
    assert conservative_window(seconds, 100) is None


LENGTHS = {"minute": 60, "hour": 3600, "day": 86400}


@given(st.integers(min_value=1, max_value=10 * 86400), st.integers(min_value=0, max_value=10**9))
def test_conservative_window_never_allows_more(seconds: int, quota: int) -> None:
    mapped = conservative_window(seconds, quota)
    assert mapped is not None
    window, limit = mapped
    length = LENGTHS[window]
    # any `seconds` long interval is covered by ceil(seconds / length) windows of llamux
    assert limit * math.ceil(seconds / length) <= quota
    assert limit <= quota
    if seconds in LENGTHS.values():
        assert (length, limit) == (seconds, quota)


# --- What the fields state -----------------------------------------------------------------


def hints(headers: dict[str, str], dialect: str = "openai", now: float = NOW) -> list[Hint]:
    return list(parse_headers(dialect, headers, now))


def test_current_draft_policies_and_service_limits() -> None:
    headers = {
        "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
        "RateLimit": '"burst";r=95;t=25, "daily";r=990;t=3600',
    }
    assert hints(headers) == [
        Hint("requests", "minute", 100, 95, NOW + 25),
        Hint("requests", "day", 1000, 990, NOW + 3600),
    ]


def test_a_policy_without_a_service_limit_states_its_limit() -> None:
    headers = {"RateLimit-Policy": '"permin";q=50;w=60,"perhr";q=1000;w=3600'}
    assert hints(headers) == [
        Hint("requests", "minute", 50, None, None),
        Hint("requests", "hour", 1000, None, None),
    ]


def test_windows_between_llamuxs_map_conservatively() -> None:
    headers = {"RateLimit-Policy": '"a";q=100;w=120, "b";q=10;w=1', "RateLimit": '"a";r=80;t=7'}
    assert hints(headers) == [
        Hint("requests", "minute", 50, 50, NOW + 7),  # remaining capped at the mapped limit
        Hint("requests", "minute", 10, None, None),
    ]


def test_units() -> None:
    headers = {
        "RateLimit-Policy": (
            '"req";q=30;w=60;qu="requests", "tok";q=6000;qu="tokens";w=60, '
            '"in";q=5000;qu="input-tokens";w=60, "bytes";q=65535;qu="content-bytes";w=10, '
            '"conc";q=5;qu="concurrent-requests", "odd";q=5;qu="neurons";w=86400'
        ),
        "RateLimit": '"tok";r=5000;t=30, "bytes";r=100;t=1, "conc";r=0',
    }
    assert hints(headers) == [
        Hint("tokens", "minute", 6000, 5000, NOW + 30),
        Hint("requests", "minute", 30, None, None),
        Hint("tokens", "minute", 5000, None, None),
    ]


def test_a_service_limit_without_its_policy_reads_as_requests_by_its_reset() -> None:
    assert hints({"RateLimit": '"default";r=50;t=30'}) == [
        Hint("requests", "minute", None, 50, NOW + 30)
    ]
    assert hints({"RateLimit": '"daily";r=0;t=40000'}) == [
        Hint("requests", "day", None, 0, NOW + 40000)
    ]
    assert hints({"RateLimit": '"default";r=999;pk=:dHJpYWwxMjEzMjM=:'}) == [
        Hint("requests", "minute", None, 999, None)
    ]


def test_a_policy_without_a_window_states_no_limit() -> None:
    headers = {"RateLimit-Policy": '"quota";q=1000', "RateLimit": '"quota";r=10;t=1800'}
    assert hints(headers) == [Hint("requests", "hour", None, 10, NOW + 1800)]
    assert hints({"RateLimit-Policy": '"quota";q=1000'}) == []


def test_a_service_limit_needs_its_remaining() -> None:
    assert hints({"RateLimit": '"a";t=30, "b";r=-1, c;r=3'}) == [
        Hint("requests", "minute", None, 3, None)
    ]


def test_fields_sent_twice_are_one_list() -> None:
    joined = {"RateLimit-Policy": '"a";q=10;w=60, "b";q=20;w=3600', "RateLimit": '"b";r=5'}
    assert hints(joined) == [
        Hint("requests", "hour", 20, 5, None),
        Hint("requests", "minute", 10, None, None),
    ]


def test_malformed_fields_are_ignored() -> None:
    headers = {"RateLimit-Policy": '"a";q=10;w=60,', "RateLimit": '"a";r=5;t=1'}
    assert hints(headers) == [Hint("requests", "minute", None, 5, NOW + 1)]
    assert hints({"RateLimit-Policy": "garbage;;", "RateLimit": "\x00"}) == []


def test_older_drafts_trio_with_its_policy() -> None:
    headers = {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "60",
        "RateLimit-Reset": "58",
        "RateLimit-Policy": "10;w=1, 100;w=3600",
    }
    assert hints(headers) == [
        Hint("requests", "minute", 10, None, None),
        Hint("requests", "hour", 100, 60, NOW + 58),
    ]


def test_older_drafts_trio_alone_states_no_limit() -> None:
    headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "50"}
    assert hints(headers) == [Hint("requests", "minute", None, 0, NOW + 50)]
    assert hints({"ratelimit-limit": "100"}) == []  # a limit of no known window states nothing


def test_draft_07_dictionary() -> None:
    headers = {"RateLimit": "limit=100, remaining=50, reset=5", "RateLimit-Policy": "100;w=60"}
    assert hints(headers) == [Hint("requests", "minute", 100, 50, NOW + 5)]


def test_the_trio_may_name_a_current_policy() -> None:
    headers = {
        "RateLimit-Policy": '"hourly";q=500;w=3600',
        "RateLimit-Limit": "500",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "100",
    }
    assert hints(headers) == [
        Hint("requests", "hour", 500, None, None),
        Hint("requests", "hour", 500, 7, NOW + 100),
    ]


STANDARD = {"RateLimit-Policy": '"rpm";q=30;w=60', "RateLimit": '"rpm";r=0;t=12'}


@pytest.mark.parametrize("dialect", [*DIALECTS, "nvidia", ""])
def test_every_dialect_reads_the_standard_fields(dialect: str) -> None:
    assert Hint("requests", "minute", 30, 0, NOW + 12) in hints(STANDARD, dialect)


def test_the_standard_fields_come_after_the_dialects_own() -> None:
    own = {"x-ratelimit-limit-requests": "30", "x-ratelimit-remaining-requests": "3"}
    assert hints({**own, **STANDARD}) == [
        Hint("requests", "minute", 30, 3, None),
        Hint("requests", "minute", 30, 0, NOW + 12),
    ]


def test_standard_quotas_leave_the_clock_to_the_caller() -> None:
    assert standard_quotas({"ratelimit": '"x";r=1;t=9'}) == (Quota("requests", None, None, 1, "9"),)
    assert standard_quotas({"content-type": "application/json"}) == ()
