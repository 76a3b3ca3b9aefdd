"""The fake provider's answer to OpenRouter's ``GET /api/v1/key`` (served, for an endpoint
of dialect ``openrouter``, at ``GET /{name}/v1/key``: see :mod:`llamux.testing._provider`)."""

from __future__ import annotations

from typing import Any

from ._limits import Usage


def _label(key: str) -> str:
    """A key as OpenRouter labels it, ``sk-or-v1-au7...890``; a short key not even in part."""
    return f"{key[:12]}...{key[-3:]}" if len(key) > 15 else "..."


_DEPRECATED = "This field is deprecated and safe to ignore."


def openrouter_key(key: str, day: Usage | None) -> dict[str, Any]:
    """The body of OpenRouter's ``GET /api/v1/key`` for an endpoint whose per-day request
    limit is in ``day`` (None: it sets none, and the answer has no daily counter).

    The shape of the real answer (2026): no spending cap (``limit`` null), nothing spent
    (free models), ``is_free_tier`` true below 1,000 requests a day (fewer than 10 credits
    ever bought), the deprecated ``rate_limit`` at ``-1``, and ``free_model_daily_requests``
    ``{limit, remaining, used}`` from the fake's own count (the real one lags up to a minute).
    """
    daily = None
    if day is not None:
        daily = {"limit": day.limit.limit, "remaining": day.remaining, "used": day.used}
    spent = {
        f"{kind}{period}": 0
        for kind in ("usage", "byok_usage")
        for period in ("", "_daily", "_weekly", "_monthly")
    }
    data = {
        "label": _label(key),
        "limit": None,
        "limit_remaining": None,
        "limit_reset": None,
        "include_byok_in_limit": False,
        **spent,
        "is_free_tier": day is not None and day.limit.limit < 1000,
        "is_management_key": False,
        "is_provisioning_key": False,
        "creator_user_id": None,
        "expires_at": None,
        "free_model_daily_requests": daily,
        "rate_limit": {"requests": -1, "interval": "10s", "note": _DEPRECATED},
    }
    return {"data": data}
