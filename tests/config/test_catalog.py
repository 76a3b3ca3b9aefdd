"""The built-in provider catalog: every listed provider, with dated facts."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from llamux._config.catalog import DIALECTS, STATUSES, Provider, pool, pools, provider, providers
from llamux._config.load import LIMIT_NAMES, Limits

REQUIRED = [
    *("groq", "gemini", "mistral", "codestral", "openrouter", "nvidia", "cerebras"),
    *("sambanova", "together", "fireworks", "deepinfra", "openai", "anthropic", "cohere"),
    *("huggingface", "cloudflare", "ollama", "vllm", "github"),
]

GOOGLE = "https://generativelanguage.googleapis.com"
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def get(name: str) -> Provider:
    found = provider(name)
    assert found is not None, name
    return found


@pytest.mark.parametrize("name", REQUIRED)
def test_every_listed_provider_is_complete(name: str) -> None:
    entry = get(name)
    assert entry.name == name
    assert entry.base_url.startswith(("https://", "http://localhost"))
    assert ENV_NAME.fullmatch(entry.api_key_env)
    assert date.fromisoformat(entry.checked) <= date(2026, 12, 31)
    assert entry.dialect in DIALECTS
    assert entry.status in STATUSES
    assert entry.notes
    for limit, tz in entry.resets:
        assert limit in LIMIT_NAMES
        ZoneInfo(tz)


@pytest.mark.parametrize(
    ("name", "base_url", "key", "dialect"),
    [
        ("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "groq"),
        ("gemini", f"{GOOGLE}/v1beta/openai/", "GEMINI_API_KEY", "gemini"),
        ("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "mistral"),
        ("codestral", "https://codestral.mistral.ai/v1", "CODESTRAL_API_KEY", "mistral"),
        ("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openrouter"),
        ("nvidia", "https://integrate.api.nvidia.com/v1", "NVIDIA_API_KEY", "openai"),
        ("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "cerebras"),
        ("sambanova", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY", "sambanova"),
        ("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY", "openai"),
        ("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "openai"),
        ("anthropic", "https://api.anthropic.com/v1/", "ANTHROPIC_API_KEY", "anthropic"),
        ("cohere", "https://api.cohere.ai/compatibility/v1", "COHERE_API_KEY", "openai"),
        ("huggingface", "https://router.huggingface.co/v1", "HF_TOKEN", "openai"),
        ("ollama", "http://localhost:11434/v1", "OLLAMA_API_KEY", "openai"),
        ("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", "openai"),
    ],
)
def test_provider_facts(name: str, base_url: str, key: str, dialect: str) -> None:
    entry = get(name)
    assert (entry.base_url, entry.api_key_env, entry.dialect) == (base_url, key, dialect)


@pytest.mark.parametrize(
    ("name", "resets"),
    [
        ("gemini", {"rpd": "America/Los_Angeles", "tpd": "America/Los_Angeles"}),
        ("openrouter", {"rpd": "UTC", "tpd": "UTC"}),
        ("cloudflare", {"rpd": "UTC", "tpd": "UTC"}),
        ("groq", {}),
        ("cerebras", {}),
        ("anthropic", {}),
        ("openai", {}),
    ],
)
def test_default_resets(name: str, resets: dict[str, str]) -> None:
    entry = get(name)
    assert dict(entry.resets) == resets
    assert entry.reset_for("rpm") is None
    assert entry.reset_for("rpd") == resets.get("rpd")


def test_cloudflare_needs_an_account_id() -> None:
    entry = get("cloudflare")
    assert "{ACCOUNT_ID}" in entry.base_url
    assert entry.api_key_env == "CLOUDFLARE_API_TOKEN"
    assert entry.url_vars == (("ACCOUNT_ID", "CLOUDFLARE_ACCOUNT_ID"),)
    assert "CLOUDFLARE_ACCOUNT_ID" in entry.notes


@pytest.mark.parametrize(
    ("name", "status"),
    [("github", "retired"), ("cerebras", "trial"), ("sambanova", "trial"), ("groq", "active")],
)
def test_status(name: str, status: str) -> None:
    assert get(name).status == status


def test_lookup_is_case_insensitive_and_unknown_is_none() -> None:
    assert provider(" GROQ ") == get("groq")
    assert provider("no-such-provider") is None
    names = [entry.name for entry in providers()]
    assert len(names) == len(set(names)) >= len(REQUIRED)
    assert set(REQUIRED) <= set(names)


def test_openrouter_free_pool() -> None:
    shared = pool("openrouter-free")
    assert shared is not None
    assert shared.limits == Limits(rpm=20, rpd=50)
    assert shared.resets == (("rpd", "UTC"),)
    assert pool("OpenRouter-Free") == shared
    assert pool("nope") is None
    assert shared in pools()


def test_catalog_is_read_lazily() -> None:
    code = (
        "import llamux._config.load, llamux._config.catalog as c\n"
        "assert c._data.cache_info().currsize == 0\n"
        "llamux._config.load.parse_table('provider,model\\ngroq,m\\n')\n"
        "assert c._data.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
