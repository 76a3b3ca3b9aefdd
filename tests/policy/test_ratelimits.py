"""The rate-limit feedback parser: every dialect's headers, every reset format, 429 bodies."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamux._config.endpoint import DIALECTS as KNOWN_DIALECTS
from llamux._policy.ietf_fields import FIELD_NAMES
from llamux._policy.rate_limited import RateLimited, classify_429, stated_limits
from llamux._policy.ratelimits import (
    DIALECTS,
    WINDOWS,
    Hint,
    parse_headers,
    parse_reset,
    retry_after,
    window_by_reset,
)
from llamux.testing import go_duration

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OPENROUTER_RESET_MS = "1791331200000"  # 2026-10-07T00:00:00Z, a UTC midnight
OPENROUTER_RESET = 1_791_331_200.0


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


ANTHROPIC_NOW = epoch("2025-08-21T12:40:00+00:00")
ANTHROPIC_RESET = epoch("2025-08-21T12:40:59+00:00")


# --- parse_reset ---------------------------------------------------------------------------

RESETS = [
    # Go durations (OpenAI, Groq): time until fully refilled
    ("1s", NOW + 1),
    ("6m0s", NOW + 360),
    ("12ms", NOW + 0.012),
    ("9ms", NOW + 0.009),
    ("1m30s", NOW + 90),
    ("2m59.56s", NOW + 179.56),
    ("7.66s", NOW + 7.66),
    ("1h2m3s", NOW + 3723),
    ("0s", NOW),
    ("1.5µs", NOW + 1.5e-6),
    ("500ns", NOW + 5e-7),
    (".5s", NOW + 0.5),
    # plain float seconds until reset (Cerebras, Mistral's ratelimitbysize-reset)
    ("33011.382867097855", NOW + 33011.382867097855),
    ("11.382867097854614", NOW + 11.382867097854614),
    ("42", NOW + 42),
    ("  30 ", NOW + 30),
    ("0", NOW),
    # RFC 3339 / ISO 8601
    ("2025-08-21T12:40:59Z", ANTHROPIC_RESET),
    ("2025-08-21t12:40:59z", ANTHROPIC_RESET),
    ("2025-08-21T14:40:59+02:00", ANTHROPIC_RESET),
    ("2025-08-21T12:40:59.250Z", ANTHROPIC_RESET + 0.25),
    ("2025-08-21T12:40:59.123456789Z", ANTHROPIC_RESET + 0.123456),
    ("2025-08-21T05:40:59-07:00", ANTHROPIC_RESET),
    ("2025-08-21T12:40:59", ANTHROPIC_RESET),  # naive: UTC
    ("2025-08-21 12:40:59+00:00", ANTHROPIC_RESET),
    # epoch milliseconds vs epoch seconds vs seconds from now, by magnitude
    (OPENROUTER_RESET_MS, OPENROUTER_RESET),
    ("1791331200", OPENROUTER_RESET),
    ("1791331200.5", OPENROUTER_RESET + 0.5),
    ("1767225660", NOW + 60),
    ("86400", NOW + 86400),
    # HTTP-date
    ("Wed, 07 Oct 2026 00:00:00 GMT", OPENROUTER_RESET),
    # a header sent twice, joined by a comma
    ("7.66s, 7.66s", NOW + 7.66),
]


@pytest.mark.parametrize(("value", "expected"), RESETS)
def test_parse_reset_formats(value: str, expected: float) -> None:
    got = parse_reset(value, NOW)
    assert got is not None
    assert got == pytest.approx(expected, abs=1e-6)


GARBAGE_RESETS = [
    "",
    "   ",
    "soon",
    "1x",
    "1..2s",
    "m",
    "-5",
    "-1s",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "2025-13-45T00:00:00Z",
    "99999999h",  # 11,000 years ahead
    "999999999",  # not above 1e9: a delay, of 31 years
    "99999999999",  # epoch seconds in the year 5138
    "99999999999999999",  # epoch milliseconds in the year 3170843
    "Wed, 99 Foo 2026 00:00:00 GMT",
    "1000000001",  # epoch seconds in 2001: a reset 25 years ago
    "2000-01-01T00:00:00Z",
    "1" * 5000,
]


@pytest.mark.parametrize("value", GARBAGE_RESETS)
def test_parse_reset_garbage_is_none(value: str) -> None:
    assert parse_reset(value, NOW) is None


@pytest.mark.parametrize("value", [None, 5, 1.5, b"1s", ["1s"]])
def test_parse_reset_non_text_is_none(value: Any) -> None:
    assert parse_reset(value, NOW) is None


def test_parse_reset_magnitude_boundaries() -> None:
    now = 1_000_000_000.0
    assert parse_reset("1000000001", now) == 1_000_000_001.0  # above 1e9: epoch seconds
    assert parse_reset("1000000000", now) is None  # exactly 1e9: a delay, of 31 years
    assert parse_reset("100000000001", 1e8) == pytest.approx(100_000_000.001)  # epoch ms
    assert parse_reset("100000000000", 1e11) == 1e11  # exactly 1e11: epoch seconds


def test_parse_reset_returns_a_recent_past_time_as_stated() -> None:
    assert parse_reset("2025-12-31T23:59:00Z", NOW) == NOW - 60
    assert parse_reset("1767225540", NOW) == NOW - 60


@given(st.floats(min_value=0, max_value=30 * 86400, allow_nan=False))
def test_parse_reset_reads_the_fake_providers_go_durations(seconds: float) -> None:
    got = parse_reset(go_duration(seconds), NOW)
    assert got is not None
    assert abs(got - (NOW + seconds)) <= 0.001 + 1e-6


# --- retry_after ---------------------------------------------------------------------------

RETRY_AFTERS: list[tuple[dict[str, str], float | None]] = [
    ({"retry-after-ms": "1500"}, NOW + 1.5),
    ({"retry-after": "24367"}, NOW + 24367),
    ({"retry-after": "2.5"}, NOW + 2.5),
    ({"retry-after": "0"}, NOW),
    ({"retry-after": "Wed, 07 Oct 2026 00:00:00 GMT"}, OPENROUTER_RESET),
    ({"retry-after-ms": "250", "retry-after": "9"}, NOW + 0.25),
    ({"retry-after-ms": "garbage", "retry-after": "9"}, NOW + 9),
    ({"retry-after-ms": "-5", "retry-after": "9"}, NOW + 9),
    ({"Retry-After": "5"}, NOW + 5),
    ({"retry-after": "-3"}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "1e12"}, None),
    ({}, None),
]


@pytest.mark.parametrize(("headers", "expected"), RETRY_AFTERS)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = retry_after(headers, NOW)
    assert got == (None if expected is None else pytest.approx(expected))


# --- parse_headers -------------------------------------------------------------------------

OPENAI = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}
GROQ = {
    "x-ratelimit-limit-requests": "14400",
    "x-ratelimit-limit-tokens": "18000",
    "x-ratelimit-remaining-requests": "14370",
    "x-ratelimit-remaining-tokens": "17997",
    "x-ratelimit-reset-requests": "2m59.56s",
    "x-ratelimit-reset-tokens": "7.66s",
}
CEREBRAS = {
    "x-ratelimit-limit-requests-day": "14400",
    "x-ratelimit-limit-tokens-minute": "60000",
    "x-ratelimit-remaining-requests-day": "14399",
    "x-ratelimit-remaining-tokens-minute": "59000",
    "x-ratelimit-reset-requests-day": "33011.382867097855",
    "x-ratelimit-reset-tokens-minute": "11.382867097854614",
}
MISTRAL = {
    "x-ratelimit-limit-tokens-minute": "500000",
    "x-ratelimit-remaining-tokens-minute": "499990",
    "x-ratelimit-tokens-query-cost": "10",
    "x-ratelimit-limit-req-minute": "60",
    "x-ratelimit-remaining-req-minute": "59",
    "x-ratelimit-limit-tokens-month": "1000000000",
    "x-ratelimit-remaining-tokens-month": "999990000",
}
MISTRAL_OLD = {
    "ratelimitbysize-limit": "500000",
    "ratelimitbysize-remaining": "499000",
    "ratelimitbysize-reset": "42",
    "ratelimitbysize-query-cost": "1000",
    "x-ratelimitbysize-limit-minute": "500000",
    "x-ratelimitbysize-remaining-minute": "499000",
    "x-ratelimitbysize-limit-month": "1000000000",
    "x-ratelimitbysize-remaining-month": "999000000",
}
ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-tokens-limit": "50000",
    "anthropic-ratelimit-tokens-remaining": "48000",
    "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-input-tokens-limit": "40000",
    "anthropic-ratelimit-input-tokens-remaining": "39000",
    "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:59Z",
    "anthropic-ratelimit-output-tokens-limit": "8000",
    "anthropic-ratelimit-output-tokens-remaining": "0",
    "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:40:59Z",
}
OPENROUTER = {
    "x-ratelimit-limit": "50",
    "x-ratelimit-remaining": "0",
    "x-ratelimit-reset": OPENROUTER_RESET_MS,
}
SAMBANOVA = {
    "x-ratelimit-limit-requests": "20",
    "x-ratelimit-remaining-requests": "19",
    "x-ratelimit-reset-requests": "1767225660",
    "x-ratelimit-limit-requests-day": "400",
    "x-ratelimit-remaining-requests-day": "380",
    "x-ratelimit-reset-requests-day": "43200",
}

HEADER_CASES: list[tuple[str, dict[str, str], float, list[Hint]]] = [
    (
        "openai",
        OPENAI,
        NOW,
        [
            Hint("requests", "minute", 60, 59, NOW + 1),
            Hint("tokens", "minute", 150000, 149984, NOW + 360),
        ],
    ),
    (
        "groq",
        GROQ,
        NOW,
        [
            Hint("requests", "day", 14400, 14370, NOW + 179.56),
            Hint("tokens", "minute", 18000, 17997, NOW + 7.66),
        ],
    ),
    (
        "cerebras",
        CEREBRAS,
        NOW,
        [
            Hint("requests", "day", 14400, 14399, NOW + 33011.382867097855),
            Hint("tokens", "minute", 60000, 59000, NOW + 11.382867097854614),
        ],
    ),
    (
        "cerebras",
        {
            "x-ratelimit-limit-requests-minute": "30",
            "x-ratelimit-remaining-requests-minute": "29",
            "x-ratelimit-reset-requests-minute": "45.5",
            "x-ratelimit-limit-requests-hour": "900",
            "x-ratelimit-limit-tokens-hour": "1000000",
            "x-ratelimit-limit-tokens-day": "1000000",
        },
        NOW,
        [
            Hint("requests", "minute", 30, 29, NOW + 45.5),
            Hint("requests", "hour", 900, None, None),
            Hint("tokens", "hour", 1000000, None, None),
            Hint("tokens", "day", 1000000, None, None),
        ],
    ),
    (
        "mistral",
        MISTRAL,
        NOW,
        [
            Hint("tokens", "minute", 500000, 499990, None),
            Hint("requests", "minute", 60, 59, None),
            Hint("tokens", "month", 1000000000, 999990000, None),
        ],
    ),
    (
        "mistral",
        MISTRAL_OLD,
        NOW,
        [
            Hint("tokens", "minute", 500000, 499000, NOW + 42),
            Hint("tokens", "minute", 500000, 499000, None),
            Hint("tokens", "month", 1000000000, 999000000, None),
        ],
    ),
    (
        "anthropic",
        ANTHROPIC,
        ANTHROPIC_NOW,
        [
            Hint("requests", "minute", 50, 49, ANTHROPIC_RESET),
            Hint("tokens", "minute", 50000, 48000, ANTHROPIC_RESET),
            Hint("tokens", "minute", 40000, 39000, ANTHROPIC_RESET),
            Hint("tokens", "minute", 8000, 0, ANTHROPIC_RESET),
        ],
    ),
    # OpenRouter names no window: a reset on a UTC midnight is the day's ...
    ("openrouter", OPENROUTER, NOW, [Hint("requests", "day", 50, 0, OPENROUTER_RESET)]),
    (
        "openrouter",
        OPENROUTER,
        OPENROUTER_RESET - 600,  # ... however near
        [Hint("requests", "day", 50, 0, OPENROUTER_RESET)],
    ),
    # ... otherwise the reset's distance tells: within 2 minutes, a minute's
    (
        "openrouter",
        {
            **OPENROUTER,
            "x-ratelimit-limit": "20",
            "x-ratelimit-reset": str(int(NOW * 1000) + 42_500),
        },
        NOW + 0.5,
        [Hint("requests", "minute", 20, 0, NOW + 42.5)],
    ),
    (
        "openrouter",
        {**OPENROUTER, "x-ratelimit-reset": str(int(NOW * 1000) + 1_800_000 + 123)},
        NOW - 86400 + 1,  # a reset a day and half an hour away, not on a midnight
        [Hint("requests", "day", 50, 0, NOW + 1800.123)],
    ),
    (
        "openrouter",
        {**OPENROUTER, "x-ratelimit-reset": str(int(NOW * 1000) + 1_800_123)},
        NOW,
        [Hint("requests", "hour", 50, 0, NOW + 1800.123)],
    ),
    (
        "sambanova",
        SAMBANOVA,
        NOW,
        [
            Hint("requests", "minute", 20, 19, NOW + 60),
            Hint("requests", "day", 400, 380, NOW + 43200),
        ],
    ),
    ("gemini", OPENAI, NOW, []),
    ("gemini", {}, NOW, []),
    ("openai", {}, NOW, []),
    ("openai", {"content-type": "application/json"}, NOW, []),
]


@pytest.mark.parametrize(("dialect", "headers", "now", "expected"), HEADER_CASES)
def test_parse_headers(
    dialect: str, headers: dict[str, str], now: float, expected: list[Hint]
) -> None:
    got = parse_headers(dialect, headers, now)
    assert isinstance(got, tuple)
    assert len(got) == len(expected)
    for hint, want in zip(got, expected, strict=True):
        assert (hint.metric, hint.window, hint.limit, hint.remaining) == (
            want.metric,
            want.window,
            want.limit,
            want.remaining,
        )
        if want.reset_at is None:
            assert hint.reset_at is None
        else:
            assert hint.reset_at == pytest.approx(want.reset_at)


@pytest.mark.parametrize(
    ("reset_in", "window"),
    [
        (None, "minute"),  # no reset: a count applied where it frees soonest
        (-5, "minute"),
        (0, "minute"),
        (60, "minute"),
        (120, "minute"),  # a minute plus a minute of slack
        (120.5, "hour"),
        (3660, "hour"),
        (3661, "day"),
        (30 * 86400, "day"),
    ],
)
def test_window_by_reset(reset_in: float | None, window: str) -> None:
    assert window_by_reset(None if reset_in is None else NOW + reset_in, NOW) == window


def test_groq_and_openai_read_the_same_names_differently() -> None:
    openai = {(h.metric, h.window) for h in parse_headers("openai", GROQ, NOW)}
    groq = {(h.metric, h.window) for h in parse_headers("groq", GROQ, NOW)}
    assert openai == {("requests", "minute"), ("tokens", "minute")}
    assert groq == {("requests", "day"), ("tokens", "minute")}


def test_unknown_dialect_reads_as_openai() -> None:
    assert parse_headers("nvidia", OPENAI, NOW) == parse_headers("openai", OPENAI, NOW)
    assert parse_headers("Groq", GROQ, NOW) == parse_headers("groq", GROQ, NOW)


def test_header_names_in_any_case() -> None:
    shouting = {name.upper(): value for name, value in GROQ.items()}
    assert parse_headers("groq", shouting, NOW) == parse_headers("groq", GROQ, NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30), ("30, 30", 30), ("29.9", 29), ("-3", None), ("lots", None), ("nan", None)],
)
def test_counts(value: str, expected: int | None) -> None:
    (hint,) = parse_headers(
        "openai", {"x-ratelimit-remaining-requests": value, "x-ratelimit-limit-requests": "60"}, NOW
    )
    assert hint.remaining == expected


def test_all_garbage_limit_gives_no_hint() -> None:
    headers = {
        "x-ratelimit-limit-requests": "many",
        "x-ratelimit-remaining-requests": "-1",
        "x-ratelimit-reset-requests": "later",
    }
    assert parse_headers("openai", headers, NOW) == ()


def test_every_dialect_is_a_table_entry() -> None:
    assert set(DIALECTS) == set(KNOWN_DIALECTS)  # the parser's table has every dialect
    for specs in DIALECTS.values():
        for metric, window, *names in specs:
            assert metric in ("requests", "tokens")
            assert window in WINDOWS
            assert all(name == name.lower() for name in names)


# --- classify_429: bodies ------------------------------------------------------------------

GEMINI_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
    "* Quota exceeded for metric: generativelanguage.googleapis.com/"
    "generate_content_free_tier_requests, limit: 20, model: gemini-2.5-flash"
)
GEMINI_DAY = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
GEMINI_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"


def gemini_error(
    quota_id: str | None, delay: object = None, message: str = GEMINI_MESSAGE
) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if quota_id is not None:
        violation = {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "20",
        }
        details.append(
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}
        )
    details.append(
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        }
    )
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay})
    return {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}


def openrouter_error(name: str, reset_ms: str, limit: str = "50") -> dict[str, Any]:
    return {
        "message": f"Rate limit exceeded: {name}. Add 10 credits to unlock 1000 free model "
        "requests per day",
        "code": 429,
        "metadata": {
            "headers": {
                "X-RateLimit-Limit": limit,
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset_ms,
            },
            "provider_name": None,
        },
    }


GROQ_TPD = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01abc` service "
    "tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99719, Requested 1040. Please "
    "try again in 11m12.48s. Need more tokens? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)
GROQ_RPD = GROQ_TPD.replace("tokens per day (TPD)", "requests per day (RPD)")
GROQ_TPM = (
    "Rate limit reached for model `llama-3.1-8b-instant` in organization `org_01abc` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Used 5000, Requested 2000. Please "
    "try again in 10s. Need more tokens? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)
SAMBANOVA_DAY = (
    "Request would exceed rate limit. Violated duration_s: 86400, current usage: 200001, "
    "limit: 200000"
)


def groq_error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "tokens", "code": "rate_limit_exceeded"}}


CLASSIFY_CASES: list[tuple[str, str, dict[str, str], object, str | None, float | None, str]] = [
    # Gemini: quotaId names the window, RetryInfo the delay
    (
        "gemini day",
        "gemini",
        {},
        {"error": gemini_error(GEMINI_DAY, "37s")},
        "day",
        NOW + 37,
        "Gemini requests per day exhausted",
    ),
    (
        "gemini minute",
        "gemini",
        {},
        {"error": gemini_error(GEMINI_MINUTE, "1.5s")},
        "minute",
        NOW + 1.5,
        "Gemini requests per minute exhausted",
    ),
    (
        "gemini unwrapped",
        "gemini",
        {},
        gemini_error(GEMINI_MINUTE, "37s"),
        "minute",
        NOW + 37,
        "Gemini requests per minute exhausted",
    ),
    (
        "gemini list",
        "gemini",
        {},
        [{"error": gemini_error(GEMINI_DAY, "37s")}],
        "day",
        NOW + 37,
        "Gemini requests per day exhausted",
    ),
    (
        "gemini json text",
        "gemini",
        {},
        json.dumps([{"error": gemini_error(GEMINI_DAY, "2s")}]),
        "day",
        NOW + 2,
        "Gemini requests per day exhausted",
    ),
    (
        "gemini json bytes",
        "gemini",
        {},
        json.dumps(gemini_error(GEMINI_DAY, "2s")).encode(),
        "day",
        NOW + 2,
        "Gemini requests per day exhausted",
    ),
    (
        "gemini delay as a Duration",
        "gemini",
        {},
        {"error": gemini_error(GEMINI_MINUTE, {"seconds": 3, "nanos": 500_000_000})},
        "minute",
        NOW + 3.5,
        "Gemini requests per minute exhausted",
    ),
    (
        "gemini no retry info",
        "gemini",
        {},
        {"error": gemini_error(GEMINI_DAY)},
        "day",
        None,
        "Gemini requests per day exhausted",
    ),
    (
        "gemini retry only in the message",
        "gemini",
        {},
        {
            "error": gemini_error(
                GEMINI_MINUTE, message=GEMINI_MESSAGE + "\nPlease retry in 37.851275404s."
            )
        },
        "minute",
        NOW + 37.851275404,
        "Gemini requests per minute exhausted",
    ),
    (
        "gemini neither",
        "gemini",
        {},
        {"error": gemini_error(None, message="Resource exhausted.")},
        None,
        None,
        "Gemini rate limit hit; no window stated",
    ),
    (
        "gemini tokens per minute",
        "gemini",
        {},
        {"error": gemini_error("GenerateContentInputTokensPerModelPerMinute-FreeTier", "20s")},
        "minute",
        NOW + 20,
        "Gemini tokens per minute exhausted",
    ),
    # OpenRouter: the window is named in the message, headers copied into the body
    (
        "openrouter day, body headers",
        "openrouter",
        {},
        {"error": openrouter_error("free-models-per-day", OPENROUTER_RESET_MS)},
        "day",
        OPENROUTER_RESET,
        "OpenRouter requests per day exhausted",
    ),
    (
        "openrouter day, unwrapped body",
        "openrouter",
        {},
        openrouter_error("free-models-per-day", OPENROUTER_RESET_MS),
        "day",
        OPENROUTER_RESET,
        "OpenRouter requests per day exhausted",
    ),
    (
        "openrouter high balance",
        "openrouter",
        {},
        {
            "error": openrouter_error(
                "free-models-per-day-high-balance", OPENROUTER_RESET_MS, "1000"
            )
        },
        "day",
        OPENROUTER_RESET,
        "OpenRouter requests per day exhausted",
    ),
    (
        "openrouter minute",
        "openrouter",
        {},
        {"error": openrouter_error("free-models-per-min", str(int((NOW + 30) * 1000)), "20")},
        "minute",
        NOW + 30,
        "OpenRouter requests per minute exhausted",
    ),
    (
        "openrouter real headers win",
        "openrouter",
        {
            "x-ratelimit-limit": "20",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int((NOW + 12) * 1000)),
        },
        {"error": openrouter_error("free-models-per-min", str(int((NOW + 99) * 1000)), "20")},
        "minute",
        NOW + 12,
        "OpenRouter requests per minute exhausted",
    ),
    (
        "openrouter upstream retry-after",
        "openrouter",
        {"retry-after": "5"},
        {"error": openrouter_error("free-models-per-min", str(int((NOW + 30) * 1000)), "20")},
        "minute",
        NOW + 5,
        "OpenRouter requests per minute exhausted",
    ),
    (
        "openrouter headers only: a reset at UTC midnight is the day's",
        "openrouter",
        OPENROUTER,
        None,
        "day",
        OPENROUTER_RESET,
        "OpenRouter requests per day exhausted",
    ),
    (
        "openrouter headers only, reset within the minute",
        "openrouter",
        {**OPENROUTER, "x-ratelimit-reset": str(int(NOW * 1000) + 30_000)},
        None,
        "minute",
        NOW + 30,
        "OpenRouter requests per minute exhausted",
    ),
    (
        "openrouter: the body's window beats the reset's distance",
        "openrouter",
        {},
        {"error": openrouter_error("free-models-per-min", OPENROUTER_RESET_MS)},
        "minute",
        OPENROUTER_RESET,
        "OpenRouter requests per minute exhausted",
    ),
    # SambaNova: duration_s in the message
    (
        "sambanova day",
        "sambanova",
        {},
        {"error": {"message": SAMBANOVA_DAY}},
        "day",
        None,
        "SambaNova daily limit exhausted",
    ),
    (
        "sambanova minute",
        "sambanova",
        {},
        {"message": SAMBANOVA_DAY.replace("86400", "60"), "code": 429},
        "minute",
        None,
        "SambaNova per-minute limit exhausted",
    ),
    (
        "sambanova text body",
        "sambanova",
        {},
        SAMBANOVA_DAY,
        "day",
        None,
        "SambaNova daily limit exhausted",
    ),
    # GitHub-style x-ratelimit-type
    (
        "limit type by day",
        "openai",
        {"x-ratelimit-type": "UserByModelByDay", "retry-after": "24367"},
        None,
        "day",
        NOW + 24367,
        "OpenAI daily limit exhausted",
    ),
    (
        "limit type by minute",
        "openai",
        {"x-ratelimit-type": "UserByModelByMinute", "retry-after": "60"},
        None,
        "minute",
        NOW + 60,
        "OpenAI per-minute limit exhausted",
    ),
    # Groq: the requests headers are per day; TPD only shows in the message
    (
        "groq requests header at 0",
        "groq",
        {**GROQ, "x-ratelimit-remaining-requests": "0", "retry-after": "180"},
        groq_error("Rate limit reached"),
        "day",
        NOW + 180,
        "Groq requests per day exhausted",
    ),
    (
        "groq requests header at 0, no retry-after",
        "groq",
        {**GROQ, "x-ratelimit-remaining-requests": "0"},
        None,
        "day",
        NOW + 179.56,
        "Groq requests per day exhausted",
    ),
    (
        "groq tokens per day",
        "groq",
        {**GROQ, "retry-after": "673"},
        groq_error(GROQ_TPD),
        "day",
        NOW + 673,
        "Groq tokens per day exhausted",
    ),
    (
        "groq tokens per day, retry from the message",
        "groq",
        GROQ,
        groq_error(GROQ_TPD),
        "day",
        NOW + 672.48,
        "Groq tokens per day exhausted",
    ),
    (
        "groq requests per day message",
        "groq",
        {},
        groq_error(GROQ_RPD),
        "day",
        NOW + 672.48,
        "Groq requests per day exhausted",
    ),
    (
        "groq tokens per minute",
        "groq",
        {**GROQ, "x-ratelimit-remaining-tokens": "0", "retry-after": "8"},
        groq_error(GROQ_TPM),
        "minute",
        NOW + 8,
        "Groq tokens per minute exhausted",
    ),
    # headers alone: the exhausted hint names the window and the reset
    (
        "cerebras requests per day",
        "cerebras",
        {**CEREBRAS, "x-ratelimit-remaining-requests-day": "0"},
        {"message": "Requests per day limit exceeded", "type": "too_many_requests_error"},
        "day",
        NOW + 33011.382867097855,
        "Cerebras requests per day exhausted",
    ),
    (
        "cerebras day header beats the minute one",
        "cerebras",
        {
            **CEREBRAS,
            "x-ratelimit-remaining-requests-day": "0",
            "x-ratelimit-remaining-tokens-minute": "0",
        },
        None,
        "day",
        NOW + 33011.382867097855,
        "Cerebras requests per day exhausted",
    ),
    (
        "openai tokens per minute",
        "openai",
        {**OPENAI, "x-ratelimit-remaining-tokens": "0"},
        None,
        "minute",
        NOW + 360,
        "OpenAI tokens per minute exhausted",
    ),
    (
        "openai message (TPM)",
        "openai",
        {"retry-after-ms": "1200"},
        {
            "message": "Rate limit reached for gpt-4o in organization org-x on tokens per min "
            "(TPM): Limit 30000, Used 29000, Requested 2000."
        },
        "minute",
        NOW + 1.2,
        "OpenAI tokens per minute exhausted",
    ),
    (
        "anthropic output tokens",
        "anthropic",
        {**ANTHROPIC, "retry-after": "30"},
        {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}},
        "minute",
        ANTHROPIC_NOW + 30,
        "Anthropic tokens per minute exhausted",
    ),
    (
        "mistral month",
        "mistral",
        {**MISTRAL, "x-ratelimit-remaining-tokens-month": "0"},
        None,
        "month",
        None,
        "Mistral tokens per month exhausted",
    ),
    # nothing tells
    ("bare 429", "openai", {}, None, None, None, "OpenAI rate limit hit; no window stated"),
    (
        "bare 429 with retry-after",
        "openai",
        {"retry-after": "20"},
        {"message": "Too many"},
        None,
        NOW + 20,
        "OpenAI rate limit hit; no window stated",
    ),
    (
        "unknown dialect",
        "nvidia",
        {},
        "not json",
        None,
        None,
        "Nvidia rate limit hit; no window stated",
    ),
    (
        "a past retry time is skipped",
        "openai",
        {
            **OPENAI,
            "retry-after": "Wed, 21 Oct 2015 07:28:00 GMT",
            "x-ratelimit-remaining-requests": "0",
        },
        None,
        "minute",
        NOW + 1,
        "OpenAI requests per minute exhausted",
    ),
]


@pytest.mark.parametrize(
    ("dialect", "headers", "body", "window", "retry_at", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CLASSIFY_CASES],
)
def test_classify_429(
    dialect: str,
    headers: dict[str, str],
    body: object,
    window: str | None,
    retry_at: float | None,
    reason: str,
) -> None:
    now = ANTHROPIC_NOW if dialect == "anthropic" else NOW
    got = classify_429(dialect, headers, body, now)
    assert got.window == window
    assert got.retry_at == (None if retry_at is None else pytest.approx(retry_at))
    assert got.reason == reason


def test_gemini_day_and_minute_violations_together_mean_day() -> None:
    error = gemini_error(GEMINI_MINUTE, "10s")
    error["details"][0]["violations"].append({"quotaId": GEMINI_DAY})
    assert classify_429("gemini", {}, {"error": error}, NOW).window == "day"


def test_the_body_rules_apply_whatever_the_dialect() -> None:
    got = classify_429("openai", {}, [{"error": gemini_error(GEMINI_DAY, "37s")}], NOW)
    assert got == RateLimited("day", NOW + 37, "OpenAI requests per day exhausted")


# --- never raises ---------------------------------------------------------------------------

KNOWN_NAMES = sorted(
    {name for specs in DIALECTS.values() for spec in specs for name in spec[2:]}
    | {"retry-after", "retry-after-ms", "x-ratelimit-type", "X-RateLimit-Reset"}
    | set(FIELD_NAMES)
    | {"RateLimit-Policy"}
)
STRUCTURED = st.lists(
    st.sampled_from(
        ['"a"', '"b"', "c", "10", "-3", "1.5", ":AA==:", "?1", "@12", "(1 2)", ""]
    ).flatmap(
        lambda item: st.lists(
            st.sampled_from(["q", "w", "r", "t", "qu", "pk", "Q", "limit"]).flatmap(
                lambda key: st.sampled_from(
                    ["=60", "=0", "=-1", '="requests"', '="tokens"', '="content-bytes"', "", "=x"]
                ).map(lambda value: f";{key}{value}")
            ),
            max_size=4,
        ).map(lambda params: item + "".join(params))
    ),
    max_size=3,
).map(", ".join)
VALUES = st.one_of(
    st.text(max_size=30),
    STRUCTURED,
    st.sampled_from(["0", "-1", "nan", "inf", "1e400", "", "0s", "2m59.56s", OPENROUTER_RESET_MS]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
    st.builds(go_duration, st.floats(min_value=0, max_value=1e7)),
)
HEADERS = st.dictionaries(st.sampled_from(KNOWN_NAMES) | st.text(max_size=20), VALUES, max_size=12)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        [
            GEMINI_DAY,
            GEMINI_MINUTE,
            "free-models-per-day",
            "duration_s: 60",
            SAMBANOVA_DAY,
            GROQ_TPD,
            "on requests per min (RPM): Limit 99999999999999999999999, Used 1",
            "rate limit for your organization of 1,000,000 output tokens per day",
            "Violated duration_s: 0, current usage: 5, limit: 1",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "error",
                    "message",
                    "metadata",
                    "headers",
                    "details",
                    "violations",
                    "quotaId",
                    "quotaValue",
                    "retryDelay",
                    "seconds",
                    "nanos",
                ]
            )
            | st.text(max_size=10),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
BODIES = JSON | JSON.map(json.dumps) | st.text(max_size=60) | st.binary(max_size=30)
DIALECT_NAMES = st.sampled_from([*DIALECTS, "nvidia"]) | st.text(max_size=10)


def assert_time(value: float | None) -> None:
    assert value is None or (isinstance(value, float) and math.isfinite(value))


@given(DIALECT_NAMES, HEADERS, BODIES, st.floats(min_value=0, max_value=4e9))
def test_never_raises(dialect: str, headers: dict[str, str], body: object, now: float) -> None:
    for hint in (
        *parse_headers(dialect, headers, now),
        *stated_limits(dialect, headers, body, now),
    ):
        assert hint.metric in ("requests", "tokens")
        assert hint.window in WINDOWS
        assert hint.limit is None or hint.limit >= 0
        assert hint.remaining is None or hint.remaining >= 0
        assert hint.used is None or hint.used >= 0
        assert_time(hint.reset_at)
    assert_time(retry_after(headers, now))
    for value in headers.values():
        assert_time(parse_reset(value, now))
    got = classify_429(dialect, headers, body, now)
    assert got.window is None or got.window in WINDOWS
    assert got.retry_at is None or got.retry_at >= now
    assert_time(got.retry_at)
    assert got.reason


@given(st.text(), st.floats(min_value=0, max_value=4e9))
def test_parse_reset_never_raises(value: str, now: float) -> None:
    assert_time(parse_reset(value, now))
