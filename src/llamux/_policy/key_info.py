"""What a provider's key endpoint says about a key's quota, without spending a request.

OpenRouter's ``GET /api/v1/key`` answers ``{"data": {...}}``: ``is_free_tier`` (the account
never bought credits: its ``:free`` models allow 50 requests a day, else 1,000, account-wide,
per UTC day) and, where present, ``free_model_daily_requests`` with the day's ``limit``,
``remaining`` and ``used``. Pure: ``now`` as an argument; garbage gives no hints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from .ratelimits import Hint, count

FREE_DAILY = 50
"""``:free`` requests a day for an account that never bought credits."""
CREDITED_DAILY = 1000
"""``:free`` requests a day once 10 or more credits were bought."""


def next_utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def key_hints(body: object, now: float) -> tuple[Hint, ...]:
    """The limits a key endpoint's answer states (OpenRouter's form), as hints."""
    data = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(data, Mapping):
        return ()
    reset = next_utc_midnight(now)
    daily = data.get("free_model_daily_requests")
    if isinstance(daily, Mapping):
        limit = count(str(daily.get("limit")))
        used = count(str(daily.get("used")))
        remaining = count(str(daily.get("remaining")))
        if remaining is None and limit is not None and used is not None:
            remaining = max(0, limit - used)
        if limit is not None or remaining is not None:
            return (Hint("requests", "day", limit, remaining, reset, used),)
    tier = data.get("is_free_tier")
    if isinstance(tier, bool):
        return (Hint("requests", "day", FREE_DAILY if tier else CREDITED_DAILY, None, reset),)
    return ()
