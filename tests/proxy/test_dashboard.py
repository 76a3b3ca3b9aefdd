"""The dashboard page, loaded in headless Chromium: screenshots at a desktop's and a phone's
width, and the DOM measured in the page (a probe page frames it at a given width): the
bars, the speed figures and counts, no horizontal overflow, no long id or reason cut without
a way to read it, and the recent-requests list filling as requests are made."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from proxy_helpers import BUSY_REASON, LONG_ID, busy_proxy
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.proxy import ProxyThread, create_app
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import KEY, fake_table

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


def browse(
    browser: str,
    url: str,
    profile: Path,
    *extra: str,
    size: str = "1200,900",
    budget: int = 3000,
) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url`` (a window of ``size`` pixels, ``budget`` ms of virtual
    time), never reaching past this machine."""
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
        f"--window-size={size}",
        f"--virtual-time-budget={budget}",
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


PROBE = """<!doctype html><meta charset="utf-8"><title>probe</title>
<iframe id="page" src="/" style="width:WIDTHpx;height:6000px;border:0"></iframe>
<pre id="out">waiting</pre>
<script>
"use strict";
const frame = document.getElementById("page");
const READABLE = ".name, .sub, .ep, .detail, .why, .legend span, .head-text, .warnings p, .pill";
function measure() {
  const page = frame.contentDocument;
  const root = page.documentElement;
  const cut = [];
  for (const node of page.querySelectorAll(READABLE)) {
    const hidden = node.scrollWidth > node.clientWidth + 1 ||
                   node.scrollHeight > node.clientHeight + 1;
    const text = node.textContent.trim();
    if (hidden && !(node.title && node.title.includes(text))) cut.push(text);
  }
  const wide = [...page.querySelectorAll("body *")]
    .filter((node) => node.getBoundingClientRect().right > root.clientWidth + 1)
    .map((node) => node.tagName + "." + node.className);
  const cards = [...page.querySelectorAll("#endpoints .card")].map((card) => ({
    id: card.dataset.id,
    pill: card.querySelector(".pill").textContent,
    note: (card.querySelector(".note") || {}).textContent || "",
    stats: Object.fromEntries([...card.querySelectorAll(".stat")].map(
      (stat) => [stat.querySelector("span").textContent, stat.querySelector("b").textContent])),
  }));
  const rows = [...page.querySelectorAll("#requests .req")].map((row) => row.textContent);
  const name = page.querySelector("#endpoints .name");
  const kept = Boolean(name && name.firstChild && name.lastChild.probed);
  if (name && name.lastChild) name.lastChild.probed = true;  // is it the same text node later?
  return { scrollWidth: root.scrollWidth, width: root.clientWidth, cut, wide, cards, rows,
           kept, rects: page.querySelectorAll("#tokens-chart rect").length };
}
frame.onload = () => setTimeout(async () => {
  const before = measure();
  for (let i = 0; i < ASKS; i++) {
    await fetch("/v1/chat/completions", { method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "groq-probe", messages: [{ role: "user", content: "hi" }] }) });
  }
  setTimeout(() => {
    document.getElementById("out").textContent = JSON.stringify({ before, after: measure() });
  }, 3000);
}, 1500);
</script>"""


def probe(chromium: str, url: str, profile: Path, width: int, asks: int = 0) -> dict[str, Any]:
    """The dashboard's DOM measured in Chromium at ``width`` pixels, before and after the
    probe page makes ``asks`` chat requests (the page refreshes every 2 s)."""
    dom = browse(
        chromium,
        f"{url}/probe?width={width}&asks={asks}",
        profile,
        "--dump-dom",
        size=f"{width + 40},1000",
        budget=20000,
    ).stdout
    found = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert found and found.group(1) != "waiting", dom[-2000:]
    result: dict[str, Any] = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<"))
    return result


def add_probe(app: Any) -> None:
    async def page(request: Request) -> HTMLResponse:
        width, asks = request.query_params["width"], request.query_params["asks"]
        return HTMLResponse(PROBE.replace("WIDTH", width).replace("ASKS", asks))

    app.router.routes.append(Route("/probe", page))


