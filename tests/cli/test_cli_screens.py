"""``llamux status`` and ``llamux chat`` as people see them: captured on a terminal of 80 and
120 columns (a pseudo-terminal), piped, with ``COLUMNS`` and ``NO_COLOR``, against the fake
provider. Checked for the properties of ``cli_helpers.check_screen``: no broken id or header,
nothing wider than the screen, no traceback, the right exit code."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import (
    LONG_IDS,
    REPLY,
    check_screen,
    cli_env,
    fake_endpoints,
    llamux,
    long_id_table,
    on_terminal,
    plain,
)

from llamux import Router
from llamux.testing import FakeClock, FakeProvider

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(fake_endpoints()) as fake:
        yield fake


@pytest.fixture
def busy(provider: FakeProvider, tmp_path: Path, keys: str) -> tuple[str, str]:
    """(config, store) with some of everything: used rules, a nearly empty one (2/900), a
    full one, big limits (1.0M), an endpoint cooling down with a long reason."""
    config = long_id_table(provider, tmp_path / "endpoints.md", groq_rpm=2)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with Router.from_csv(config, store=store) as router:
        for _ in range(2):
            router.query(HI, model="groq:llama-3.3-70b-versatile")
        router.query(HI, model="cerebras:llama3.3-70b", max_tokens=9000)
        now = router.clock.now()
        own = router.quotas.own["openrouter:meta-llama/llama-3.3-70b-instruct:free"]
        reason = "HTTP 503: the upstream server is overloaded, please retry in a few seconds"
        router.store.cool_down(own, now + 25, reason, "cooldown", now)
    return config, store


@pytest.mark.parametrize("columns", [80, 120])
def test_status_on_a_terminal(busy: tuple[str, str], columns: int) -> None:
    config, store = busy
    code, out = on_terminal(llamux("--config", config, "status"), columns, cli_env(store))
    assert code == 0, out
    check_screen(out, columns)
    shown = plain(out)
    assert "\x1b[" in out  # coloured on a terminal
    assert "2/900" in shown and "1.0M" in shown and "0/1000000" not in shown
    flat = " ".join(re.sub("[│┃]", " ", shown).split())  # the state as one line
    assert re.search(r"cooldown 2\ds: HTTP 503: the upstream .* please retry in a few…", flat)
    line = next(line for line in shown.splitlines() if "2/900" in line)
    assert "░" * 10 in line  # 2 of 900 rounds to no cell at all
    if columns == 120:  # the table fits: boxed, the longest id in its column, whole
        assert "┃ endpoint" in shown and "│ groq:llama-3.3-70b-versatile" in shown
    else:  # each endpoint on a line of its own, its rules under it
        assert "\ngroq:llama-3.3-70b-versatile  full (rpm; frees in" in shown


@pytest.mark.parametrize("columns", [None, 80, 40, 30])
def test_status_piped_is_plain_and_never_breaks_an_id(
    busy: tuple[str, str], columns: int | None
) -> None:
    config, store = busy
    extra = {} if columns is None else {"COLUMNS": str(columns)}
    done = subprocess.run(
        llamux("--config", config, "status"),
        capture_output=True,
        text=True,
        env=cli_env(store, **extra),
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b[" not in out and "┃" not in out and "│" not in out  # plain text
    check_screen(out, columns)
    if columns is None:  # unbounded: one line per rule, headers first
        assert out.startswith("endpoint ") and "frees in" in out.splitlines()[0]
    if columns == 30:  # narrower than an id: shortened in its middle only
        assert "openrouter:meta…nstruct:free" in out or "…" in out
        assert "groq:llama-3.3-70b-versatile" in out  # 28 columns: it fits, whole


def test_no_color_on_a_terminal(busy: tuple[str, str]) -> None:
    config, store = busy
    env = cli_env(store, NO_COLOR="1")
    code, out = on_terminal(llamux("--config", config, "status"), 120, env)
    assert code == 0 and "\x1b[" not in out, out
    check_screen(out, 120)


@pytest.mark.parametrize("columns", [80, 120])
def test_chat_streams_on_a_terminal(
    provider: FakeProvider, tmp_path: Path, keys: str, columns: int
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md")
    env = cli_env(f"sqlite:///{tmp_path / 'state.db'}")
    argv = llamux("--config", config, "chat", "Why is the sky blue?")
    code, out = on_terminal(argv, columns, env)
    assert code == 0, out
    shown = plain(out)
    assert REPLY in shown and "served by groq:llama-3.3-70b-versatile" in shown
    assert "\x1b[2mserved by" in out  # the note is dim
    check_screen(out, columns, LONG_IDS[:1])


def test_chat_counts_down_while_it_waits_for_capacity(
    provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md", groq_rpm=1)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    groq = "groq:llama-3.3-70b-versatile"  # its one request a minute was sent 57 s ago
    with Router.from_csv(config, store=store, clock=FakeClock(time.time() - 57)) as router:
        router.query(HI, model=groq)
    argv = llamux("--config", config, "chat", "--model", groq, "--wait", "30", "Why?")
    started = time.monotonic()
    code, out = on_terminal(argv, 80, cli_env(store))
    assert code == 0, out
    assert time.monotonic() - started > 1.5
    assert "for capacity (groq:llama-3.3-70b-versatile rpm full)..." in out
    assert "\x1b[2mwaiting " in out and "\r\x1b[K" in out  # dim, then erased
    shown = plain(out)
    assert REPLY in shown and "waiting" not in shown  # the countdown line is gone
    check_screen(out, 80, LONG_IDS[:1])


def test_chat_waits_silently_when_stderr_is_not_a_terminal(
    provider: FakeProvider, tmp_path: Path, keys: str
) -> None:
    config = long_id_table(provider, tmp_path / "endpoints.md", groq_rpm=1)
    store = f"sqlite:///{tmp_path / 'state.db'}"
    with Router.from_csv(config, store=store, clock=FakeClock(time.time() - 58)) as router:
        router.query(HI, model="groq:llama-3.3-70b-versatile")
    argv = llamux("--config", config, "chat", "--model", "groq:llama-3.3-70b-versatile")
    done = subprocess.run(
        [*argv, "--wait", "30", "hi"], capture_output=True, text=True, env=cli_env(store)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == REPLY + "\n" and "waiting" not in done.stderr
    assert "\x1b[" not in done.stderr
