"""Why nothing served: the providers (failed just now, or resting after failing) or quota."""

from __future__ import annotations

import pytest

from llamux import NoEndpointAvailable
from llamux._engine.served import Attempt


def unavailable(*attempts: Attempt) -> NoEndpointAvailable:
    return NoEndpointAvailable("nothing served", retry_after=None, attempts=attempts)


FAILED = Attempt("a", "failed", "HTTP 503", status=503)
REFUSED_429 = Attempt("a", "failed", "HTTP 429", status=429)
RESTING = Attempt("b", "refused", "cooldown: HTTP 500 from the provider")
DISABLED = Attempt("b", "refused", "disabled: HTTP 401 invalid key")
RESTING_429 = Attempt("b", "refused", "cooldown: HTTP 429 rate limited")
QUOTA = Attempt("c", "refused", "rpm 30/30 used")
SKIPPED = Attempt("d", "skipped", "no key")


@pytest.mark.parametrize(
    ("attempts", "failed", "down"),
    [
        ((FAILED, SKIPPED), True, True),
        ((FAILED, RESTING), False, True),
        ((DISABLED,), False, True),
        ((FAILED, REFUSED_429), False, False),
        ((FAILED, RESTING_429), False, False),
        ((FAILED, QUOTA), False, False),
        ((SKIPPED,), False, False),
        ((), False, False),
    ],
)
def test_providers_failed_and_down(attempts: tuple[Attempt, ...], failed: bool, down: bool) -> None:
    error = unavailable(*attempts)
    assert (error.providers_failed, error.providers_down) == (failed, down)
