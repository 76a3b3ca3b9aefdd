"""What providers say about their own rate limits in headers, as plain facts.

Pure: no I/O and no clock; every function takes ``now`` (epoch seconds). Never raises on
provider input: a garbage value becomes ``None`` or is skipped. The facts (header names per
dialect, window meanings, reset formats) are in providers.md sections 2-4; what a 429 says
is read in ``rate_limited``.

Every dialect also reads the IETF ``RateLimit-Policy`` / ``RateLimit`` fields (and the older
drafts' ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset``), so an API that adopts the
standard needs no new dialect; how their windows map onto llamux's, conservatively, is in
``ietf_fields``. OpenRouter's ``X-RateLimit-*`` headers name no window: it is read from the
reset (see ``window_by_reset``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .ietf_fields import FIELD_NAMES, LLAMUX_WINDOWS, standard_quotas

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
    used: int | None = None  # usage the provider states (a 429 body: "Used 197204")


# --- Reset values -------------------------------------------------------------------------

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(rf"(?:{_GO_PART.pattern})+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def as_number(text: str) -> float | None:
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
    value = as_number(text)
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
        from email.utils import parsedate_to_datetime  # HTTP-dates are rare: not at import

        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def within_reach(at: float | None, now: float) -> float | None:
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
        if (sane := within_reach(at, now)) is not None:
            return sane
    return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Epoch seconds from ``retry-after-ms``, else ``retry-after`` (delta-seconds or HTTP-date)."""
    named = lowered(headers)
    millis = as_number(named.get("retry-after-ms", "").strip())
    if millis is not None and millis >= 0 and (at := within_reach(now + millis / 1000, now)):
        return at
    value = named.get("retry-after", "").strip()
    seconds = as_number(value)
    if seconds is not None:
        return within_reach(now + seconds, now) if seconds >= 0 else None
    return within_reach(_timestamp(value), now) if value else None


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
    "openrouter": (  # names no window: dialect_hints reads it from the reset
        _spec("requests", "minute", "x-ratelimit-{}"),
    ),
    "sambanova": (
        _spec("requests", "minute", "x-ratelimit-{}-requests"),
        _spec("requests", "day", "x-ratelimit-{}-requests-day"),
    ),
    "gemini": (),
}
"""Header names per dialect; an unknown dialect reads as "openai". Its keys are exactly
``_endpoint.DIALECTS``, the one list of dialect names (a test holds them equal)."""


def dialect_of(dialect: object) -> str:
    key = str(dialect).strip().lower()
    return key if key in DIALECTS else "openai"


def lowered(headers: object) -> dict[str, str]:
    """Header names lower-cased, values as text; anything unreadable gives no headers."""
    if not isinstance(headers, Mapping):
        return {}
    try:
        return {str(name).lower(): str(value) for name, value in headers.items()}
    except Exception:
        return {}


def count(value: str | None) -> int | None:
    """A non-negative count (rounded down), or None; of a header sent twice, the first."""
    number = None if value is None else as_number(value.split(",")[0].strip())
    return None if number is None or number < 0 else math.floor(number)


def hints_of(specs: tuple[_Spec, ...], headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    found: dict[Hint, None] = {}
    for metric, window, limit, remaining, reset in specs:
        stated, left, resets = headers.get(limit), headers.get(remaining), headers.get(reset)
        if stated is None and left is None and resets is None:
            continue  # the common case: most specs name headers this answer lacks
        hint = Hint(metric, window, count(stated), count(left), parse_reset(resets or "", now))
        if (hint.limit, hint.remaining, hint.reset_at) != (None, None, None):
            found[hint] = None
    return tuple(found)


WINDOW_SLACK = 60.0
"""Seconds a reset may lie beyond its window's length (clock skew, rounding) and still be
read as that window by ``window_by_reset``."""


def window_by_reset(reset_at: float | None, now: float) -> str:
    """The window of a limit that names none, from how far away its reset is.

    A reset at most a minute away (plus ``WINDOW_SLACK``) is a minute's, at most an hour away
    an hour's, further a day's; no reset reads as a minute (a count that names no window is
    applied where it frees soonest).
    """
    if reset_at is None:
        return "minute"
    distance = reset_at - now
    return next((w for w, s in LLAMUX_WINDOWS if distance <= s + WINDOW_SLACK), "day")


def _at_utc_midnight(at: float | None) -> bool:
    return at is not None and abs(at - round(at / 86400) * 86400) < 1


def openrouter_window(reset_at: float | None, now: float) -> str:
    """The window of OpenRouter's ``X-RateLimit-*`` headers, which name none.

    Its free-model day ends at UTC midnight, so a reset exactly on one is the day's,
    however near; otherwise ``window_by_reset``.
    """
    return "day" if _at_utc_midnight(reset_at) else window_by_reset(reset_at, now)


def dialect_hints(key: str, headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    """The limits the dialect's own headers state (``key`` a known dialect, names lowered)."""
    hints = hints_of(DIALECTS[key], headers, now)
    if key != "openrouter":
        return hints
    found = (replace(h, window=openrouter_window(h.reset_at, now)) for h in hints)
    return tuple(dict.fromkeys(found))


def standard_hints(headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    """The limits the IETF RateLimit fields state (names lower-cased), whatever the dialect.

    A quota whose policy names no window gets one from its reset (``window_by_reset``).
    """
    found: dict[Hint, None] = {}
    for quota in standard_quotas(headers):
        reset_at = None if quota.reset is None else parse_reset(quota.reset, now)
        window = quota.window or window_by_reset(reset_at, now)
        hint = Hint(quota.metric, window, quota.limit, quota.remaining, reset_at)
        if (hint.limit, hint.remaining, hint.reset_at) != (None, None, None):
            found[hint] = None
    return tuple(found)


def _read_by(key: str) -> frozenset[str]:
    """Every header name a dialect's limits or the IETF fields are read from (lower case)."""
    return frozenset([name for spec in DIALECTS[key] for name in spec[2:]] + list(FIELD_NAMES))


_READ = {key: _read_by(key) for key in DIALECTS}


def parse_headers(dialect: str, headers: Mapping[str, str], now: float) -> tuple[Hint, ...]:
    """Every limit the response headers state: in ``dialect`` (see ``DIALECTS``), then in the
    IETF RateLimit fields (see ``ietf_fields``), without repeats."""
    named = lowered(headers)
    key = dialect_of(dialect)
    if _READ[key].isdisjoint(named):
        return ()  # most answers of most providers: nothing to parse
    own = dialect_hints(key, named, now)
    return tuple(dict.fromkeys(own + standard_hints(named, now)))