@pytest.mark.slow
def test_the_dashboard_on_a_desktop_and_a_phone(chromium: str, tmp_path: Path, keys: str) -> None:
    """Screenshots at 1280 and 390 pixels (kept in $LLAMUX_SCREENSHOTS when set), and
    what the page shows: speed and counts per endpoint, the state badge said in words, long
    ids and reasons readable, nothing wider than a phone, requests listed as they come."""
    shots = Path(os.environ.get("LLAMUX_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with busy_proxy(tmp_path) as (url, app):
        add_probe(app)
        activity = httpx.get(f"{url}/v1/llamux/requests").json()
        for width, height in ((1280, 2000), (390, 3400)):
            shot = shots / f"dashboard-{width}.png"
            taken = browse(
                chromium,
                f"{url}/",
                tmp_path / f"s{width}",
                f"--screenshot={shot}",
                size=f"{width},{height}",
            )
            assert shot.is_file() and shot.stat().st_size > 50_000, taken.stderr[-2000:]
        desktop = probe(chromium, url, tmp_path / "d", 1280)["before"]
        phone = probe(chromium, url, tmp_path / "m", 390)["before"]
    for view in (desktop, phone):
        assert view["scrollWidth"] <= view["width"], view["wide"]
        assert not view["wide"], view["wide"]
        assert not view["cut"], "cut with no way to read it whole"
        assert view["rects"] > 0, "the tokens chart is drawn"
    cards = {card["id"]: card for card in phone["cards"]}
    groq = cards["groq:llama-3.3-70b-versatile"]
    assert re.fullmatch(r"\d+ ms|\d+\.\d\d s", groq["stats"]["latency"]), groq
    assert re.fullmatch(r"\d+", groq["stats"]["tokens/s"]), groq
    counts = activity["endpoints"]["groq:llama-3.3-70b-versatile"]
    assert groq["stats"]["served"] == str(counts["served"]) and counts["served"] > 0
    assert groq["pill"].startswith("full") and "Quota spent (rpm 12/12)" in groq["note"]
    cerebras = cards["cerebras:gpt-oss-120b"]
    assert cerebras["stats"]["failed"] == "1" and cerebras["pill"].startswith("cooling down")
    assert "Resting until" in cerebras["note"] and "its quota is not the reason" in cerebras["note"]
    assert BUSY_REASON[:60] in cerebras["note"], "the reason, whole, in the DOM"
    assert re.fullmatch(r"\d+ ms", cards[LONG_ID]["stats"]["first token"]), "streamed: a ttft"
    assert cards["mistral:mistral-small-latest"]["pill"] == "no key"
    assert "LLAMUX_TEST_UNSET_KEY" in cards["mistral:mistral-small-latest"]["note"]
    assert len(phone["rows"]) == activity["kept"], "the last 50 requests, all listed"
    assert any("failed: HTTP 503" in row for row in phone["rows"])
    assert any("429" in row and "no endpoint:" in row for row in phone["rows"])
    for shot in shots.glob("dashboard-*.png"):
        assert KEY.encode() not in shot.read_bytes()


def test_the_recent_requests_fill_as_requests_are_made(
    chromium: str, tmp_path: Path, keys: str
) -> None:
    endpoints = [FakeEndpoint("groq-probe", model="m-groq-probe")]
    with FakeProvider(endpoints) as fake:
        table = tmp_path / "endpoints.md"
        table.write_text(fake_table(fake, [("groq-probe", "10 | |")]))
        app = create_app(Router.from_csv(table, store=MemoryStore()))
        add_probe(app)
        with ProxyThread(app) as running:
            seen = probe(chromium, running.url, tmp_path / "p", 1280, asks=3)
    assert seen["before"]["rows"] == [], "no requests yet"
    rows = seen["after"]["rows"]
    assert len(rows) == 3 and all("200" in row and "groq-probe" in row for row in rows), rows
    card = seen["after"]["cards"][0]
    assert card["stats"]["served"] == "3" and card["stats"]["latency"] != "–", card
    assert seen["after"]["kept"], "refreshes update the text in place: a selection stays"


def test_a_full_pool_is_said_on_each_of_its_endpoints(
    chromium: str, tmp_path: Path, keys: str
) -> None:
    with FakeProvider([FakeEndpoint("a", model="m-a"), FakeEndpoint("b", model="m-b")]) as fake:
        config = tmp_path / "llamux.toml"
        config.write_text(
            "".join(
                f'[[endpoints]]\nprovider = "fake"\nname = "{n}"\nmodel = "m-{n}"\n'
                f'base_url = "{fake.base_url(n)}"\nrpm = 10\npool = "shared"\n\n'
                for n in ("a", "b")
            )
            + "[pools.shared]\nrpm = 1\n"
        )
        app = create_app(Router.from_config(config, store=MemoryStore()))
        add_probe(app)
        with ProxyThread(app) as running:
            ask = {"messages": [{"role": "user", "content": "hi"}]}
            assert httpx.post(f"{running.url}/v1/chat/completions", json=ask).status_code == 200
            seen = probe(chromium, running.url, tmp_path / "p", 390)["before"]
    for card in seen["cards"]:
        assert card["pill"].startswith("full · "), card
        assert "Quota spent (pool rpm 1/1); capacity returns in " in card["note"], card
