"""Test helpers shipped with llamux: a fake OpenAI-compatible provider and a fake clock.

``FakeProvider`` is a real HTTP server on 127.0.0.1 that enforces its own limits like a
strict provider (exact rolling windows counted when a request arrives), speaks the rate-limit
header dialects, injects faults, can hold a request before counting it (ingress latency) and
traces what it admitted or refused; ``FakeClock`` moves only when told to, and
``hold_on_clock`` lets the provider's holds pass on it. Tests, the demo and the benchmarks use
them, so nothing needs the network.
"""

from ._clock import FakeClock, SystemClock
from ._fake_ingress import FakeAdmission, FakeHold, hold_on_clock
from ._fake_provider import INGRESS_HEADER, FakeEndpoint, FakeProvider, FakeStats

__all__ = [
    "INGRESS_HEADER",
    "FakeAdmission",
    "FakeClock",
    "FakeEndpoint",
    "FakeHold",
    "FakeProvider",
    "FakeStats",
    "SystemClock",
    "hold_on_clock",
]
