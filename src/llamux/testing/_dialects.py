"""Rate-limit headers and 429 bodies of the fake provider, in each real provider's dialect.

Each dialect sends only the headers of the limits its provider reports, and only for limits
the endpoint sets, as the real providers send them:

- openai: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, per minute, Go durations;
- groq: the same names, but ``-requests`` is per day and ``-tokens`` per minute (so a
  per-day token limit is stated only in the 429 body: "on tokens per day (TPD): Limit 200000,
  Used 197204, Requested 3000. Please try again in 5m12s.", with the organization and tier);
- cerebras: ``x-ratelimit-*-requests-day`` and ``x-ratelimit-*-tokens-minute``, float seconds;
- mistral: ``x-ratelimit-{limit,remaining}-{tokens,req}-minute`` and
  ``x-ratelimit-tokens-query-cost``, no reset;
- anthropic: ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, per minute,
  RFC 3339 UTC resets (rounded up to the second);
- openrouter: ``X-RateLimit-{Limit,Remaining,Reset}`` (epoch milliseconds) for the request limit
  that binds most, per day or per minute; a 429 copies them into ``error.metadata.headers``;
- gemini: no headers; a 429 carries a google.rpc ``RESOURCE_EXHAUSTED`` status;
- sambanova: ``x-ratelimit-{limit,remaining,reset}-requests`` (per minute) and
  ``...-requests-day``, resets in epoch seconds (rounded up).

``retry-after`` (whole seconds, rounded up) comes with the 429s of openai, groq, anthropic,
cerebras and mistral, unless the request could never fit.

Any dialect can also send the IETF fields (draft-ietf-httpapi-ratelimit-headers, current
form) for every limit the endpoint sets, on answers and 429s (:func:`standard`), named by the
limit's short name: ``RateLimit-Policy: "rpm";q=30;w=60, "tpd";q=100000;qu="tokens";w=86400``
and ``RateLimit: "rpm";r=29;t=60, "tpd";r=99000;t=86400``. ``w`` is the window (a calendar
day is 86400 too); ``t`` is whole seconds, rounded up, until more quota is free (the oldest
counted request leaves a rolling window; a calendar day ends), 0 when none is used. Token
limits say ``qu="tokens"``, a unit no draft registers (there is none for tokens).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._config.endpoint import (
    DIALECTS as DIALECTS,  # the one list, re-exported for the fake's users
)
from ._limits import Block, Usage

_RETRY_AFTER = frozenset({"openai", "groq", "anthropic", "cerebras", "mistral"})


def go_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration``, to the millisecond: ``1m30s``, ``2.5s``, ``12ms``."""
    ms = round(seconds * 1000)
    if seconds > 0 and ms == 0:
        ms = 1
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Snapshot:
    """The state of every limit of an endpoint as an answer leaves."""

    usages: tuple[Usage, ...]
    cost: int  # tokens charged by this request (0 for a refusal)

    def find(self, kind: str, period: str) -> Usage | None:
        match = (u for u in self.usages if (u.limit.kind, u.limit.period) == (kind, period))
        return next(match, None)


Headers = dict[str, str]
Reset = Callable[[Usage], str]


def _go(u: Usage) -> str:
    return go_duration(u.reset)


def _float_seconds(u: Usage) -> str:
    return repr(u.reset)


