"""The proxy's browser gate (``_gate.py``) against web pages: the Host, Origin and
Content-Type rules, CORS only for the origins given with ``--cors``, every refusal in the
OpenAI error shape, and the dashboard still working at its own address."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from llamux import Router
from llamux._stores.memory import MemoryStore
from llamux.cli import main
from llamux.proxy import COOKIE, ProxyThread, create_app
from llamux.proxy._gate import host_name
from llamux.testing import FakeEndpoint, FakeProvider

from conftest import HI, fake_table

CHAT = "/v1/chat/completions"
PAGE = "http://localhost:3000"
EVIL = "http://evil.example"


@pytest.fixture
def fake_endpoints() -> list[FakeEndpoint]:
    return [FakeEndpoint("a")]


@contextlib.contextmanager
def app_client(fake: FakeProvider, tmp_path: Path, **options: Any) -> Iterator[TestClient]:
    """A TestClient (its Host is ``testserver``, the address it 'binds') on the proxy app."""
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, [("a", "100 | |")]))
    router = Router.from_csv(path, store=MemoryStore())
    with router, TestClient(create_app(router, **options)) as client:
        client.router = router  # type: ignore[attr-defined]
        yield client


def refused(answer: Any, status: int, code: str, phrase: str) -> None:
    """An OpenAI-shaped refusal with that status, code and advice, and no CORS grant."""
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and phrase in error["message"], error
    assert "access-control-allow-origin" not in answer.headers


def charged(client: TestClient) -> int:
    router: Router = client.router  # type: ignore[attr-defined]
    return sum(u.used for row in router.status() for u in row.usage if u.rule.name == "rpm")


# ------------------------------------------------------------------ Host


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost:abc", "["]
)
def test_a_foreign_host_is_refused_on_every_route(
    fake: FakeProvider, tmp_path: Path, keys: str, host: str
) -> None:
    """DNS rebinding: the page's own name resolving to 127.0.0.1 still sends that name."""
    with app_client(fake, tmp_path) as client:
        for path in ("/v1/llamux/status", "/v1/models", "/", "/metrics"):
            answer = client.get(path, headers={"host": host})
            refused(answer, 421, "host_not_allowed", "--allow-host")
        answer = client.post(CHAT, json={"messages": HI}, headers={"host": host})
        refused(answer, 421, "host_not_allowed", "DNS rebinding")
        assert charged(client) == 0 and fake.stats("a").served == 0


@pytest.mark.parametrize(
    "host", ["testserver", "localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:1", "[::1]:80"]
)
def test_the_bound_and_loopback_names_are_accepted(
    fake: FakeProvider, tmp_path: Path, keys: str, host: str
) -> None:
    with app_client(fake, tmp_path) as client:
        assert client.get("/v1/models", headers={"host": host}).status_code == 200
        served = client.post(CHAT, json={"messages": HI}, headers={"host": host})
        assert served.status_code == 200, served.text


