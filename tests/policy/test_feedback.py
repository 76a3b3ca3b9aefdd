"""Failover verdicts and Retry-After parsing."""

from __future__ import annotations

import pytest

from llamux._errors import ProviderError
from llamux._policy.feedback import (
    DISABLE_FOR,
    RATE_LIMIT_COOLDOWN,
    TRANSIENT_COOLDOWN,
    classify,
)

NOW = 1_767_225_600.0


def err(
    status: int | None,
    *,
    code: str | None = None,
    accepted: bool = False,
    headers: dict[str, str] | None = None,
    message: str = "x",
) -> ProviderError:
    return ProviderError(
        message, endpoint="e", status=status, code=code, accepted=accepted, headers=headers
    )


@pytest.mark.parametrize(
    ("error", "failover", "rest", "kind", "usage"),
    [
        (err(429, headers={"retry-after": "7"}), True, 7, "cooldown", "requests"),
        (err(429), True, RATE_LIMIT_COOLDOWN, "cooldown", "requests"),
        (err(500), True, TRANSIENT_COOLDOWN, "cooldown", "keep"),
        (err(503), True, TRANSIENT_COOLDOWN, "cooldown", "keep"),
        (err(408), True, TRANSIENT_COOLDOWN, "cooldown", "keep"),
        (err(None), True, TRANSIENT_COOLDOWN, "cooldown", "release"),
        (err(None, accepted=True), True, TRANSIENT_COOLDOWN, "cooldown", "keep"),
        (err(401), True, DISABLE_FOR, "disabled", "release"),
        (err(402), True, DISABLE_FOR, "disabled", "release"),
        (err(403), True, DISABLE_FOR, "disabled", "release"),
        (err(410), True, DISABLE_FOR, "disabled", "release"),
        (err(404, code="model_not_found"), True, DISABLE_FOR, "disabled", "release"),
        (err(404, message="no such route"), False, 0, "", "release"),
        # the model exists but takes no such request: the next endpoint, nothing disabled
        (
            err(404, message="The model `m` does not support embeddings: it is not supported"),
            True,
            0,
            "",
            "release",
        ),
        (
            err(404, message="This is not a chat model and thus not supported in the v1/chat"),
            True,
            0,
            "",
            "release",
        ),
        (err(400), False, 0, "", "release"),
        (err(422), False, 0, "", "release"),
    ],
)
def test_failover_rules(
    error: ProviderError, failover: bool, rest: float, kind: str, usage: str
) -> None:
    verdict = classify(error, NOW)
    assert (verdict.failover, verdict.rest, verdict.kind, verdict.usage) == (
        failover,
        rest,
        kind,
        usage,
    )
