"""Test helpers shipped with llamux: a fake OpenAI-compatible provider and a fake clock.

``FakeProvider`` is a real HTTP server on 127.0.0.1 that serves chat completions, embeddings,
the Responses API and legacy text completions in the OpenAI wire format (each endpoint the
``KINDS`` in its ``serves``), enforces its own limits on all of them like a
strict provider (exact rolling windows counted when a request arrives), speaks the rate-limit
header dialects (and, with ``FakeEndpoint(standard_headers=True)``, the IETF
``RateLimit-Policy`` / ``RateLimit`` fields), answers OpenRouter's ``GET /{name}/v1/key``
for an ``openrouter`` endpoint, injects faults, can hold a request before counting it
(ingress latency) and traces what it admitted or refused; ``FakeClock`` moves only when told to, and
``hold_on_clock`` lets the provider's holds pass on it. Tests, the demo and the benchmarks use
them, so nothing needs the network.

``MockTransport(handler)`` is the unit-test twin: the router's real transport (the ``openai``
SDK, llamux's error boundary) with the HTTP connection replaced by ``handler``, a function
of a :class:`MockRequest` that returns :func:`mock_reply` or :func:`mock_error` (or raises
:func:`mock_refused`): no socket, no thread, no port.

Also here, for tests that check the fake itself or expect its exact numbers: the fault codes
``DROP`` (close the connection without answering) and ``CUT`` (cut the answer mid-way) for
``FakeProvider.inject``; the ``DIALECTS`` it speaks; its token counts
(``count_prompt_tokens``, ``count_text_tokens``, ``count_input_tokens``); its embedding of an
input (``fake_embedding``, ``DEFAULT_DIMENSIONS`` long unless asked); ``go_duration`` (how it
writes a reset delay); ``day_bounds`` (the local midnights around a moment); and its limiter
seen from inside: ``FakeEndpointState(endpoint).admit(clock, FakeRequest(...), completion_tokens)``
(``FakeChat`` is the same class, by its first name).
"""

from .._clock import FakeClock, SystemClock
from .._config.endpoint import KINDS
from ._dialects import DIALECTS
from ._embeddings import DEFAULT_DIMENSIONS, fake_embedding
from ._ingress import FakeAdmission, FakeHold, hold_on_clock
from ._limits import day_bounds
from ._mock import MockRequest, MockTransport, mock_error, mock_refused, mock_reply
from ._provider import (
    CUT,
    DROP,
    INGRESS_HEADER,
    FakeEndpoint,
    FakeProvider,
    FakeStats,
    count_input_tokens,
    count_prompt_tokens,
    count_text_tokens,
    go_duration,
)
from ._requests import _Request as FakeRequest
from ._state import _EndpointState as FakeEndpointState

FakeChat = FakeRequest  # its first name, from when the fake served chat only

__all__ = [
    "CUT",
    "DEFAULT_DIMENSIONS",
    "DIALECTS",
    "DROP",
    "INGRESS_HEADER",
    "KINDS",
    "FakeAdmission",
    "FakeChat",
    "FakeClock",
    "FakeEndpoint",
    "FakeEndpointState",
    "FakeHold",
    "FakeProvider",
    "FakeRequest",
    "FakeStats",
    "MockRequest",
    "MockTransport",
    "SystemClock",
    "count_input_tokens",
    "count_prompt_tokens",
    "count_text_tokens",
    "day_bounds",
    "fake_embedding",
    "go_duration",
    "hold_on_clock",
    "mock_error",
    "mock_refused",
    "mock_reply",
]
