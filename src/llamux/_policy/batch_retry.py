"""When a batch tries an item again, and when its error is its result. Pure.

An item waits for capacity as long as it takes (a refusal for quota is never its result);
429s, 5xx, timeouts and connection errors fail over in the engine, and an item is tried
again until it has made ``max_attempts`` failed provider calls. What another endpoint would
refuse the same (400, 404, 422: the engine raises it), a request too large for every
endpoint, or one that nothing will admit before a fix (every key missing or refused) is the
item's result at once.
"""

from __future__ import annotations

from .._errors import LlamuxError, NoEndpointAvailable

RETRY_PAUSE = 1.0
"""Clock seconds before trying again an item whose endpoints all failed when none says when
it is back."""
LEAST_WAIT = 0.05
"""The shortest wait between two tries (capacity said to return "now" may be a bucket away)."""


def retry_in(error: LlamuxError, failures: int, max_attempts: int) -> float | None:
    """Seconds to wait before trying the item again after ``error``, or None: ``error`` is
    its result. ``failures``: the provider calls of the item that failed so far."""
    if not isinstance(error, NoEndpointAvailable) or failures >= max_attempts:
        return None  # the engine raised it (400/404/422, the last attempt), or it is local
    if error.retry_after is not None:
        return max(LEAST_WAIT, error.retry_after)
    return RETRY_PAUSE if failures else None