def _rfc3339(u: Usage) -> str:
    return datetime.fromtimestamp(math.ceil(u.reset_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch_ms(u: Usage) -> str:
    return str(round(u.reset_at * 1000))


def _epoch_seconds(u: Usage) -> str:
    return str(math.ceil(u.reset_at))


def _trio(template: str, u: Usage | None, reset: Reset | None, *, title: bool = False) -> Headers:
    """``template`` filled with ``limit`` / ``remaining`` / ``reset`` (``Limit``... if title)."""
    if u is None:
        return {}
    limit, remaining, reset_name = (
        template.format(n.title() if title else n) for n in ("limit", "remaining", "reset")
    )
    out = {limit: str(u.limit.limit), remaining: str(u.remaining)}
    if reset is not None:
        out[reset_name] = reset(u)
    return out


def _openai(s: Snapshot) -> Headers:
    requests = _trio("x-ratelimit-{}-requests", s.find("requests", "minute"), _go)
    return {**requests, **_trio("x-ratelimit-{}-tokens", s.find("tokens", "minute"), _go)}


def _groq(s: Snapshot) -> Headers:
    requests = _trio("x-ratelimit-{}-requests", s.find("requests", "day"), _go)
    return {**requests, **_trio("x-ratelimit-{}-tokens", s.find("tokens", "minute"), _go)}


def _cerebras(s: Snapshot) -> Headers:
    day = _trio("x-ratelimit-{}-requests-day", s.find("requests", "day"), _float_seconds)
    tokens = s.find("tokens", "minute")
    return {**day, **_trio("x-ratelimit-{}-tokens-minute", tokens, _float_seconds)}


def _mistral(s: Snapshot) -> Headers:
    tokens = s.find("tokens", "minute")
    out = _trio("x-ratelimit-{}-tokens-minute", tokens, None)
    if tokens is not None:
        out["x-ratelimit-tokens-query-cost"] = str(s.cost)
    return {**out, **_trio("x-ratelimit-{}-req-minute", s.find("requests", "minute"), None)}


def _anthropic(s: Snapshot) -> Headers:
    requests = _trio("anthropic-ratelimit-requests-{}", s.find("requests", "minute"), _rfc3339)
    tokens = _trio("anthropic-ratelimit-tokens-{}", s.find("tokens", "minute"), _rfc3339)
    return {**requests, **tokens}


def _openrouter_binding(s: Snapshot) -> Usage | None:
    """The per-day request limit if set and fewer remain of it, else the per-minute one."""
    day, minute = s.find("requests", "day"), s.find("requests", "minute")
    if day is not None and (minute is None or day.remaining < minute.remaining):
        return day
    return minute


def _openrouter(s: Snapshot) -> Headers:
    return _trio("X-RateLimit-{}", _openrouter_binding(s), _epoch_ms, title=True)


def _gemini(s: Snapshot) -> Headers:
    return {}


def _sambanova(s: Snapshot) -> Headers:
    minute = _trio("x-ratelimit-{}-requests", s.find("requests", "minute"), _epoch_seconds)
    day = _trio("x-ratelimit-{}-requests-day", s.find("requests", "day"), _epoch_seconds)
    return {**minute, **day}


# -- 429 bodies: each returns (JSON body, headers to add or override) --------------------------

Refusal = tuple[Any, Headers]


def _openai_refusal(s: Snapshot, model: str, block: Block, org: str = "") -> Refusal:
    lim, requested = block.usage.limit, block.requested
    if block.wait is None:
        message = (
            f"Request too large for model `{model}`{org} on {lim.label}: "
            f"Limit {lim.limit}, Requested {requested}. Please reduce your request."
        )
    else:
        message = (
            f"Rate limit reached for model `{model}`{org} on {lim.label}: Limit {lim.limit}, "
            f"Used {block.usage.used}, Requested {requested}. "
            f"Please try again in {go_duration(block.wait)}."
        )
    error = {"message": message, "type": lim.kind, "param": None, "code": "rate_limit_exceeded"}
    return {"error": error}, {}


_GROQ_ORG = " in organization `org_01fake` service tier `on_demand`"
_GROQ_UPSELL = (
    " Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing"
)


def _groq_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    """As a real Groq 429: the OpenAI message with the organization, tier and an upsell."""
    body, extra = _openai_refusal(s, model, block, _GROQ_ORG)
    body["error"]["message"] += _GROQ_UPSELL
    return body, extra


def _cerebras_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    lim = block.usage.limit
    verb = "sent" if lim.kind == "requests" else "processed"
    message = (
        f"{lim.kind.capitalize()} per {lim.period} limit exceeded - too many {lim.kind} {verb}."
    )
    code = f"{lim.kind[:-1]}_quota_exceeded"
    body = {
        "message": message,
        "type": f"too_many_{lim.kind}_error",
        "param": "quota",
        "code": code,
    }
    return body, {}


def _mistral_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    return {"message": f"{block.usage.limit.kind.capitalize()} rate limit exceeded"}, {}


def _anthropic_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    lim = block.usage.limit
    message = (
        f"This request would exceed the rate limit for your organization of {lim.limit:,} "
        f"{lim.kind} per {lim.period}. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
        "current usage. Please reduce the prompt length or the maximum tokens requested, "
        "or try again later."
    )
    return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}, {}


def _openrouter_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    headers = _trio("X-RateLimit-{}", block.usage, _epoch_ms, title=True)
    if block.usage.limit.period == "day":
        message = (
            "Rate limit exceeded: free-models-per-day. "
            "Add 10 credits to unlock 1000 free model requests per day"
        )
    else:
        message = "Rate limit exceeded: free-models-per-min."
    metadata = {"headers": headers, "provider_name": None}
    return {"error": {"message": message, "code": 429, "metadata": metadata}}, headers


_GOOGLE = "type.googleapis.com/google.rpc."
_GEMINI_HELP = (
    "You exceeded your current quota, please check your plan and billing details. "
    "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
    "rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. "
)


def _gemini_violation(model: str, block: Block) -> dict[str, Any]:
    lim, period = block.usage.limit, block.usage.limit.period.capitalize()
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_"
    if lim.kind == "requests":
        metric, quota = metric + "requests", f"GenerateRequestsPer{period}PerProjectPerModel"
    else:
        metric, quota = (
            metric + "input_token_count",
            f"GenerateContentInputTokensPerModelPer{period}",
        )
    return {
        "quotaMetric": metric,
        "quotaId": f"{quota}-FreeTier",
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": str(lim.limit),
    }


def _gemini_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    violation = _gemini_violation(model, block)
    message = (
        f"{_GEMINI_HELP}\n* Quota exceeded for metric: {violation['quotaMetric']}, "
        f"limit: {block.usage.limit.limit}, model: {model}"
    )
    details: list[dict[str, Any]] = [{"@type": _GOOGLE + "QuotaFailure", "violations": [violation]}]
    if block.wait is not None and block.usage.limit.period != "day":
        delay = math.ceil(block.wait)
        message += f"\nPlease retry in {block.wait:.3f}s."
        details.append({"@type": _GOOGLE + "RetryInfo", "retryDelay": f"{delay}s"})
    error = {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}
    return {"error": error}, {}


def _sambanova_refusal(s: Snapshot, model: str, block: Block) -> Refusal:
    usage = block.usage
    message = (
        f"Request would exceed rate limit. Violated duration_s: {int(usage.limit.window)}, "
        f"current usage: {usage.used}, limit: {usage.limit.limit}"
    )
    error = {"message": message, "type": "rate_limit_exceeded", "param": None, "code": None}
    return {"error": error}, {}


_Dialect = tuple[Callable[[Snapshot], Headers], Callable[[Snapshot, str, Block], Refusal]]
_TABLE: dict[str, _Dialect] = {
    "openai": (_openai, _openai_refusal),
    "groq": (_groq, _groq_refusal),
    "cerebras": (_cerebras, _cerebras_refusal),
    "mistral": (_mistral, _mistral_refusal),
    "anthropic": (_anthropic, _anthropic_refusal),
    "openrouter": (_openrouter, _openrouter_refusal),
    "gemini": (_gemini, _gemini_refusal),
    "sambanova": (_sambanova, _sambanova_refusal),
}
assert set(_TABLE) == set(DIALECTS)


def standard(snapshot: Snapshot) -> Headers:
    """The IETF ``RateLimit-Policy`` and ``RateLimit`` fields for every limit (none: no field)."""
    policies, limits = [], []
    for u in snapshot.usages:
        lim = u.limit
        unit = ';qu="tokens"' if lim.kind == "tokens" else ""
        policies.append(f'"{lim.name}";q={lim.limit}{unit};w={round(lim.window)}')
        limits.append(f'"{lim.name}";r={u.remaining};t={math.ceil(u.frees)}')
    if not policies:
        return {}
    return {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(limits)}


def headers(dialect: str, snapshot: Snapshot, *, own: bool = True, std: bool = False) -> Headers:
    """The rate-limit headers of a successful answer: the dialect's (``own``), then the IETF
    fields (``std``)."""
    out = _TABLE[dialect][0](snapshot) if own else {}
    return {**out, **standard(snapshot)} if std else out


def refusal(
    dialect: str,
    snapshot: Snapshot,
    model: str,
    block: Block,
    *,
    rate_headers: bool = True,
    retry_after: bool = True,
    standard_headers: bool = False,
) -> tuple[bytes, Headers]:
    """The body and headers of a 429 for a request refused by ``block``.

    ``rate_headers=False`` sends none of the dialect's rate-limit headers (the body still
    states what it states); ``retry_after=False`` sends no ``retry-after``;
    ``standard_headers=True`` adds the IETF fields (:func:`standard`).
    """
    header_fn, body_fn = _TABLE[dialect]
    body, extra = body_fn(snapshot, model, block)
    out = {**header_fn(snapshot), **extra} if rate_headers else {}
    if standard_headers:
        out.update(standard(snapshot))
    if retry_after and dialect in _RETRY_AFTER and block.wait is not None:
        out["retry-after"] = str(max(1, math.ceil(block.wait)))
    return json.dumps(body).encode(), out
