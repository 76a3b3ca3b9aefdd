"""What providers say about their own rate limits: headers and 429 bodies, as plain facts.

Pure: no I/O and no clock; every function takes ``now`` (epoch seconds). Never raises on
provider input: a garbage value becomes ``None`` or is skipped. The facts (header names per
dialect, window meanings, reset formats, 429 bodies) are in providers.md sections 2-4.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

MAX_DISTANCE = 400 * 86400.0
"""A reset or retry time further than this from now, either way, is garbage: no window is that
long (and a clock that far off is not worth believing)."""
EPOCH_MS_ABOVE = 1e11
"""A bare number above this is epoch milliseconds (1e11 s from now would be year 5138)."""
EPOCH_S_ABOVE = 1e9
"""A bare number above this (and not above ``EPOCH_MS_ABOVE``) is epoch seconds; below: a delay."""

WINDOWS = ("minute", "hour", "day", "month")
"""Every window a hint or a 429 may name, shortest first."""


@dataclass(frozen=True, slots=True)
class Hint:
    """What a provider says about one of its own limits."""

    metric: str  # "requests" | "tokens"
    window: str  # "minute" | "hour" | "day" | "month"
    limit: int | None
    remaining: int | None
    reset_at: float | None  # epoch seconds at which it is fully replenished / resets


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A 429, classified."""

    window: str | None  # "minute" | "hour" | "day" | "month" | None when nothing tells
    retry_at: float | None  # epoch seconds when the provider says to come back, if it says
    reason: str  # short human text, e.g. "Groq requests per day exhausted"


