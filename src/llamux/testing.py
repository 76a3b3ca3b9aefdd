"""Test helpers shipped with llamux: a fake OpenAI-compatible provider and a fake clock.

``FakeProvider`` is a real HTTP server on 127.0.0.1 that enforces its own limits like a
strict provider, speaks the rate-limit header dialects, injects faults and counts what it
served; ``FakeClock`` moves only when told to. Tests, the demo and the benchmarks use them,
so nothing needs the network.
"""

from ._clock import FakeClock, SystemClock
from ._fake_provider import FakeEndpoint, FakeProvider, FakeStats

__all__ = ["FakeClock", "FakeEndpoint", "FakeProvider", "FakeStats", "SystemClock"]
