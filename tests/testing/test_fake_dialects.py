"""The fake provider's rate-limit dialects, hourly/daily limits and calendar days.

Driven through the real openai SDK with a hand-driven clock: nothing sleeps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from zoneinfo import ZoneInfo

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llamux._policy.ratelimits import Hint, parse_headers
from llamux.testing import (
    DIALECTS,
    FakeChat,
    FakeEndpoint,
    FakeEndpointState,
    FakeProvider,
    FakeStats,
    day_bounds,
)

from conftest import HI, LA, local, utc


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limit_headers(headers: Any) -> dict[str, str]:
    """The rate-limit headers (and retry-after) of an answer, names lowercased."""
    pairs = ((k.lower(), v) for k, v in headers.items())
    return {k: v for k, v in pairs if "ratelimit" in k or k == "retry-after"}


class Rig:
    """One fake endpoint named "e", its provider, an SDK client and the clock."""

    def __init__(self, fp: FakeProvider, client: openai.OpenAI, clock: Clock) -> None:
        self.fp, self.client, self.clock = fp, client, clock

    def ok(self, **kw: Any) -> dict[str, str]:
        response = self.client.chat.completions.with_raw_response.create(
            model="m", messages=kw.pop("messages", HI), **kw
        )
        assert response.http_response.status_code == 200
        return limit_headers(response.headers)

    def refused(self, **kw: Any) -> openai.RateLimitError:
        with pytest.raises(openai.RateLimitError) as info:
            self.client.chat.completions.create(model="m", messages=kw.pop("messages", HI), **kw)
        return info.value

    def at(self, when: float) -> Rig:
        self.clock.now = when
        return self


@pytest.fixture(scope="module")
def base_client() -> Iterator[openai.OpenAI]:
    """One SDK client (and connection pool) for the module: building one costs ~20 ms."""
    with openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def make(base_client: openai.OpenAI) -> Iterator[Callable[..., Rig]]:
    """Build a rig: ``make(now, **endpoint_fields)``; all are stopped after the test."""
    with ExitStack() as stack:

        def build(now: float = 1000.0, **endpoint: Any) -> Rig:
            clock = Clock(now)
            fp = stack.enter_context(FakeProvider([FakeEndpoint("e", **endpoint)], clock=clock))
            return Rig(fp, base_client.with_options(base_url=fp.base_url("e")), clock)

        yield build


def full_body(err: openai.RateLimitError) -> Any:
    return json.loads(err.response.text)


# -- every dialect -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_limits_no_headers(make: Any, dialect: str) -> None:
    assert make(dialect=dialect).ok() == {}


def test_unknown_dialect_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        FakeEndpoint("e", dialect="bedrock")
    assert all(repr(d) in str(info.value) for d in DIALECTS)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_retry_after_only_where_the_provider_sends_it(make: Any, dialect: str) -> None:
    r = make(rpm=1, dialect=dialect)
    r.ok()
    err = r.refused()
    has = "retry-after" in err.response.headers
    assert has == (dialect in {"openai", "groq", "anthropic", "cerebras", "mistral"})
    if has:
        assert err.response.headers["retry-after"] == "60"
    assert r.fp.stats("e") == FakeStats(1, 1, 0, 5, 8, 13)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_never_fitting_request_has_no_retry_hint(make: Any, dialect: str) -> None:
    err = make(tpm=50, dialect=dialect).refused(max_tokens=100)
    assert "retry-after" not in err.response.headers
    assert "RetryInfo" not in err.response.text


# -- openai and groq ----------------------------------------------------------------------------


def test_openai_ignores_hour_and_day_in_headers(make: Any) -> None:
    r = make(rpm=30, tpm=1000, rph=100, rpd=500, tph=5000, tpd=9000)
    assert r.ok() == {
        "x-ratelimit-limit-requests": "30",
        "x-ratelimit-remaining-requests": "29",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "987",
        "x-ratelimit-reset-tokens": "1m0s",
    }


def test_rph(make: Any) -> None:
    r = make(rph=2)
    r.ok()
    r.at(2000).ok()
    err = r.at(3000).refused()
    assert err.response.headers["retry-after"] == "1600"  # the 1000 request leaves at 4600
    assert "Rate limit reached for model `m` on requests per hour (RPH)" in err.message
    assert "Limit 2, Used 2, Requested 1. Please try again in 26m40s." in err.message
    r.at(4599.9).refused()
    r.at(4600).ok()


def test_tph(make: Any) -> None:
    r = make(tph=30)
    r.ok()  # 13 tokens
    r.at(1500).ok()  # 26
    err = r.at(2000).refused()
    body: Any = err.body
    assert body["type"] == "tokens"
    assert "tokens per hour (TPH): Limit 30, Used 26, Requested 13." in body["message"]
    assert err.response.headers["retry-after"] == str(4600 - 2000)
    r.at(4600).ok()  # the first request left; 13 + 13 <= 30


def test_tpd_rolling_groq(make: Any) -> None:
    r = make(tpd=30, tpm=1000, rpd=100, dialect="groq")
    r.ok()
    headers = r.at(1000 + 7200).ok()
    assert headers["x-ratelimit-limit-requests"] == "100"  # per day
    assert headers["x-ratelimit-reset-requests"] == "24h0m0s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"  # per minute, never TPD
    err = r.at(1000 + 10_800).refused()
    assert "on tokens per day (TPD): Limit 30, Used 26, Requested 13." in err.message
    assert err.response.headers["retry-after"] == str(86_400 - 10_800)
    assert err.response.headers["x-ratelimit-remaining-requests"] == "98"
    r.at(1000 + 86_400).ok()


def test_groq_rpd_429(make: Any) -> None:
    r = make(rpd=1, dialect="groq")
    r.ok()
    err = r.at(1030).refused()
    assert "on requests per day (RPD): Limit 1, Used 1, Requested 1." in err.message
    assert limit_headers(err.response.headers) == {
        "x-ratelimit-limit-requests": "1",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "23h59m30s",
        "retry-after": str(86_400 - 30),
    }


# -- cerebras ----------------------------------------------------------------------------------


def test_cerebras_headers(make: Any) -> None:
    r = make(rpm=30, rph=900, rpd=14_400, tpm=60_000, tph=1_000_000, dialect="cerebras")
    r.ok()
    headers = r.at(1011.5).ok()
    assert headers == {
        "x-ratelimit-limit-requests-day": "14400",
        "x-ratelimit-remaining-requests-day": "14398",
        "x-ratelimit-reset-requests-day": "86400.0",
        "x-ratelimit-limit-tokens-minute": "60000",
        "x-ratelimit-remaining-tokens-minute": "59974",
        "x-ratelimit-reset-tokens-minute": "60.0",
    }


def test_cerebras_float_reset_on_a_calendar_day(make: Any) -> None:
    midnight = utc(2026, 1, 2)
    now = midnight - 33011.382867097855
    r = make(now, rpd=100, day_reset="UTC", dialect="cerebras")
    reset = r.ok()["x-ratelimit-reset-requests-day"]
    assert reset == repr(midnight - now)
    assert float(reset) == pytest.approx(33011.382867097855)


def test_cerebras_tokens_then_requests(make: Any) -> None:
    r = make(rpd=2, tpm=20, dialect="cerebras")
    r.ok()  # 13 tokens
    err = r.at(1010).refused()  # 13 + 13 > 20
    assert full_body(err) == {
        "message": "Tokens per minute limit exceeded - too many tokens processed.",
        "type": "too_many_tokens_error",
        "param": "quota",
        "code": "token_quota_exceeded",
    }
    assert err.response.headers["retry-after"] == "50"
    assert err.response.headers["x-ratelimit-remaining-tokens-minute"] == "7"
    assert err.response.headers["x-ratelimit-reset-tokens-minute"] == "50.0"
    r.at(1060).ok()
    err = r.at(1200).refused()
    assert full_body(err)["code"] == "request_quota_exceeded"
    assert full_body(err)["message"] == "Requests per day limit exceeded - too many requests sent."
    assert err.response.headers["retry-after"] == str(86_400 - 200)


# -- mistral -----------------------------------------------------------------------------------


def test_mistral_headers_and_429(make: Any) -> None:
    r = make(rpm=60, tpm=30, tpd=10_000, dialect="mistral")
    headers = r.ok(max_tokens=20)  # charged 25 up front, 13 recorded
    assert headers == {
        "x-ratelimit-limit-tokens-minute": "30",
        "x-ratelimit-remaining-tokens-minute": "17",
        "x-ratelimit-tokens-query-cost": "13",
        "x-ratelimit-limit-req-minute": "60",
        "x-ratelimit-remaining-req-minute": "59",
    }
    err = r.at(1020).refused(max_tokens=20)  # 13 + 25 > 30
    assert err.body == {"message": "Tokens rate limit exceeded"}
    assert limit_headers(err.response.headers) == {
        **headers,
        "x-ratelimit-tokens-query-cost": "0",
        "retry-after": "40",
    }


def test_mistral_requests_429(make: Any) -> None:
    r = make(rpm=1, dialect="mistral")
    assert r.ok() == {"x-ratelimit-limit-req-minute": "1", "x-ratelimit-remaining-req-minute": "0"}
    err = r.refused()
    assert full_body(err) == {"message": "Requests rate limit exceeded"}
    assert err.response.headers["retry-after"] == "60"


# -- anthropic ---------------------------------------------------------------------------------


def test_anthropic_headers(make: Any) -> None:
    r = make(utc(2025, 12, 31, 23, 59, 59), rpm=50, tpm=1000, rpd=5, dialect="anthropic")
    assert r.ok() == {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:59Z",
        "anthropic-ratelimit-tokens-limit": "1000",
        "anthropic-ratelimit-tokens-remaining": "987",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:59Z",
    }
    headers = r.at(utc(2026, 1, 1, 0, 0, 10) + 0.25).ok()
    assert headers["anthropic-ratelimit-requests-reset"] == "2026-01-01T00:01:11Z"  # rounded up


def test_anthropic_429(make: Any) -> None:
    start = utc(2026, 5, 4, 12)
    r = make(start, rpm=2, dialect="anthropic")
    r.ok()
    r.at(start + 5).ok()
    err = r.at(start + 30).refused()
    body = full_body(err)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].startswith(
        "This request would exceed the rate limit for your organization of 2 requests per minute."
    )
    assert limit_headers(err.response.headers) == {
        "anthropic-ratelimit-requests-limit": "2",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-05-04T12:01:05Z",
        "retry-after": "30",
    }


# -- openrouter --------------------------------------------------------------------------------

NOON = utc(2026, 10, 6, 12)  # the next UTC midnight is 1791331200000 ms


def test_openrouter_reports_the_binding_limit(make: Any) -> None:
    r = make(NOON, rpm=20, rpd=22, day_reset="UTC", dialect="openrouter")
    assert r.ok() == {
        "x-ratelimit-limit": "20",  # 19 left this minute, 21 today
        "x-ratelimit-remaining": "19",
        "x-ratelimit-reset": str(int(NOON + 60) * 1000),
    }
    for _ in range(2):
        r.ok()
    assert r.ok() == {  # 16 left this minute, 18 today: the minute still binds
        "x-ratelimit-limit": "20",
        "x-ratelimit-remaining": "16",
        "x-ratelimit-reset": str(int(NOON + 60) * 1000),
    }
    r.at(NOON + 60)
    for _ in range(3):
        r.ok()
    assert r.ok() == {  # 16 left this minute, 14 today
        "x-ratelimit-limit": "22",
        "x-ratelimit-remaining": "14",
        "x-ratelimit-reset": "1791331200000",
    }


def test_openrouter_tie_reports_the_minute(make: Any) -> None:
    r = make(NOON, rpm=20, rpd=20, day_reset="UTC", dialect="openrouter")
    assert r.ok()["x-ratelimit-reset"] == str(int(NOON + 60) * 1000)  # 19 left of both


def test_openrouter_per_day_429(make: Any) -> None:
    r = make(NOON, rpm=20, rpd=3, day_reset="UTC", dialect="openrouter")
    for _ in range(3):
        r.ok()
    err = r.at(NOON + 3600).refused()
    meta_headers = {
        "X-RateLimit-Limit": "3",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1791331200000",
    }
    assert full_body(err) == {
        "error": {
            "message": "Rate limit exceeded: free-models-per-day. "
            "Add 10 credits to unlock 1000 free model requests per day",
            "code": 429,
            "metadata": {"headers": meta_headers, "provider_name": None},
        }
    }
    assert limit_headers(err.response.headers) == {k.lower(): v for k, v in meta_headers.items()}
    r.at(utc(2026, 10, 6, 23, 59, 59) + 0.999).refused()
    r.at(utc(2026, 10, 7)).ok()


def test_openrouter_per_minute_429(make: Any) -> None:
    r = make(NOON, rpm=2, rpd=50, day_reset="UTC", dialect="openrouter")
    r.ok()
    r.at(NOON + 10.5).ok()
    err = r.at(NOON + 20).refused()
    body: Any = err.body
    assert body["message"].startswith("Rate limit exceeded: free-models-per-min")
    assert body["metadata"]["headers"] == {
        "X-RateLimit-Limit": "2",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int((NOON + 70.5) * 1000)),
    }
    assert err.response.headers["x-ratelimit-limit"] == "2"
    assert "retry-after" not in err.response.headers


# -- gemini ------------------------------------------------------------------------------------


def test_gemini_per_minute_429(make: Any) -> None:
    start = local(LA, 2026, 6, 1, 9)
    r = make(start, rpm=5, rpd=20, tpm=250_000, day_reset=LA, dialect="gemini")
    for i in range(5):
        assert r.at(start + i).ok() == {}
    err = r.at(start + 22.5).refused()
    assert "retry-after" not in err.response.headers
    assert limit_headers(err.response.headers) == {}
    body: Any = err.body
    assert (body["code"], body["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert body["message"].startswith("You exceeded your current quota")
    assert body["details"] == [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": "m"},
                    "quotaValue": "5",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "38s"},
    ]
    r.at(start + 60).ok()


def test_gemini_per_day_429_and_pacific_midnight(make: Any) -> None:
    start = local(LA, 2026, 6, 1, 9)
    r = make(start, rpm=5, rpd=3, day_reset=LA, dialect="gemini")
    for i in range(3):
        r.at(start + 3600 * i).ok()
    err = r.at(local(LA, 2026, 6, 1, 23, 59, 59)).refused()
    body = full_body(err)
    assert set(body) == {"error"}
    (failure,) = body["error"]["details"]  # no RetryInfo for a per-day 429
    violation = failure["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert violation["quotaValue"] == "3"
    assert "Please retry" not in body["error"]["message"]
    r.at(utc(2026, 6, 2, 0, 0)).refused()  # UTC midnight means nothing to Gemini
    r.at(local(LA, 2026, 6, 2)).ok()  # 07:00Z


def test_gemini_token_quota(make: Any) -> None:
    r = make(tpm=20, dialect="gemini")
    r.ok()
    err = r.at(1001).refused()
    body: Any = err.body
    violation = body["details"][0]["violations"][0]
    assert violation["quotaId"] == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    assert violation["quotaMetric"].endswith("generate_content_free_tier_input_token_count")
    assert body["details"][1]["retryDelay"] == "59s"


# -- sambanova ---------------------------------------------------------------------------------


def test_sambanova_headers_and_429s(make: Any) -> None:
    r = make(1000.25, rpm=2, rpd=3, dialect="sambanova")
    assert r.ok() == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1061",  # epoch seconds, rounded up
        "x-ratelimit-limit-requests-day": "3",
        "x-ratelimit-remaining-requests-day": "2",
        "x-ratelimit-reset-requests-day": str(1000 + 86_401),
    }
    r.at(1010).ok()
    err = r.at(1020).refused()
    body: Any = err.body
    assert body["message"] == (
        "Request would exceed rate limit. Violated duration_s: 60, current usage: 2, limit: 2"
    )
    assert "retry-after" not in err.response.headers
    assert err.response.headers["x-ratelimit-reset-requests"] == "1070"
    r.at(1070).ok()
    err = r.at(1200).refused()
    assert "Violated duration_s: 86400, current usage: 3, limit: 3" in err.message


# -- calendar days -----------------------------------------------------------------------------


def test_day_bounds_follow_dst() -> None:
    tz = ZoneInfo(LA)
    spring = day_bounds(utc(2026, 3, 8, 20), tz)
    assert spring == (utc(2026, 3, 8, 8), utc(2026, 3, 9, 7))  # a 23 h day
    fall = day_bounds(utc(2026, 11, 1, 20), tz)
    assert fall == (utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))  # a 25 h day
    assert day_bounds(utc(2026, 3, 9, 7), tz)[0] == utc(2026, 3, 9, 7)  # midnight starts a day
    assert day_bounds(utc(2026, 1, 1) - 0.001, ZoneInfo("UTC")) == (
        utc(2025, 12, 31),
        utc(2026, 1, 1),
    )


def test_calendar_day_resets_at_local_midnight(make: Any) -> None:
    r = make(local(LA, 2026, 1, 15, 10), rpd=2, day_reset=LA, dialect="groq")
    r.ok()
    headers = r.at(local(LA, 2026, 1, 15, 23)).ok()
    assert headers["x-ratelimit-reset-requests"] == "1h0m0s"  # to midnight, not 24 h
    err = r.at(local(LA, 2026, 1, 15, 23, 59, 59) + 0.5).refused()
    assert err.response.headers["retry-after"] == "1"
    assert err.response.headers["x-ratelimit-reset-requests"] == "500ms"
    assert "requests per day (RPD): Limit 2, Used 2" in err.message
    headers = r.at(local(LA, 2026, 1, 16)).ok()
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-reset-requests"] == "24h0m0s"


def test_calendar_day_spring_forward(make: Any) -> None:
    r = make(utc(2026, 3, 8, 8), rpd=1, day_reset=LA, dialect="groq")  # 00:00 PST
    assert r.ok()["x-ratelimit-reset-requests"] == "23h0m0s"
    err = r.at(utc(2026, 3, 9, 6, 59, 59)).refused()  # 23:59:59 PDT
    assert err.response.headers["retry-after"] == "1"
    r.at(utc(2026, 3, 9, 7)).ok()  # 00:00 PDT


def test_calendar_day_fall_back(make: Any) -> None:
    r = make(utc(2026, 11, 1, 7), rpd=1, day_reset=LA, dialect="groq")  # 00:00 PDT
    assert r.ok()["x-ratelimit-reset-requests"] == "25h0m0s"
    err = r.at(utc(2026, 11, 2, 7, 30)).refused()  # 23:30 PST, still 1 November
    assert err.response.headers["retry-after"] == "1800"
    r.at(utc(2026, 11, 2, 8)).ok()  # 00:00 PST


def test_calendar_tpd_utc(make: Any) -> None:
    r = make(utc(2026, 2, 1, 23, 59), tpd=30, day_reset="UTC")
    r.ok()
    r.ok()
    err = r.refused()
    assert "tokens per day (TPD): Limit 30, Used 26, Requested 13." in err.message
    assert err.response.headers["retry-after"] == "60"
    r.at(utc(2026, 2, 2)).ok()
    r.ok()
    assert r.fp.stats("e") == FakeStats(4, 1, 0, 20, 32, 52)


def test_a_request_just_before_midnight_is_yesterdays(make: Any) -> None:
    r = make(local(LA, 2026, 7, 4, 23, 59, 59), rpd=1, day_reset=LA, dialect="openrouter")
    r.ok()
    assert r.at(local(LA, 2026, 7, 5)).ok()["x-ratelimit-remaining"] == "0"


# -- the IETF RateLimit fields ------------------------------------------------------------------


def standard_only(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k in ("ratelimit-policy", "ratelimit")}


def test_standard_fields_beside_the_dialects(make: Any) -> None:
    r = make(rpm=30, tpm=6000, rpd=1000, dialect="groq", standard_headers=True)
    headers = r.ok()
    assert headers["x-ratelimit-limit-requests"] == "1000"  # the dialect's, unchanged
    assert headers["x-ratelimit-limit-tokens"] == "6000"
    assert standard_only(headers) == {
        "ratelimit-policy": '"rpm";q=30;w=60, "tpm";q=6000;qu="tokens";w=60, "rpd";q=1000;w=86400',
        "ratelimit": '"rpm";r=29;t=60, "tpm";r=5987;t=60, "rpd";r=999;t=86400',
    }


def test_standard_fields_alone(make: Any) -> None:
    r = make(rpm=2, tph=100, rate_headers=False, standard_headers=True)
    assert r.ok() == {
        "ratelimit-policy": '"rpm";q=2;w=60, "tph";q=100;qu="tokens";w=3600',
        "ratelimit": '"rpm";r=1;t=60, "tph";r=87;t=3600',
    }
    r.at(1010).ok()
    err = r.at(1020).refused()
    assert limit_headers(err.response.headers) == {
        "ratelimit-policy": '"rpm";q=2;w=60, "tph";q=100;qu="tokens";w=3600',
        "ratelimit": '"rpm";r=0;t=40, "tph";r=74;t=3580',  # until the oldest request leaves
        "retry-after": "40",
    }
    assert parse_headers("openai", dict(err.response.headers), 1020.0) == (
        Hint("requests", "minute", 2, 0, 1060.0),
        Hint("tokens", "hour", 100, 74, 4600.0),
    )


def test_standard_fields_on_a_calendar_day(make: Any) -> None:
    r = make(utc(2026, 2, 1, 23), rpd=5, day_reset="UTC", rate_headers=False, standard_headers=True)
    assert r.ok()["ratelimit"] == '"rpd";r=4;t=3600'  # a calendar day frees at midnight
    assert make(rpd=5, standard_headers=True).ok()["ratelimit"] == '"rpd";r=4;t=86400'


def test_standard_fields_only_for_limits_set(make: Any) -> None:
    assert make(standard_headers=True).ok() == {}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_reads_the_fakes_standard_fields(make: Any, dialect: str) -> None:
    r = make(rpm=3, tpd=1000, dialect=dialect, rate_headers=False, standard_headers=True)
    response = r.client.chat.completions.with_raw_response.create(model="m", messages=HI)
    assert parse_headers(dialect, dict(response.headers), 1000.0) == (
        Hint("requests", "minute", 3, 2, 1060.0),
        Hint("tokens", "day", 1000, 987, 1000.0 + 86400),
    )


# -- the limiter against a reference, with hours, days and calendar days ----------------------


def _admits(events: list[tuple[float, int]], at: float, ep: FakeEndpoint, charge: int) -> bool:
    tz = ZoneInfo(ep.day_reset) if ep.day_reset else None
    day_start = day_bounds(at, tz)[0] if tz else None

    def window(w: float, calendar: bool = False) -> list[int]:
        if calendar and day_start is not None:
            return [n for t, n in events if day_start <= t <= at]
        return [n for t, n in events if at - w < t <= at]

    checks = [
        (ep.rpm, len(window(60)) + 1),
        (ep.rph, len(window(3600)) + 1),
        (ep.rpd, len(window(86400, True)) + 1),
        (ep.tpm, sum(window(60)) + charge),
        (ep.tph, sum(window(3600)) + charge),
        (ep.tpd, sum(window(86400, True)) + charge),
    ]
    return all(limit is None or need <= limit for limit, need in checks)


def _reference(
    events: list[tuple[float, int]], now: float, ep: FakeEndpoint, charge: int
) -> float | None:
    """The earliest time >= now at which the spec admits the request (None: never)."""
    candidates = {now} | {t + w for t, _ in events for w in (60.0, 3600.0, 86400.0)}
    if ep.day_reset:
        candidates.add(day_bounds(now, ZoneInfo(ep.day_reset))[1])
    later = sorted(c for c in candidates if c >= now)
    return next((at for at in later if _admits(events, at, ep, charge)), None)


@settings(max_examples=120, deadline=None)
@given(
    limits=st.tuples(*[st.none() | st.integers(1, 6)] * 3, *[st.none() | st.integers(40, 150)] * 3),
    day_reset=st.sampled_from([None, "UTC", LA]),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.5, 30.0, 60.0, 1800.0, 3600.0, 7200.0, 30000.0, 86400.0]),
            st.integers(1, 40),
            st.none() | st.integers(1, 60),
            st.integers(1, 30),
        ),
        max_size=25,
    ),
)
def test_limiter_matches_the_spec(
    limits: tuple[int | None, ...],
    day_reset: str | None,
    steps: list[tuple[float, int, int | None, int]],
) -> None:
    rpm, rph, rpd, tpm, tph, tpd = limits
    ep = FakeEndpoint(
        "p", rpm=rpm, rph=rph, rpd=rpd, tpm=tpm, tph=tph, tpd=tpd, day_reset=day_reset
    )
    state = FakeEndpointState(ep)
    events: list[tuple[float, int]] = []
    now = utc(2026, 3, 7, 20)  # crosses the spring-forward day in Los Angeles
    for dt, prompt, cap, completion in steps:
        now += dt
        charge = prompt + (cap if cap is not None else completion)
        expected = _reference(events, now, ep, charge)
        verdict = state.admit(Clock(now), FakeChat("m", prompt, cap, False, False), completion)
        assert (verdict.refusal is None) == (expected == now)
        if verdict.refusal is None:
            events.append((now, prompt + completion))
        elif expected is None:
            assert "retry-after" not in verdict.headers
        else:
            assert verdict.headers["retry-after"] == str(max(1, math.ceil(expected - now)))
