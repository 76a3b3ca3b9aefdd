"""The one provider-error boundary: exceptions of the SDK and of its HTTP library become
llamux errors by their type, and what the provider may have seen decides ``accepted``."""

from __future__ import annotations

from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from llamux import InvalidRequest, Router
from llamux._config.load import Endpoint
from llamux._errors import ProviderConnectionError, ProviderError, ProviderTimeout
from llamux._providers.boundary import Stage, translate

KEY = "sk-boundary-test-0123456789"
REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


@pytest.fixture
def endpoint(tmp_path: Path) -> Endpoint:
    path = tmp_path / "t.md"
    path.write_text(
        "| provider | model | base_url |\n|---|---|---|\n| x | m | http://127.0.0.1:9/v1 |\n"
    )
    return Router.from_csv(path, store="memory://").endpoints[0]


def sdk(error: type[openai.APIConnectionError], cause: BaseException | None) -> Exception:
    exc = error(request=REQUEST)
    exc.__cause__ = cause
    return exc


class RenamedConnectError(httpx.ConnectError):
    """A subclass under another name: still a refused connection (types, not names)."""


class ConnectError(Exception):
    """Not the HTTP library's, whatever its name."""


@pytest.mark.parametrize(
    ("exc", "kind", "accepted"),
    [
        (httpx.ConnectError("refused"), ProviderConnectionError, False),
        (RenamedConnectError("refused"), ProviderConnectionError, False),
        (httpx.ConnectTimeout("slow"), ProviderTimeout, False),
        (httpx.ReadTimeout("slow"), ProviderTimeout, True),
        (httpx.RemoteProtocolError("reset"), ProviderConnectionError, True),
        (sdk(openai.APIConnectionError, httpx.ConnectError("x")), ProviderConnectionError, False),
        (sdk(openai.APIConnectionError, httpx.ReadError("x")), ProviderConnectionError, True),
        (sdk(openai.APITimeoutError, httpx.ConnectTimeout("x")), ProviderTimeout, False),
        (sdk(openai.APITimeoutError, None), ProviderTimeout, True),
    ],
)
def test_sending_failures_map_by_type(
    endpoint: Endpoint, exc: Exception, kind: type[ProviderError], accepted: bool
) -> None:
    error = translate(exc, endpoint, KEY, Stage.SEND)
    assert type(error) is kind and error.accepted is accepted
    # once the answer had begun, the provider has the request whatever broke
    late = translate(exc, endpoint, KEY, Stage.STREAM)
    assert isinstance(late, kind) and late.accepted


def test_what_is_not_the_providers_is_not_made_the_providers(endpoint: Endpoint) -> None:
    assert isinstance(translate(ValueError("nan"), endpoint, KEY, Stage.SEND), InvalidRequest)
    with pytest.raises(TypeError):  # parameters the SDK refuses: the router says so
        translate(TypeError("unexpected keyword"), endpoint, KEY, Stage.SEND)
    with pytest.raises(ConnectError):  # a name alone proves nothing
        translate(ConnectError("mine"), endpoint, KEY, Stage.SEND)
    bad = translate(ValueError("not JSON"), endpoint, KEY, Stage.ANSWER)
    assert type(bad) is ProviderError and bad.accepted
    cut = translate(RuntimeError("odd"), endpoint, KEY, Stage.STREAM)
    assert isinstance(cut, ProviderConnectionError) and cut.accepted
    mine = InvalidRequest("already ours")
    assert translate(mine, endpoint, KEY, Stage.STREAM) is mine


def test_the_http_library_is_the_one_the_sdk_runs_on() -> None:
    from llamux._providers.boundary import httpx_module

    assert issubclass(openai.DefaultHttpxClient, httpx_module().Client)
    assert httpx_module() is httpx  # openai 3.x here: httpx2