def test_allow_host_adds_names_and_star_allows_any(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with app_client(fake, tmp_path, allow_hosts=["llm.lan", "box:9000"]) as client:
        for host in ("llm.lan", "LLM.lan:8080", "box"):
            assert client.get("/healthz", headers={"host": host}).status_code == 200
        refused(client.get("/healthz", headers={"host": "other.lan"}), 421, "host_not_allowed", "")
    with app_client(fake, tmp_path, allow_hosts=["*"]) as client:
        assert client.get("/healthz", headers={"host": "anything.example"}).status_code == 200


def test_host_names_are_read_with_or_without_a_port() -> None:
    assert host_name("LocalHost:8080") == "localhost"
    assert host_name("[::1]:8080") == host_name("::1") == "[::1]"
    assert host_name("example.com") == "example.com"
    assert host_name("example.com:") is None and host_name("a:b") is None
    assert host_name("[::1") is None and host_name(":80") is None


# ------------------------------------------------------------------ Content-Type


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
    ],
)
def test_a_post_that_is_not_json_is_refused_with_415_and_costs_nothing(
    fake: FakeProvider, tmp_path: Path, keys: str, content_type: str | None
) -> None:
    """What a cross-site form or a 'simple' fetch can send without a preflight."""
    body = b'{"messages": [{"role": "user", "content": "hi"}]}'
    headers = {} if content_type is None else {"content-type": content_type}
    with app_client(fake, tmp_path) as client:
        answer = client.post(CHAT, content=body, headers=headers)
        refused(answer, 415, "unsupported_media_type", "Content-Type: application/json")
        assert charged(client) == 0 and fake.stats("a").served == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_with_or_without_a_charset_is_served(
    fake: FakeProvider, tmp_path: Path, keys: str, content_type: str
) -> None:
    body = b'{"messages": [{"role": "user", "content": "hi"}]}'
    with app_client(fake, tmp_path) as client:
        answer = client.post(CHAT, content=body, headers={"content-type": content_type})
        assert answer.status_code == 200, answer.text


# ------------------------------------------------------------------ Origin and CORS


