"""stated_limits: every limit a 429 states, in its body (with the providers' real wording) and
its headers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llamux._policy.rate_limited import stated_limits
from llamux._policy.ratelimits import Hint

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIDNIGHT_MS = "1791331200000"  # 2026-10-07T00:00:00Z
MIDNIGHT = 1_791_331_200.0

GROQ_TPD = (
    "Rate limit reached for model `llama-3.3-70b-versatile` in organization "
    "`org_01jxyz` service tier `on_demand` on tokens per day (TPD): Limit 200000, Used 197204, "
    "Requested 3000. Please try again in 5m12s. Need more tokens? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)
GROQ_RPM = (
    "Rate limit reached for model `llama-3.1-8b-instant` in organization `org_01jxyz` service "
    "tier `on_demand` on requests per minute (RPM): Limit 30, Used 30, Requested 1. Please try "
    "again in 2s. Need more requests? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)
GROQ_TOO_LARGE = (
    "Request too large for model `llama-3.1-8b-instant` in organization `org_01jxyz` service "
    "tier `on_demand` on tokens per minute (TPM): Limit 6000, Requested 9000, please reduce "
    "your message size and try again. Need more tokens? Upgrade to Dev Tier today at "
    "https://console.groq.com/settings/billing"
)
OPENAI_TPM = (
    "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, "
    "Used 29000, Requested 2000. Please try again in 2.5s. Visit "
    "https://platform.openai.com/account/rate-limits to learn more."
)
OPENAI_OLD = (
    "Rate limit reached for default-gpt-3.5-turbo in organization org-abc on requests per min. "
    "Limit: 3 / min. Current: 3 / min. Please try again in 20s."
)
SAMBANOVA = (
    "Request would exceed rate limit. Violated duration_s: 86400, current usage: 20, limit: 20"
)
ANTHROPIC = (
    "This request would exceed the rate limit for your organization "
    "(1815e560-bf0c-433e-b03a-793524e11fda) of 50,000 input tokens per minute. For details, "
    "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
    "current usage. Please reduce the prompt length or the maximum tokens requested, or try "
    "again later."
)


def openai_error(message: str, type_: str = "tokens") -> dict[str, Any]:
    error = {"message": message, "type": type_, "param": None, "code": "rate_limit_exceeded"}
    return {"error": error}


def gemini_error(*violations: tuple[str, object]) -> dict[str, Any]:
    found = [
        {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": value,
        }
        for quota_id, value in violations
    ]
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": found},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
    ]
    message = "You exceeded your current quota, please check your plan and billing details."
    error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}
    return {"error": error}


BODY_CASES: list[tuple[str, str, object, list[Hint]]] = [
    (
        "groq tokens per day",
        "groq",
        openai_error(GROQ_TPD),
        [Hint("tokens", "day", 200000, 2796, NOW + 312, 197204)],
    ),
    (
        "groq requests per minute",
        "groq",
        openai_error(GROQ_RPM, "requests"),
        [Hint("requests", "minute", 30, 0, NOW + 2, 30)],
    ),
    (
        "groq request too large: the limit alone",
        "groq",
        openai_error(GROQ_TOO_LARGE),
        [Hint("tokens", "minute", 6000, None, None)],
    ),
    (
        "openai per min",
        "openai",
        openai_error(OPENAI_TPM),
        [Hint("tokens", "minute", 30000, 1000, NOW + 2.5, 29000)],
    ),
    (
        "openai, the older wording",
        "openai",
        openai_error(OPENAI_OLD, "requests"),
        [Hint("requests", "minute", 3, 0, NOW + 20, 3)],
    ),
    (
        "openai, a JSON text body",
        "openai",
        json.dumps(openai_error(OPENAI_TPM)),
        [Hint("tokens", "minute", 30000, 1000, NOW + 2.5, 29000)],
    ),
    (
        "sambanova per day",
        "sambanova",
        {"error": {"message": SAMBANOVA, "type": "rate_limit_exceeded"}},
        [Hint("requests", "day", 20, 0, None, 20)],
    ),
    (
        "sambanova per minute, a bare text body",
        "sambanova",
        SAMBANOVA.replace("86400", "60").replace("usage: 20", "usage: 7"),
        [Hint("requests", "minute", 20, 13, None, 7)],
    ),
    (
        "sambanova tokens",
        "sambanova",
        {"message": "Token rate limit. Violated duration_s: 86400, current usage: 1, limit: 9"},
        [Hint("tokens", "day", 9, 8, None, 1)],
    ),
    (
        "sambanova, a window between llamux's",
        "sambanova",
        {"message": SAMBANOVA.replace("86400", "7200").replace("limit: 20", "limit: 100")},
        [Hint("requests", "hour", 50, 50, None, 20)],
    ),
    (
        "gemini per day and per minute",
        "gemini",
        gemini_error(
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "20"),
            ("GenerateContentInputTokensPerModelPerMinute-FreeTier", "250000"),
        ),
        [
            Hint("requests", "day", 20, None, None),
            Hint("tokens", "minute", 250000, None, None),
        ],
    ),
    (
        "gemini, a number and garbage",
        "gemini",
        gemini_error(
            ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", 15),
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "lots"),
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "-1"),
            ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", True),
            ("SomethingPerDay", "10"),  # neither requests nor tokens
            ("GenerateRequestsPerProjectPerModel", "10"),  # no window
        ),
        [Hint("requests", "minute", 15, None, None)],
    ),
    (
        "anthropic, with the organization",
        "anthropic",
        {"type": "error", "error": {"type": "rate_limit_error", "message": ANTHROPIC}},
        [Hint("tokens", "minute", 50000, None, None)],
    ),
    (
        "anthropic requests, without the organization",
        "anthropic",
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "This request would exceed the rate limit for your organization of "
                "50 requests per minute.",
            },
        },
        [Hint("requests", "minute", 50, None, None)],
    ),
    (
        "anthropic output tokens",
        "anthropic",
        {"message": "would exceed the rate limit for your organization of 8,000 output tokens "},
        [],  # no window: not a limit
    ),
    (
        "openrouter's upsell is not its limit",
        "openrouter",
        {
            "error": {
                "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock "
                "1000 free model requests per day",
                "code": 429,
            }
        },
        [],
    ),
    (
        "cerebras states no number",
        "cerebras",
        {"message": "Tokens per minute limit exceeded - too many tokens processed."},
        [],
    ),
    ("no body", "openai", None, []),
    ("not json", "openai", "<html>429 Too Many Requests</html>", []),
]


@pytest.mark.parametrize(
    ("dialect", "body", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in BODY_CASES],
)
def test_body_limits(dialect: str, body: object, expected: list[Hint]) -> None:
    got = stated_limits(dialect, {}, body, NOW)
    assert len(got) == len(expected)
    for hint, want in zip(got, expected, strict=True):
        assert _same(hint, want)


def _same(hint: Hint, want: Hint) -> bool:
    assert (hint.metric, hint.window, hint.limit, hint.remaining, hint.used) == (
        want.metric,
        want.window,
        want.limit,
        want.remaining,
        want.used,
    )
    assert hint.reset_at == (None if want.reset_at is None else pytest.approx(want.reset_at))
    return True


def test_every_limit_of_a_body_counts() -> None:
    body = [openai_error(GROQ_TPD), openai_error(GROQ_RPM)]
    got = stated_limits("groq", {}, body, NOW)
    assert [(h.metric, h.window, h.limit) for h in got] == [
        ("tokens", "day", 200000),
        ("requests", "minute", 30),
    ]
    assert [h.reset_at for h in got] == [NOW + 312, NOW + 2]  # each its own "try again"


def test_headers_count_too() -> None:
    headers = {
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-remaining-requests": "990",
        "x-ratelimit-reset-requests": "1h4m48s",
        "x-ratelimit-limit-tokens": "8000",
        "x-ratelimit-remaining-tokens": "8000",
        "x-ratelimit-reset-tokens": "547ms",
        "retry-after": "312",
    }
    got = stated_limits("groq", headers, openai_error(GROQ_TPD), NOW)
    assert got == (
        Hint("requests", "day", 1000, 990, NOW + 3888),
        Hint("tokens", "minute", 8000, 8000, NOW + 0.547),
        Hint("tokens", "day", 200000, 2796, NOW + 312, 197204),
    )


def test_the_standard_fields_count_whatever_the_dialect() -> None:
    headers = {"RateLimit-Policy": '"daily";q=50;w=86400', "RateLimit": '"daily";r=0;t=3600'}
    assert stated_limits("mistral", headers, None, NOW) == (
        Hint("requests", "day", 50, 0, NOW + 3600),
    )


def test_openrouter_headers_in_the_body_named_by_the_429() -> None:
    metadata = {
        "headers": {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": MIDNIGHT_MS,
        },
        "provider_name": None,
    }
    message = "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free"
    body = {"error": {"message": message, "code": 429, "metadata": metadata}}
    assert stated_limits("openrouter", {}, body, MIDNIGHT - 7200) == (
        Hint("requests", "day", 50, 0, MIDNIGHT),
    )
    per_min = {"error": {**body["error"], "message": "Rate limit exceeded: free-models-per-min."}}
    per_min["error"]["metadata"] = {
        "headers": {**metadata["headers"], "X-RateLimit-Limit": "20"}  # type: ignore[dict-item]
    }
    assert stated_limits("openrouter", {}, per_min, MIDNIGHT - 30) == (
        Hint("requests", "minute", 20, 0, MIDNIGHT),
    )


def test_a_body_repeating_a_header_gives_it_once() -> None:
    headers = {"RateLimit-Policy": '"tpd";q=200000;qu="tokens";w=86400'}
    got = stated_limits("groq", headers, openai_error(GROQ_TPD.replace("5m12s", "0s")), NOW)
    assert Hint("tokens", "day", 200000, None, None) in got
    assert len(got) == 2


NUMBERS = st.integers(min_value=0, max_value=10**30).map(str) | st.sampled_from(
    ["", "-1", "1,000", "1,00", "٣", "1e5", "0x10", "9" * 40]
)


@given(NUMBERS, NUMBERS, NUMBERS, st.sampled_from(["min", "minute", "hour", "day", "week"]))
def test_garbled_numbers_never_raise(limit: str, used: str, seconds: str, period: str) -> None:
    texts = [
        f"on tokens per {period} (TPD): Limit {limit}, Used {used}, Requested 1. "
        f"Please try again in {seconds}s.",
        f"Violated duration_s: {seconds}, current usage: {used}, limit: {limit}",
        f"rate limit for your organization of {limit} tokens per {period}",
    ]
    quota = gemini_error((f"GenerateRequestsPer{period.capitalize()}PerProject", limit))
    for body in [*texts, quota]:
        for hint in stated_limits("openai", {}, body, NOW):
            assert hint.limit is None or hint.limit >= 0
            assert hint.remaining is None or 0 <= hint.remaining <= (hint.limit or 0)
            assert hint.used is None or hint.used >= 0
