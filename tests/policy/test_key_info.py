"""OpenRouter's key endpoint, read as limits (``GET /api/v1/key``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llamux._policy.key_info import key_hints, next_utc_midnight
from llamux._policy.ratelimits import Hint

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC).timestamp()


def test_the_days_free_requests_are_read_with_their_use() -> None:
    body = {
        "data": {
            "is_free_tier": True,
            "free_model_daily_requests": {"limit": 50, "remaining": 38, "used": 12},
        }
    }
    assert key_hints(body, NOW) == (Hint("requests", "day", 50, 38, MIDNIGHT, 12),)


def test_remaining_is_derived_when_only_limit_and_use_are_given() -> None:
    body = {"data": {"free_model_daily_requests": {"limit": 1000, "used": 990}}}
    assert key_hints(body, NOW) == (Hint("requests", "day", 1000, 10, MIDNIGHT, 990),)


@pytest.mark.parametrize(("free", "limit"), [(True, 50), (False, 1000)])
def test_the_free_tier_flag_alone_tells_the_daily_limit(free: bool, limit: int) -> None:
    body = {
        "data": {"label": "sk-or-v1-abc...123", "limit": None, "usage": 0.5, "is_free_tier": free}
    }
    assert key_hints(body, NOW) == (Hint("requests", "day", limit, None, MIDNIGHT),)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "garbage",
        [],
        {"data": None},
        {"data": {"is_free_tier": "yes"}},
        {"error": {"code": 401}},
    ],
)
def test_garbage_states_nothing(body: object) -> None:
    assert key_hints(body, NOW) == ()


def test_the_next_utc_midnight() -> None:
    assert next_utc_midnight(NOW) == MIDNIGHT
    assert next_utc_midnight(MIDNIGHT) == MIDNIGHT + 86400
