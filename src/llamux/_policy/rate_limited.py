"""What a 429 says: which window ran out and when to come back, from its headers and
wherever its body nests them (providers.md section 4). Pure, ``now`` as an argument; never
raises on provider input."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from .ratelimits import (
    DIALECTS,
    WINDOWS,
    Hint,
    as_number,
    count,
    dialect_of,
    hints_of,
    lowered,
    parse_reset,
    retry_after,
    within_reach,
)


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A 429, classified."""

    window: str | None  # "minute" | "hour" | "day" | "month" | None when nothing tells
    retry_at: float | None  # epoch seconds when the provider says to come back, if it says
    reason: str  # short human text, e.g. "Groq requests per day exhausted"


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What a 429 says, in its headers and wherever it is nested in its body."""

    dialect: str
    headers: dict[str, str]  # the real headers over the body's copy (OpenRouter)
    hints: tuple[Hint, ...]
    text: str  # every string value of the body, lower-cased
    quota_ids: tuple[str, ...]  # Gemini QuotaFailure.violations[].quotaId
    delays: tuple[object, ...]  # Gemini RetryInfo.retryDelay


def _decode(body: object) -> object:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return body
    return body


def _walk(node: object, depth: int = 0) -> Iterator[object]:
    yield node
    if depth < 16 and isinstance(node, dict | list):
        for child in node.values() if isinstance(node, dict) else node:
            yield from _walk(child, depth + 1)


def _read_body(body: object) -> tuple[str, tuple[str, ...], tuple[object, ...], dict[str, str]]:
    """The body's text, quota ids, retry delays and ``error.metadata.headers``."""
    texts: list[str] = []
    quota_ids: list[str] = []
    delays: list[object] = []
    headers: dict[str, str] = {}
    for node in itertools.islice(_walk(_decode(body)), 10_000):
        if isinstance(node, str):
            texts.append(node.lower())
        elif isinstance(node, dict):
            if isinstance(quota := node.get("quotaId"), str):
                quota_ids.append(quota)
            if "retryDelay" in node:
                delays.append(node["retryDelay"])
            metadata = node.get("metadata")
            if isinstance(metadata, dict):
                headers.update(lowered(metadata.get("headers")))
    return "\n".join(texts), tuple(quota_ids), tuple(delays), headers


# --- Classifying a 429 --------------------------------------------------------------------

_QUOTA_ID_WINDOWS = (("PerMinute", "minute"), ("PerHour", "hour"), ("PerDay", "day"))
_OPENROUTER_NAME = re.compile(r"free-models-per-(min|hour|day)")
_DURATION_S = re.compile(r"duration_s:\s*(\d+(?:\.\d+)?)")
_DURATION_TOPS = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))
_LIMIT_TYPES = (("byminute", "minute"), ("byhour", "hour"), ("byday", "day"), ("bymonth", "month"))
_MESSAGE_CUES = (  # longest window first: a day cap beats a minute cap
    ("month", ("per month",)),
    ("day", ("per day", "(rpd)", "(tpd)")),
    ("hour", ("per hour", "(rph)", "(tph)")),
    ("minute", ("per minute", "(rpm)", "(tpm)")),
)
_TRY_AGAIN = re.compile(r"(?:try again|retry) in ([0-9.]+[0-9.hmsunµ]*)")
_PER = r"s? per (?:min|hour|day|month)"
_METRIC_CUES = (
    (re.compile(rf"\btoken{_PER}|\(tp[mhd]\)"), "tokens"),
    (re.compile(rf"\brequest{_PER}|\(rp[mhd]\)|free-models-per-"), "requests"),
)
_NAMES = {"openai": "OpenAI", "openrouter": "OpenRouter", "sambanova": "SambaNova"}
_ADJECTIVES = {"minute": "per-minute", "hour": "hourly", "day": "daily", "month": "monthly"}


def _longest(windows: list[str]) -> str | None:
    ranks = [WINDOWS.index(w) for w in windows if w in WINDOWS]
    return WINDOWS[max(ranks)] if ranks else None


def _by_quota_id(ev: _Evidence) -> str | None:
    found = [w for q in ev.quota_ids for cue, w in _QUOTA_ID_WINDOWS if cue in q]
    return _longest(found)


def _by_openrouter_name(ev: _Evidence) -> str | None:
    found = _OPENROUTER_NAME.search(ev.text)
    return None if found is None else {"min": "minute"}.get(found[1], found[1])


