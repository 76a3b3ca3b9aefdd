"""What a provider's answer means for routing: failover rules and rate-limit hints.

Pure: takes the failure and ``now``, returns a verdict; the router carries it out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._config.endpoint import limit_name
from .._errors import ProviderError
from .window import WINDOW_SECONDS

if TYPE_CHECKING:
    from .ratelimits import Hint

RATE_LIMIT_COOLDOWN = 60.0
"""Seconds an endpoint rests after a 429 that names no reset time."""
TRANSIENT_COOLDOWN = 10.0
"""Seconds an endpoint rests after a 5xx, a timeout or a connection failure."""
DISABLE_FOR = 86400.0
"""Seconds an endpoint stays disabled after a bad key, no credit, a retired or unknown model."""
PARK_PROBE = 3600.0
"""Seconds an endpoint is parked after a per-day 429 when neither the provider nor a calendar
reset says when its day ends (a rolling 24 h window frees gradually: look again in an hour)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do after a failed call.

    ``failover``: try the next endpoint (else raise to the caller); ``rest`` seconds out of
    rotation of ``kind`` (cooldown, parked, disabled); ``usage``: what the reservation
    becomes: ``release`` (never reached the provider), ``requests`` (the request counts, no
    tokens) or ``keep`` (it may have been processed: keep the estimate).
    """

    failover: bool
    rest: float
    kind: str
    usage: str
    reason: str


def classify(
    error: ProviderError, now: float, *, dialect: str = "openai", day_reset_at: float | None = None
) -> Verdict:
    """The failover rule for ``error`` (one branch per case).

    ``dialect`` tells how to read a 429; ``day_reset_at`` is when the endpoint's calendar
    day ends, if its daily limits are calendar ones.
    """
    status = error.status
    if status is None:
        # No answer: refused connection (never reached it) or a timeout / cut (it may have).
        usage = "keep" if error.accepted else "release"
        return Verdict(True, TRANSIENT_COOLDOWN, "cooldown", usage, str(error))
    if status == 429:
        # Rate limited: per day, park until the day ends; else cool down until the reset.
        return _rate_limited(error, now, dialect, day_reset_at)
    if status == 404 and _unsupported(error):
        # The model exists but does not take this kind of request (embeddings from a chat
        # model): try the next endpoint; the endpoint still serves its other kinds.
        return Verdict(True, 0.0, "", "release", f"HTTP 404: {error}")
    if status in (401, 403, 402, 410) or (status == 404 and _unknown_model(error)):
        # Bad key, no credit, retired endpoint or unknown model: another try fails the same.
        return Verdict(True, DISABLE_FOR, "disabled", "release", f"HTTP {status}: {error}")
    if status in (408, 409) or status >= 500:
        # Transient on the provider's side: rest briefly; it may have done the work.
        return Verdict(True, TRANSIENT_COOLDOWN, "cooldown", "keep", f"HTTP {status}: {error}")
    # 400, 404, 413, 422 ...: the request itself is wrong; every endpoint would refuse it.
    return Verdict(False, 0.0, "", "release", f"HTTP {status}: {error}")


_UNSUPPORTED = ("does not support", "not supported", "is not a chat model", "not a completion")


def _unsupported(error: ProviderError) -> bool:
    """A 404 saying the model does not take this kind of request (OpenAI: "This is not a
    chat model and thus not supported in the v1/chat/completions endpoint")."""
    text = str(error).lower()
    return any(cue in text for cue in _UNSUPPORTED)


def _unknown_model(error: ProviderError) -> bool:
    code = (error.code or "").lower()
    return "model" in code or "model" in str(error).lower()


def _rate_limited(
    error: ProviderError, now: float, dialect: str, day_reset_at: float | None
) -> Verdict:
    from .rate_limited import classify_429

    info = classify_429(dialect, error.headers, error.body, now)
    if info.window in ("day", "month"):
        until = info.retry_at or day_reset_at or now + PARK_PROBE
        reason = f"HTTP 429, {info.reason or 'daily quota exhausted'}"
        return Verdict(True, max(1.0, until - now), "parked", "requests", reason)
    wait = None if info.retry_at is None else info.retry_at - now
    rest = RATE_LIMIT_COOLDOWN if wait is None else max(1.0, math.ceil(wait))
    return Verdict(True, rest, "cooldown", "requests", f"HTTP 429: {error}")


WINDOW_REST: Mapping[str, float] = {"minute": 60.0, "hour": 3600.0}
"""How long to rest when a provider reports a limit exhausted but not when it resets."""


def exhausted(
    hints: Sequence[Hint], now: float, left: Mapping[str, int] | None = None
) -> tuple[tuple[float, str, str], ...]:
    """Rest periods for every limit the provider reports at 0 remaining.

    Until the provider's reset, else a whole window (a day: ``PARK_PROBE``). Resting more
    than an hour, or for a daily or monthly limit, is parking. A limit llamux itself counts
    as full (``left``: what llamux believes remains, per local rule name) needs no rest: its
    own buckets free each slot exactly when the window lets it go, where a reset header
    (OpenAI's "until fully reset") would keep the whole window idle. Unless the reset lies
    beyond that window: then the limit is not the one llamux counts (OpenRouter names no
    window: a "minute" that resets at midnight is a day), and it rests until the reset.
    """
    rests = []
    for hint in hints:
        if hint.remaining != 0 or (left is not None and _counted_full(hint, left, now)):
            continue
        until = hint.reset_at
        if until is None or until <= now:
            until = now + WINDOW_REST.get(hint.window, PARK_PROBE)
        long = hint.window in ("day", "month") or until - now > 3600
        reason = f"provider reports 0 {hint.metric} left this {hint.window}"
        rests.append((until, "parked" if long else "cooldown", reason))
    return tuple(rests)


def _counted_full(hint: Hint, left: Mapping[str, int], now: float) -> bool:
    """Whether llamux counts the hint's limit as full itself, in the same window."""
    seconds = WINDOW_SECONDS.get(hint.window)
    if seconds is None or left.get(rule_name(hint)) != 0:
        return False
    return hint.reset_at is None or hint.reset_at <= now + seconds + 1


def rule_name(hint: Hint) -> str:
    """The local rule a hint speaks of: rpm, tpm, rph, tph, rpd, tpd, rpmo or tpmo."""
    return limit_name(hint.metric, hint.window)


def debits(hints: Sequence[Hint], left: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Usage to absorb so that llamux's remaining never exceeds the provider's.

    ``left`` maps a local rule name (rpm, tpd, ...) to what llamux believes remains.
    Only tightens: a provider reporting more than llamux believes changes nothing.
    """
    out = []
    for hint in hints:
        if hint.remaining is None or hint.window not in WINDOW_SECONDS:
            continue
        name = rule_name(hint)
        believed = left.get(name)
        if believed is not None and hint.remaining < believed:
            out.append((name, believed - hint.remaining))
    return tuple(out)
