"""The demo's scenario: three fake endpoints and the table the router reads for them.

In order of preference: ``fast-a``, whose table row is right; ``mid-b``, whose row says
rpm 15 where the provider allows 5 (a tier that changed since the table was written:
llamux keeps to the provider's limit from its first answer on); ``slow-c``, written
``auto`` (llamux learns its limits from its first answer, sending it one request at a time
until then). Together they admit 17 requests a minute. ``mid-b``'s real limit is above the
number of clients, so the requests sent to it before its first answer all fit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..testing._provider import FakeEndpoint

SPEED = 20.0
"""How much faster than real time the demo's clock runs: a minute passes in 3 s."""
KEY_ENV = "LLAMUX_DEMO_API_KEY"
KEY = "llamux-demo-not-a-secret"
COMPLETION_TOKENS = 100


@dataclass(frozen=True, slots=True)
class DemoEndpoint:
    """One fake endpoint: what the provider enforces, how fast it answers (simulated
    seconds), and what the router's table says of it."""

    name: str
    model: str
    rpm: int
    tpm: int
    latency: float
    table_rpm: str
    table_tpm: str

    @property
    def limits(self) -> str:
        """What the provider enforces: ``rpm 12 · tpm 2000``."""
        return f"rpm {self.rpm} · tpm {self.tpm}"

    @property
    def table(self) -> dict[str, str]:
        return {"rpm": self.table_rpm, "tpm": self.table_tpm}

    @property
    def written(self) -> str:
        """What the table says, for people: ``the same``, ``rpm 30``, ``auto``."""
        if self.table == {"rpm": str(self.rpm), "tpm": str(self.tpm)}:
            return "the same"
        if set(self.table.values()) == {"auto"}:
            return "auto"
        return " · ".join(f"{k} {v}" for k, v in self.table.items() if v != str(getattr(self, k)))

    def fake(self, speed: float) -> FakeEndpoint:
        """The fake provider's endpoint; its answer delay, real seconds, is ``latency`` on
        a clock ``speed`` times faster."""
        return FakeEndpoint(
            self.name,
            model=self.model,
            rpm=self.rpm,
            tpm=self.tpm,
            delay=self.latency / speed,
            completion_tokens=COMPLETION_TOKENS,
            api_key=KEY,
        )


ENDPOINTS = (
    DemoEndpoint("fast-a", "fast-model", 8, 1500, 1.0, "8", "1500"),
    DemoEndpoint("mid-b", "mid-model", 5, 1000, 1.5, "15", "1000"),
    DemoEndpoint("slow-c", "slow-model", 4, 800, 2.5, "auto", "auto"),
)
"""In order of preference."""
PREFERRED = ENDPOINTS[0].name
CAPACITY = sum(e.rpm for e in ENDPOINTS)
"""Requests a minute the three admit together."""


def table_text(base_url: Callable[[str], str]) -> str:
    """The endpoints table the router reads (``base_url``: an endpoint's URL by name)."""
    lines = ["| name | provider | model | base_url | api_key_env | rpm | tpm |", "|-|-|-|-|-|-|-|"]
    for e in ENDPOINTS:
        url = base_url(e.name)
        lines.append(
            f"| {e.name} | fake | {e.model} | {url} | {KEY_ENV} | {e.table_rpm} | {e.table_tpm} |"
        )
    return "\n".join(lines) + "\n"