def test_a_foreign_origin_is_refused_with_403(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with app_client(fake, tmp_path) as client:
        for origin in (EVIL, PAGE, "null", "http://testserver:8080", "https://testserver"):
            headers = {"origin": origin}
            answer = client.post(CHAT, json={"messages": HI}, headers=headers)
            refused(answer, 403, "origin_not_allowed", "--cors")
            refused(client.get("/v1/llamux/status", headers=headers), 403, "origin_not_allowed", "")
        assert charged(client) == 0 and fake.stats("a").served == 0


def test_the_proxys_own_origin_is_allowed_without_cors_headers(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with app_client(fake, tmp_path) as client:
        answer = client.post(CHAT, json={"messages": HI}, headers={"origin": "http://testserver"})
        assert answer.status_code == 200, answer.text
        assert not [h for h in answer.headers if h.startswith("access-control-")]
        with_port = {"host": "localhost:8080", "origin": "http://localhost:8080"}
        assert client.get("/v1/models", headers=with_port).status_code == 200
        preflight = client.options(CHAT, headers=preflight_headers("http://testserver"))
        assert preflight.status_code == 405  # no --cors: no preflight is ever granted
        assert preflight.json()["error"]["code"] == "method_not_allowed"
        assert not [h for h in preflight.headers if h.startswith("access-control-")]


def preflight_headers(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os",
    }


def test_cors_answers_preflights_and_grants_only_the_listed_origins(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with app_client(fake, tmp_path, cors_origins=[PAGE + "/"]) as client:
        preflight = client.options(CHAT, headers=preflight_headers(PAGE))
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == PAGE
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "x-stainless-os" in preflight.headers["access-control-allow-headers"]
        answer = client.post(CHAT, json={"messages": HI}, headers={"origin": PAGE})
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == PAGE
        assert "origin" in answer.headers["vary"].lower()
        assert "x-llamux-endpoint" in answer.headers["access-control-expose-headers"]
        refused(
            client.options(CHAT, headers=preflight_headers(EVIL)), 403, "origin_not_allowed", ""
        )
        mine = client.get("/v1/models", headers={"origin": "http://testserver"})
        assert mine.status_code == 200 and "access-control-allow-origin" not in mine.headers


# ------------------------------------------------------------------ errors and the dashboard


def test_unknown_routes_and_methods_answer_in_the_openai_shape(
    fake: FakeProvider, tmp_path: Path, keys: str
) -> None:
    with app_client(fake, tmp_path) as client:
        # as OpenAI's API answers an unknown URL: 404, invalid_request_error, unknown_url
        refused(
            client.get("/v1/nothing"), 404, "unknown_url", "Unknown request URL: GET /v1/nothing"
        )
        refused(client.post("/v1/chat", json={}), 404, "unknown_url", "POST /v1/chat")
        assert client.get("/v1/nothing").json()["error"]["type"] == "invalid_request_error"
        refused(client.get(CHAT), 405, "method_not_allowed", "use POST")
        refused(client.delete("/v1/models"), 405, "method_not_allowed", "GET")


def test_the_dashboard_works_in_a_browser_at_its_own_address(tmp_path: Path, keys: str) -> None:
    """A real server: the page loads, its fetches (same-origin GETs, no Origin) work, its
    sign-in form (a same-origin form POST, with Origin) signs in."""
    with FakeProvider([FakeEndpoint("a")]) as fake:
        path = tmp_path / "endpoints.md"
        path.write_text(fake_table(fake, [("a", "100 | |")]))
        router = Router.from_csv(path, store=MemoryStore())
        with ProxyThread(create_app(router, proxy_key="pk-0123456789")) as running:
            url = running.url  # http://127.0.0.1:PORT
            port = url.rsplit(":", 1)[1]
            with httpx.Client(base_url=url) as browser:
                page = browser.get("/")
                assert page.status_code == 401 and "<form" in page.text  # the sign-in form
                signed = browser.post(
                    "/login",
                    data={"key": "pk-0123456789"},
                    headers={"origin": url, "referer": url + "/"},
                )
                assert signed.status_code == 303 and COOKIE in browser.cookies
                assert "fetch(" in browser.get("/").text
                for fetched in ("/v1/llamux/status", "/v1/llamux/history"):
                    assert browser.get(fetched).status_code == 200
                local = {"host": f"localhost:{port}", "origin": f"http://localhost:{port}"}
                assert browser.get("/v1/llamux/status", headers=local).status_code == 200
                other = browser.get("/v1/llamux/status", headers={"origin": PAGE})
                assert other.status_code == 403


# ------------------------------------------------------------------ the command line


def test_serve_passes_allow_host_and_cors_to_the_proxy(
    tmp_path: Path, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llamux.proxy

    seen: dict[str, Any] = {}
    monkeypatch.setattr(llamux.proxy, "serve", lambda router, **kw: seen.update(kw))
    monkeypatch.delenv("LLAMUX_PROXY_KEY", raising=False)
    table = tmp_path / "endpoints.csv"
    table.write_text("provider,model,rpm\ngroq,llama,30\n")
    argv = ["serve", "--config", str(table), "--allow-host", "llm.lan", "--allow-host", "box"]
    assert main([*argv, "--cors", "http://localhost:3000/", "--cors", PAGE]) == 0
    assert seen["allow_hosts"] == ["llm.lan", "box"]
    assert seen["cors_origins"] == [PAGE, PAGE]
    assert main(["serve", "--config", str(table)]) == 0
    assert seen["allow_hosts"] == [] and seen["cors_origins"] == []


@pytest.mark.parametrize("origin", ["localhost:3000", "*", "http://a/b", "ftp://a"])
def test_serve_refuses_a_cors_value_that_is_not_an_origin(
    tmp_path: Path, origin: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "endpoints.csv"
    table.write_text("provider,model,rpm\ngroq,llama,30\n")
    assert main(["serve", "--config", str(table), "--cors", origin]) == 1  # a usage error
    assert "is not a web origin" in capsys.readouterr().err


def test_a_bug_of_llamux_is_a_500_in_the_openai_shape(
    fake: FakeProvider, tmp_path: Path, keys: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llamux.proxy._app

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(llamux.proxy._app, "arelay", broken)
    path = tmp_path / "endpoints.md"
    path.write_text(fake_table(fake, [("a", "100 | |")]))
    router = Router.from_csv(path, store=MemoryStore())
    with router, TestClient(create_app(router), raise_server_exceptions=False) as client:
        answer = client.post(CHAT, json={"messages": HI})
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "server_error" and "RuntimeError" in error["message"]
    assert "report it" in error["message"]