def _by_duration_s(ev: _Evidence) -> str | None:
    found = _DURATION_S.search(ev.text)
    if found is None:
        return None
    seconds = float(found[1])
    return next((w for w, top in _DURATION_TOPS if seconds <= top), "month")


def _by_limit_type(ev: _Evidence) -> str | None:
    kind = ev.headers.get("x-ratelimit-type", "").lower()
    return next((w for cue, w in _LIMIT_TYPES if cue in kind), None)


def _by_groq_requests(ev: _Evidence) -> str | None:
    out = count(ev.headers.get("x-ratelimit-remaining-requests")) == 0
    return "day" if ev.dialect == "groq" and out else None


def _by_message(ev: _Evidence) -> str | None:
    return next((w for w, cues in _MESSAGE_CUES if any(c in ev.text for c in cues)), None)


def _by_exhausted_hint(ev: _Evidence) -> str | None:
    return _longest([h.window for h in ev.hints if h.remaining == 0])


_WINDOW_RULES = (
    _by_quota_id,
    _by_openrouter_name,
    _by_duration_s,
    _by_limit_type,
    _by_groq_requests,
    _by_message,
    _by_exhausted_hint,
)
"""How a 429 tells its window; the first rule that answers wins."""


def _delay_at(delay: object, now: float) -> float | None:
    """Epoch seconds of a google.protobuf.Duration: ``"37s"`` or ``{"seconds": 37, "nanos": 0}``."""
    if isinstance(delay, dict):
        seconds = as_number(str(delay.get("seconds", 0)))
        nanos = as_number(str(delay.get("nanos", 0)))
        if seconds is None or nanos is None or seconds < 0 or nanos < 0:
            return None
        return within_reach(now + seconds + nanos / 1e9, now)
    return parse_reset(delay, now) if isinstance(delay, str) else None


def _retry_candidates(ev: _Evidence, window: str | None, now: float) -> Iterator[float | None]:
    yield retry_after(ev.headers, now)
    yield from (_delay_at(delay, now) for delay in ev.delays)
    resets = [
        h.reset_at
        for h in ev.hints
        if h.remaining == 0 and h.window == window and h.reset_at is not None
    ]
    yield max(resets, default=None)
    yield parse_reset(ev.headers.get("x-ratelimit-reset", ""), now)
    for found in _TRY_AGAIN.finditer(ev.text):
        yield parse_reset(found[1].rstrip("."), now)


def _metric(ev: _Evidence, window: str | None) -> str | None:
    for quota_id in map(str.lower, ev.quota_ids):
        for metric in ("tokens", "requests"):
            if metric in quota_id:
                return metric
    cued = next((m for cue, m in _METRIC_CUES if cue.search(ev.text)), None)
    if cued is not None:
        return cued
    return next((h.metric for h in ev.hints if h.remaining == 0 and h.window == window), None)


def _reason(dialect: object, window: str | None, metric: str | None) -> str:
    key = str(dialect).strip()
    who = _NAMES.get(key.lower()) or key[:40].capitalize() or "Provider"
    if window is None:
        return f"{who} rate limit hit; no window stated"
    if metric is None:
        return f"{who} {_ADJECTIVES[window]} limit exhausted"
    return f"{who} {metric} per {window} exhausted"


def classify_429(dialect: str, headers: Mapping[str, str], body: object, now: float) -> RateLimited:
    """What a 429 means: which window ran out and when to come back.

    ``body`` is the provider's JSON error as the openai SDK gives it: a dict (wrapped in
    ``{"error": ...}`` or not), a list of them, a JSON string, or None. Headers copied into
    the body (OpenRouter's ``error.metadata.headers``) count when the real ones lack them.
    """
    key = dialect_of(dialect)
    text, quota_ids, delays, copied = _read_body(body)
    merged = {**copied, **lowered(headers)}
    ev = _Evidence(key, merged, hints_of(DIALECTS[key], merged, now), text, quota_ids, delays)
    window = next((w for rule in _WINDOW_RULES if (w := rule(ev)) is not None), None)
    if key == "openrouter" and window is not None:
        ev = replace(ev, hints=tuple(replace(h, window=window) for h in ev.hints))
    retry_at = next(
        (t for t in _retry_candidates(ev, window, now) if t is not None and t >= now), None
    )
    return RateLimited(window, retry_at, _reason(dialect, window, _metric(ev, window)))
