"""``llamux demo``: its outcome checked on the data, its plain and live output captured.

The demo runs on simulated time; the tests run it faster (``FAST``) than the command does,
which changes how long it takes, not what it shows.
"""

from __future__ import annotations

import io
import os
import re
import time

import pytest
from rich.console import Console

from llamux._clock import ScaledClock
from llamux.cli._demo import play, run_demo
from llamux.cli._demo_report import Report
from llamux.cli._demo_scenario import ENDPOINTS, KEY_ENV, PREFERRED
from llamux.cli._demo_summary import print_summary

from conftest import run_cli

FAST = 60.0
"""The tests' clock speed (the command's is 20x)."""
IDS = [e.name for e in ENDPOINTS]


def console(width: int, *, terminal: bool = False) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, force_terminal=terminal, highlight=False), out


@pytest.fixture(autouse=True)
def no_demo_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def plain80() -> tuple[Report, str]:
    """One run of 40 requests (the command's default), its plain output at 80 columns."""
    shown, out = console(80)
    report = play(40, 20.0, shown, FAST)
    print_summary(shown, report, 20.0)
    return report, out.getvalue()


def check_plain(out: str, width: int) -> None:
    """No traceback, no line wider than the console, no endpoint id cut by a line end."""
    assert "Traceback" not in out
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), max(lines, key=len)
    joined = re.sub(r"\s*\n\s*", "", out)  # an id cut by a line end is whole here only
    for name in IDS:
        assert name in out and out.count(name) == joined.count(name), name


# ------------------------------------------------------------------ the outcome


def test_every_request_is_served_and_the_provider_refuses_none(
    plain80: tuple[Report, str],
) -> None:
    report, _ = plain80
    assert report.ok and report.served == report.requests == 40
    assert report.refused == 0 and report.failed_over == 0
    served = report.served_by()
    assert {name: report.stats[name].served for name in IDS} == {n: served[n] for n in IDS}
    assert all(served[name] > 0 for name in IDS)
    assert served[PREFERRED] == max(served.values())
    assert KEY_ENV not in os.environ


def test_the_wrong_row_is_tightened_and_the_auto_row_learned(plain80: tuple[Report, str]) -> None:
    report, _ = plain80
    learned = report.learned()
    assert learned["mid-b"] == {"rpm": (5, "tightened")}
    assert learned["slow-c"] == {"rpm": (4, "learned"), "tpm": (800, "learned")}
    assert PREFERRED not in learned
    assert any("your table says rpm 15; the provider states 5" in w for w in report.warnings)
    kinds = [e.kind for e in report.events]
    assert kinds.count("learned") == 2 and "429" not in kinds


def test_traffic_moves_down_waits_and_flows_back_when_the_window_rolls(
    plain80: tuple[Report, str],
) -> None:
    report, _ = plain80
    sent = [o.endpoint for o in sorted(report.outcomes, key=lambda o: o.number)]
    assert sent[:9] == [PREFERRED] * 8 + ["mid-b"]  # its rpm 8, then down the order
    answered = [o.endpoint for o in report.outcomes]
    down = answered.index("slow-c")
    assert PREFERRED in answered[down:]  # back on it after its window rolled
    back = [e for e in report.kinds("back") if e.endpoint == PREFERRED]
    assert back and back[0].at > 60
    assert report.kinds("wait") and report.waits()
    assert any(o.waited > 10 for o in report.outcomes)
    assert report.simulated > 150  # several simulated minutes


def test_it_ends_calm(plain80: tuple[Report, str]) -> None:
    report, out = plain80
    assert set(report.states().values()) == {"ok"}
    assert report.kinds("calm")
    assert report.outcomes[-1].endpoint == PREFERRED
    assert "cooldown" not in out


# ------------------------------------------------------------------ what it shows


def test_plain_output_at_80_columns(plain80: tuple[Report, str]) -> None:
    _, out = plain80
    check_plain(out, 80)
    for said in (
        "on simulated time: the clock runs 60x",
        "rpm 15 (out of date)",
        "auto (llamux learns them)",
        "fast-a full (rpm 8/8): traffic moves down to mid-b",
        "mid-b: the provider states rpm 5 (the table says 15): llamux keeps to 5",
        "slow-c (auto in the table): its first answer states rpm 4 · tpm 800",
        "traffic flows back to fast-a",
        "the rush is over",
        "mid-b rpm 5 (the table said 15)",
        "slow-c rpm 4 · tpm 800 (the table said auto)",
        "✓ all 40 requests served without a single 429",
    ):
        assert said in " ".join(out.split()), said
    assert "requests served         40/40" in out
    assert "429s from the provider  0" in out


def test_plain_output_at_120_columns() -> None:
    shown, out = console(120)
    assert run_demo(40, 20.0, shown, FAST) == 0
    text = out.getvalue()
    check_plain(text, 120)
    assert "all 3 full: requests wait" in text
    assert "at the end              fast-a  ok" in text


def test_the_live_view_runs_on_a_terminal() -> None:
    shown, out = console(80, terminal=True)
    assert run_demo(12, 20.0, shown, FAST) == 0
    text = out.getvalue()
    assert "Traceback" not in text and "what happened" in text
    assert "✓ all 12 requests served without a single 429" in text


def test_the_command_keeps_its_promise(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "demo", "--requests", "12", "--seconds", "15")
    assert code == 0
    assert "requests served         12/12" in out
    assert "429s from the provider  0" in out
    assert "✓ all 12 requests served without a single 429" in out
    assert "fast-a full (rpm 8/8): traffic moves down to mid-b" in out
    assert KEY_ENV not in os.environ


def test_too_short_a_bound_says_what_to_give() -> None:
    shown, out = console(100)
    assert run_demo(40, 1.0, shown, FAST) == 1
    text = " ".join(out.getvalue().split())
    assert "requests not served" in text and "give --seconds" in text


# ------------------------------------------------------------------ the clock


def test_a_scaled_clock_runs_speed_times_faster_and_sleeps_a_speedth() -> None:
    clock = ScaledClock(50.0, start=1000.0)
    assert 1000.0 <= clock.now() < 1001.0
    began, real = clock.now(), time.monotonic()
    clock.sleep(5.0)  # 0.1 s of real time
    slept = time.monotonic() - real
    assert 0.09 <= slept < 1.0
    assert clock.now() - began == pytest.approx(slept * 50.0, rel=0.05)
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(0)