# --- Reset values -------------------------------------------------------------------------

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(rf"(?:{_GO_PART.pattern})+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def _number(text: str) -> float | None:
    """A finite float, or None."""
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _go_seconds(text: str) -> float | None:
    """Seconds in a Go duration (``1m30s``, ``2m59.56s``, ``12ms``, ``0s``), or None."""
    if not _GO_DURATION.fullmatch(text):
        return None
    total = sum(float(n) * _GO_UNITS[unit] for n, unit in _GO_PART.findall(text))
    return total if math.isfinite(total) else None


def _from_number(text: str, now: float) -> float | None:
    """A bare number: epoch ms, epoch seconds or seconds from now, by magnitude."""
    value = _number(text)
    if value is None or value < 0:
        return None
    if value > EPOCH_MS_ABOVE:
        return value / 1000
    return value if value > EPOCH_S_ABOVE else now + value


def _timestamp(text: str) -> float | None:
    """RFC 3339 / ISO 8601 or HTTP-date, as epoch seconds; a naive time is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def _sane(at: float | None, now: float) -> float | None:
    """``at`` unless it is not finite or absurdly far from ``now``."""
    if at is None or not math.isfinite(at) or abs(at - now) > MAX_DISTANCE:
        return None
    return at


def parse_reset(value: str, now: float) -> float | None:
    """Epoch seconds of a reset stated in any provider format, or None for garbage.

    Formats: a Go duration from now (``2m59.56s``); a bare number, which is epoch milliseconds
    above 1e11, epoch seconds above 1e9 and seconds from now otherwise (``33011.38``); an
    RFC 3339 / ISO 8601 timestamp or an HTTP-date. Negative delays and times more than
    ``MAX_DISTANCE`` from ``now`` are garbage; a recent time in the past is returned as stated.
    """
    if not isinstance(value, str) or not (text := value.strip()):
        return None
    for candidate in (text, text.split(",")[0].strip()):  # a header sent twice: "a, a"
        go = _go_seconds(candidate)
        at = now + go if go is not None else _from_number(candidate, now)
        at = at if at is not None else _timestamp(candidate)
        if (sane := _sane(at, now)) is not None:
            return sane
    return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Epoch seconds from ``retry-after-ms``, else ``retry-after`` (delta-seconds or HTTP-date)."""
    named = _lower(headers)
    millis = _number(named.get("retry-after-ms", "").strip())
    if millis is not None and millis >= 0 and (at := _sane(now + millis / 1000, now)):
        return at
    value = named.get("retry-after", "").strip()
    seconds = _number(value)
    if seconds is not None:
        return _sane(now + seconds, now) if seconds >= 0 else None
    return _sane(_timestamp(value), now) if value else None


# --- Headers per dialect ------------------------------------------------------------------

# (metric, window, limit header, remaining header, reset header)
_Spec = tuple[str, str, str, str, str]


def _spec(metric: str, window: str, pattern: str) -> _Spec:
    """The three header names of one limit; ``pattern`` has ``{}`` for limit/remaining/reset."""
    limit, remaining, reset = (pattern.format(f) for f in ("limit", "remaining", "reset"))
    return (metric, window, limit, remaining, reset)


_CEREBRAS = tuple(
    _spec(metric, window, f"x-ratelimit-{{}}-{metric}-{window}")
    for metric in ("requests", "tokens")
    for window in ("minute", "hour", "day")
)
_ANTHROPIC_TOKENS = ("tokens", "input-tokens", "output-tokens")
DIALECTS: dict[str, tuple[_Spec, ...]] = {
    "openai": (
        _spec("requests", "minute", "x-ratelimit-{}-requests"),
        _spec("tokens", "minute", "x-ratelimit-{}-tokens"),
    ),
    "groq": (  # same names as OpenAI, but the requests headers are per DAY
        _spec("requests", "day", "x-ratelimit-{}-requests"),
        _spec("tokens", "minute", "x-ratelimit-{}-tokens"),
    ),
    "cerebras": _CEREBRAS,
    "mistral": (
        _spec("tokens", "minute", "x-ratelimit-{}-tokens-minute"),
        _spec("requests", "minute", "x-ratelimit-{}-req-minute"),
        _spec("tokens", "month", "x-ratelimit-{}-tokens-month"),
        _spec("tokens", "minute", "ratelimitbysize-{}"),
        _spec("tokens", "minute", "x-ratelimitbysize-{}-minute"),
        _spec("tokens", "month", "x-ratelimitbysize-{}-month"),
    ),
    "anthropic": (  # input and output tokens are separate limits; report both as "tokens"
        _spec("requests", "minute", "anthropic-ratelimit-requests-{}"),
        *(_spec("tokens", "minute", f"anthropic-ratelimit-{k}-{{}}") for k in _ANTHROPIC_TOKENS),
    ),
    "openrouter": (_spec("requests", "minute", "x-ratelimit-{}"),),
    "sambanova": (
        _spec("requests", "minute", "x-ratelimit-{}-requests"),
        _spec("requests", "day", "x-ratelimit-{}-requests-day"),
    ),
    "gemini": (),
}
"""Header names per dialect; an unknown dialect reads as "openai". Its keys are exactly
``_endpoint.DIALECTS``, the one list of dialect names (a test holds them equal)."""


def _dialect(dialect: object) -> str:
    key = str(dialect).strip().lower()
    return key if key in DIALECTS else "openai"


def _lower(headers: object) -> dict[str, str]:
    """Header names lower-cased, values as text; anything unreadable gives no headers."""
    if not isinstance(headers, Mapping):
        return {}
    try:
        return {str(name).lower(): str(value) for name, value in headers.items()}
    except Exception:
        return {}


def _count(value: str | None) -> int | None:
    """A non-negative count (rounded down), or None; of a header sent twice, the first."""
    number = None if value is None else _number(value.split(",")[0].strip())
    return None if number is None or number < 0 else math.floor(number)


def _hints(specs: tuple[_Spec, ...], headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    found: dict[Hint, None] = {}
    for metric, window, limit, remaining, reset in specs:
        hint = Hint(
            metric,
            window,
            _count(headers.get(limit)),
            _count(headers.get(remaining)),
            parse_reset(headers.get(reset, ""), now),
        )
        if (hint.limit, hint.remaining, hint.reset_at) != (None, None, None):
            found[hint] = None
    return tuple(found)


def parse_headers(dialect: str, headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    """Every limit the response headers state, in ``dialect`` (see ``DIALECTS``)."""
    return _hints(DIALECTS[_dialect(dialect)], _lower(headers), now)


# --- 429 bodies ---------------------------------------------------------------------------


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
                headers.update(_lower(metadata.get("headers")))
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
    out = _count(ev.headers.get("x-ratelimit-remaining-requests")) == 0
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
        seconds = _number(str(delay.get("seconds", 0)))
        nanos = _number(str(delay.get("nanos", 0)))
        if seconds is None or nanos is None or seconds < 0 or nanos < 0:
            return None
        return _sane(now + seconds + nanos / 1e9, now)
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
    key = _dialect(dialect)
    text, quota_ids, delays, copied = _read_body(body)
    merged = {**copied, **_lower(headers)}
    ev = _Evidence(key, merged, _hints(DIALECTS[key], merged, now), text, quota_ids, delays)
    window = next((w for rule in _WINDOW_RULES if (w := rule(ev)) is not None), None)
    if key == "openrouter" and window is not None:
        ev = replace(ev, hints=tuple(replace(h, window=window) for h in ev.hints))
    retry_at = next(
        (t for t in _retry_candidates(ev, window, now) if t is not None and t >= now), None
    )
    return RateLimited(window, retry_at, _reason(dialect, window, _metric(ev, window)))
