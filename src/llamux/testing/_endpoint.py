"""The fake provider's endpoints as values: what each one enforces and simulates
(:class:`FakeEndpoint`), and what it did (:class:`FakeStats`)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass

from .._config.endpoint import DIALECTS
from ._ingress import check_seconds


@dataclass(frozen=True)
class FakeEndpoint:
    """One fake endpoint, served under ``/{name}/v1`` (an ``openrouter`` one also answers
    ``GET /{name}/v1/key``, see :mod:`llamux.testing._provider`).

    Limits of None are unlimited: ``rpm`` / ``rph`` / ``rpd`` requests and ``tpm`` / ``tph`` /
    ``tpd`` tokens per minute, hour and day. ``dialect`` is one of ``DIALECTS`` and picks the
    rate-limit headers and 429 bodies. ``day_reset``, an IANA timezone such as
    ``"America/Los_Angeles"`` or ``"UTC"``, makes ``rpd`` and ``tpd`` calendar days there.
    ``delay`` is really slept before answering an admitted request (429s and injected faults
    answer at once). A request that could never fit a limit (for example ``max_tokens`` above
    ``tpm``) gets a 429 "Request too large" without ``retry-after``.

    ``ingress`` holds every chat request that many seconds *before* it is counted (see the
    module's docstring). ``retry_after=False`` sends no ``retry-after`` with any 429 (as some
    Groq 429s: the body's "Please try again in 3.5s" is the only hint). ``rate_headers=False``
    sends no rate-limit headers at all, on answers or 429s, so the limits are stated only in
    the 429 bodies (openai, groq: "Limit 200000, Used 197204, Requested 3000"; gemini;
    sambanova). The groq dialect never sends its per-day token limit in a header anyway.
    ``standard_headers=True`` also sends the IETF ``RateLimit-Policy`` / ``RateLimit`` fields
    for every limit, on answers and 429s, beside the dialect's headers (or alone, with
    ``rate_headers=False``), as an API that adopted the draft would (see ``_dialects``).
    ``usage=False`` answers without usage: no ``usage`` in a JSON answer and no usage chunk
    in a stream, even when ``stream_options.include_usage`` asks for it (some servers); the
    tokens are still charged to the windows and counted in :class:`FakeStats`.
    ``chunk_delay`` is really slept between the events of a stream (a slow answer).
    """

    name: str
    model: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    dialect: str = "openai"
    delay: float = 0.0
    reply: str = "Hello from the fake provider."
    completion_tokens: int | None = None
    api_key: str | None = None
    rph: int | None = None
    tph: int | None = None
    tpd: int | None = None
    day_reset: str | None = None
    ingress: float = 0.0
    retry_after: bool = True
    rate_headers: bool = True
    usage: bool = True
    chunk_delay: float = 0.0
    standard_headers: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"endpoint name must be a non-empty path segment: {self.name!r}")
        check_seconds("ingress", self.ingress)
        check_seconds("chunk_delay", self.chunk_delay)
        if self.dialect not in DIALECTS:
            known = ", ".join(repr(d) for d in DIALECTS)
            raise ValueError(f"dialect must be one of {known}, not {self.dialect!r}")
        if self.day_reset is not None:
            try:
                zoneinfo.ZoneInfo(self.day_reset)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"day_reset is not a known timezone: {self.day_reset!r}") from exc


@dataclass(frozen=True)
class FakeStats:
    """What one endpoint did; token sums cover served (and cut) requests."""

    served: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
