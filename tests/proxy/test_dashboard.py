"""The dashboard page, loaded in headless Chromium: a screenshot and the DOM show the bars."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import fake_table

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_chromium() -> str:
    """The path of a Chromium binary, installing Debian's ``chromium`` when root can.

    Calls ``pytest.skip`` with the reason when no browser is there and none can be installed.
    """
    found = _find_browser()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("Chromium is not installed and cannot be: needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "chromium"]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:  # maybe no package lists yet: update them once and retry
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, timeout=600)
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    found = _find_browser()
    if done.returncode != 0 or found is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip(f"Chromium could not be installed (apt-get install chromium): {tail}")
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    return ensure_chromium()


def browse(browser: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url``, never reaching past this machine."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1200,900",
        "--virtual-time-budget=3000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_the_dashboard_shows_quota_bars_and_the_request_chart(
    chromium: str, tmp_path: Path, keys: str
) -> None:
    endpoints = [FakeEndpoint(n, model=f"m-{n}") for n in ("groq", "cerebras", "mistral")]
    with FakeProvider(endpoints) as fake:
        table = tmp_path / "endpoints.md"
        rows = [("groq", "10 | 6000 | 1000"), ("cerebras", "3 | 60000 |"), ("mistral", "5 | |")]
        table.write_text(fake_table(fake, rows))
        router = Router.from_csv(table, store=MemoryStore())
        fake.inject("mistral", 503)
        with ProxyThread(create_app(router)) as running:
            post = f"{running.url}/v1/chat/completions"
            hello = [{"role": "user", "content": "Hello there, how are you?"}]
            for model in ["groq"] * 4 + ["cerebras"] * 4 + ["mistral"]:
                httpx.post(post, json={"model": model, "messages": hello, "max_tokens": 200})
            shot = tmp_path / "dashboard.png"
            taken = browse(chromium, f"{running.url}/", tmp_path / "p1", f"--screenshot={shot}")
            dom = browse(chromium, f"{running.url}/", tmp_path / "p2", "--dump-dom").stdout
    assert shot.is_file(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    bars = re.findall(r'<div class="bar" data-scope="([^"]+)" data-rule="([^"]+)"', dom)
    assert ("groq", "rpm") in bars and ("groq", "tpm") in bars and ("cerebras", "rpm") in bars
    assert re.search(r'class="fill full" style="width: 100(\.0)?%', dom), "cerebras is full"
    assert "cooldown" in dom and "<rect" in dom, "the cool-down and the chart are drawn"
    assert keys not in dom
