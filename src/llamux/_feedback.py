"""What a provider's answer means for routing: failover rules and rate-limit hints.

Pure: takes the failure and ``now``, returns a verdict; the router carries it out.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ._errors import ProviderError

RATE_LIMIT_COOLDOWN = 60.0
"""Seconds an endpoint rests after a 429 that names no reset time."""
TRANSIENT_COOLDOWN = 10.0
"""Seconds an endpoint rests after a 5xx, a timeout or a connection failure."""
DISABLE_FOR = 86400.0
"""Seconds an endpoint stays disabled after a bad key, no credit, a retired or unknown model."""


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


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait per ``retry-after-ms`` or ``retry-after`` (delta-seconds or HTTP-date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify(error: ProviderError, now: float) -> Verdict:
    """The failover rule for ``error`` (one branch per case)."""
    status = error.status
    if status is None:
        # No answer: refused connection (never reached it) or a timeout / cut (it may have).
        usage = "keep" if error.accepted else "release"
        return Verdict(True, TRANSIENT_COOLDOWN, "cooldown", usage, str(error))
    if status == 429:
        # Rate limited: rest until the provider's reset, the request itself counted.
        wait = retry_after(error.headers, now)
        rest = RATE_LIMIT_COOLDOWN if wait is None else max(1.0, math.ceil(wait))
        return Verdict(True, rest, "cooldown", "requests", f"HTTP 429: {error}")
    if status in (401, 403, 402, 410) or (status == 404 and _unknown_model(error)):
        # Bad key, no credit, retired endpoint or unknown model: another try fails the same.
        return Verdict(True, DISABLE_FOR, "disabled", "release", f"HTTP {status}: {error}")
    if status in (408, 409) or status >= 500:
        # Transient on the provider's side: rest briefly; it may have done the work.
        return Verdict(True, TRANSIENT_COOLDOWN, "cooldown", "keep", f"HTTP {status}: {error}")
    # 400, 404, 413, 422 ...: the request itself is wrong; every endpoint would refuse it.
    return Verdict(False, 0.0, "", "release", f"HTTP {status}: {error}")


def _unknown_model(error: ProviderError) -> bool:
    code = (error.code or "").lower()
    return "model" in code or "model" in str(error).lower()
