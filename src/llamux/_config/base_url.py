"""An endpoint's base URL as it is called: ``{ACCOUNT_ID}``-style placeholders (Cloudflare)
filled from the environment variables the catalog names."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .endpoint import Endpoint


def url_vars(endpoint: Endpoint) -> tuple[tuple[str, str], ...]:
    """(placeholder, environment variable) pairs that fill the endpoint's base URL."""
    if "{" not in endpoint.base_url:
        return ()
    from .catalog import provider

    known = provider(endpoint.provider)
    return known.url_vars if known is not None else ()


def endpoint_url(endpoint: Endpoint) -> str:
    """The endpoint's base URL with ``{ACCOUNT_ID}``-style placeholders filled from the env."""
    url = endpoint.base_url
    for placeholder, variable in url_vars(endpoint):
        url = url.replace("{" + placeholder + "}", os.environ.get(variable, ""))
    return url


def missing_url_vars(endpoint: Endpoint) -> list[str]:
    """Environment variables the base URL needs that are not set."""
    return [variable for _, variable in url_vars(endpoint) if not os.environ.get(variable)]
