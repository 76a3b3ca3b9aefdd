"""The fake provider's endpoints as values: what each one enforces and simulates
(:class:`FakeEndpoint`), and what it did (:class:`FakeStats`)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from .._config.endpoint import DIALECTS, KINDS
from ._ingress import check_seconds


@dataclass(frozen=True)
class FakeEndpoint:
    """One fake endpoint, served under ``/{name}/v1`` (an ``openrouter`` one also answers
    ``GET /{name}/v1/key``, see :mod:`llamux.testing._provider`).

    Limits of None are unlimited: ``rpm`` / ``rph`` / ``rpd`` requests and ``tpm`` / ``tph`` /
    ``tpd`` tokens per minute, hour and day (``rpmo`` / ``tpmo``: per rolling 30 days).
    ``dialect`` is one of ``DIALECTS`` and picks the rate-limit headers and 429 bodies.
    ``day_reset``, an IANA timezone such as ``"America/Los_Angeles"`` or ``"UTC"``, makes
    ``rpd`` and ``tpd`` calendar days there.
    ``delay`` is really slept before answering an admitted request (429s and injected faults
    answer at once). A request that could never fit a limit (for example ``max_tokens`` above
    ``tpm``) gets a 429 "Request too large" without ``retry-after``.

    ``ingress`` holds every request (of any kind) that many seconds *before* it is counted (see the
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

    ``serves`` is the kinds of request it takes, of ``"chat"`` (``POST chat/completions``),
    ``"embeddings"`` (``POST embeddings``), ``"responses"`` (``POST responses``) and
    ``"completions"`` (``POST completions``, legacy text completions); default: all four. A
    request of another kind answers 404 "The model `m` does not support embeddings: ...", as
    a real provider does, charging nothing; it is held like any request, then traced (status
    404) and counted in :attr:`FakeStats.unsupported`. ``max_inputs`` is the most inputs one
    embeddings request may carry (None: unlimited); more answer 400 and charge nothing.
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
    serves: frozenset[str] = frozenset(KINDS)
    max_inputs: int | None = None
    rpmo: int | None = None
    tpmo: int | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"endpoint name must be a non-empty path segment: {self.name!r}")
        if isinstance(self.serves, str) or not set(self.serves) <= set(KINDS):
            known = ", ".join(repr(k) for k in KINDS)
            raise ValueError(f"serves must be a set of {known}, not {self.serves!r}")
        object.__setattr__(self, "serves", frozenset(self.serves))
        most = self.max_inputs
        if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 1):
            raise ValueError(f"max_inputs must be a positive integer or None, not {most!r}")
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
    """What one endpoint did (of every kind, or of one: ``FakeProvider.stats(name, kind)``).

    ``served``: admitted and answered; ``refused``: 429s of its limits; ``failed``: injected
    faults (and answers cut mid-way, which were admitted); ``unsupported``: 404s for a kind
    of request the endpoint does not serve (see ``FakeEndpoint.serves``). Token sums cover
    served (and cut) requests.
    """

    served: int = 0
    refused: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    unsupported: int = 0

    def plus(self, deltas: Mapping[str, int]) -> FakeStats:
        return FakeStats(**{k: getattr(self, k) + deltas.get(k, 0) for k in vars(self)})
