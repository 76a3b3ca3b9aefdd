"""The built-in provider catalog: every listed provider, with dated facts."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from llamux._config.catalog import (
    DIALECTS,
    STATUSES,
    Provider,
    last_checked,
    model_limits,
    models,
    pool,
    pools,
    provider,
    providers,
    read_catalog,
    stale,
)
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


# ------------------------------------------------------------------ model limits


def test_the_shipped_catalog_loads_and_every_model_entry_is_dated_and_sourced() -> None:
    entries = [entry for p in providers() for entry in models(p.name)]
    assert len(entries) >= 15
    for entry in entries:
        assert get(entry.provider).status != "retired", entry
        assert date(2026, 1, 1) <= date.fromisoformat(entry.checked) <= date(2026, 12, 31)
        assert entry.source.strip(), entry
        assert entry.pool is None or pool(entry.pool) is not None, entry
        assert model_limits(entry.provider, entry.model) == entry
        if entry.published:
            assert entry.known == entry.limits
            assert entry.limits.items() or entry.pool, entry
        else:
            assert entry.known is None and not entry.limits.items(), entry
    dates = [p.checked for p in providers()] + [entry.checked for entry in entries]
    assert last_checked() == max(dates) == "2026-12-01"


@pytest.mark.parametrize(
    ("model", "limits"),
    [
        ("llama-3.3-70b-versatile", Limits(rpm=30, tpm=12_000, rpd=1_000, tpd=100_000)),
        ("openai/gpt-oss-120b", Limits(rpm=30, tpm=8_000, rpd=1_000, tpd=200_000)),
        ("llama-3.1-8b-instant", Limits(rpm=30, tpm=6_000, rpd=14_400, tpd=500_000)),
    ],
)
def test_groq_free_models_are_confirmed(model: str, limits: Limits) -> None:
    entry = model_limits("groq", model)
    assert entry is not None
    assert (entry.limits, entry.confirmed, entry.published) == (limits, True, True)
    assert entry.checked == "2026-12-01"
    assert "groq.com" in entry.source


def test_groq_models_removed_from_the_free_list_are_gone() -> None:
    ids = {entry.model for entry in models("groq")}
    assert not {m for m in ids if "scout" in m or "qwen3-32b" in m}
    assert "Llama-4-Scout" in get("groq").notes and get("groq").checked == "2026-12-01"


def test_cerebras_trial_tier() -> None:
    (entry,) = models("cerebras")
    assert entry.model == "gpt-oss-120b"
    assert entry.limits == Limits(rpm=5, tpm=30_000, tph=1_000_000, tpd=1_000_000)
    assert entry.context == 65_000
    assert get("cerebras").status == "trial"
    assert "404" in get("cerebras").notes


def test_codestral_and_nvidia_figures_are_unconfirmed() -> None:
    (codestral,) = models("codestral")
    assert (codestral.limits, codestral.confirmed) == (Limits(rpm=30, rpd=2_000), False)
    nvidia = models("nvidia")
    assert len(nvidia) >= 2
    assert {(entry.limits, entry.confirmed) for entry in nvidia} == {(Limits(rpm=40), False)}


def test_openrouter_free_models_draw_only_from_the_pool() -> None:
    entries = models("openrouter")
    assert len(entries) >= 3
    for entry in entries:
        assert entry.model.endswith(":free") or entry.model == "openrouter/free"
        assert (entry.pool, entry.limits, entry.published) == ("openrouter-free", Limits(), True)


def test_openrouter_pool_for_accounts_with_credits() -> None:
    shared = pool("openrouter-free-1000")
    assert shared is not None
    assert shared.limits == Limits(rpm=20, rpd=1_000)
    assert shared.resets == (("rpd", "UTC"),)


@pytest.mark.parametrize("name", ["gemini", "mistral"])
def test_unpublished_providers_list_models_without_numbers(name: str) -> None:
    assert get(name).limits == "unpublished"
    entries = models(name)
    assert entries
    assert all(not e.published and e.known is None and e.limits == Limits() for e in entries)
    assert get(name).checked == "2026-12-01"


def test_mistral_secondary_figures_are_called_unconfirmed() -> None:
    notes = get("mistral").notes
    assert "500K TPM" in notes and "unconfirmed" in notes


def test_published_is_the_default_limits_kind() -> None:
    assert get("groq").limits == get("openai").limits == "published"


def test_model_lookup_is_case_insensitive_on_the_provider_only() -> None:
    entry = model_limits("groq", "llama-3.1-8b-instant")
    assert entry is not None
    assert model_limits(" GROQ ", "llama-3.1-8b-instant") == entry
    assert model_limits("groq", "LLAMA-3.1-8B-INSTANT") is None
    assert model_limits("no-such-provider", "m") is None
    assert models("no-such-provider") == models("openai") == ()


@pytest.mark.parametrize(
    ("checked", "today", "old"),
    [
        ("2026-09-02", date(2026, 12, 1), False),  # exactly 90 days
        ("2026-09-01", date(2026, 12, 1), True),
        ("2026-12-01", date(2026, 12, 1), False),
    ],
)
def test_stale(checked: str, today: date, old: bool) -> None:
    assert stale(checked, today) is old


# ------------------------------------------------------------------ strict reading

GOOD = """\
[providers.p]
base_url = "https://p.example/v1"
api_key_env = "P_API_KEY"
dialect = "openai"
status = "active"
checked = "2026-11-01"
notes = "n"

[providers.p.models."m/x:free"]
rpm = 30
checked = "2026-11-02"
source = "docs"
confirmed = true

[pools.shared]
rpm = 20
checked = "2026-10-01"
source = "docs"
"""
MODEL = '[providers.p.models."m/x:free"]'


def test_a_good_catalog_reads() -> None:
    read = read_catalog(tomllib.loads(GOOD))
    assert read.checked == "2026-11-02"
    assert read.models["p"][0].limits == Limits(rpm=30)
    assert read.pools["shared"].limits == Limits(rpm=20)
    unquoted = read_catalog(tomllib.loads(GOOD.replace('"2026-11-02"', "2026-11-02")))
    assert unquoted.models["p"][0].checked == "2026-11-02"


@pytest.mark.parametrize(
    ("old", "new", "where", "problem"),
    [
        ("rpm = 30", 'rpm = "30"', MODEL, "rpm must be an integer"),
        ("rpm = 30", "rpm = -1", MODEL, "rpm must be an integer of at least 0"),
        ("rpm = 30", "rpw = 30", MODEL, "unknown keys: rpw"),
        ("confirmed = true", "confirmed = 1", MODEL, "confirmed must be true or false"),
        ("confirmed = true", "verified = true", MODEL, "unknown keys: verified"),
        ("confirmed = true", 'pool = "nope"', MODEL, "pool 'nope' is not defined"),
        ('checked = "2026-11-02"', 'checked = "Nov 2026"', MODEL, "must be an ISO date"),
        ('checked = "2026-11-02"', 'checked = "2026-13-02"', MODEL, "not a real date"),
        ('checked = "2026-11-02"', "", MODEL, "checked must be an ISO date"),
        ('source = "docs"\nconfirmed', "confirmed", MODEL, "needs a source"),
        ("rpm = 30", "published = false\nrpm = 30", MODEL, "not published"),
        ("rpm = 30", "", MODEL, "sets no limit and no pool"),
        ('notes = "n"', "notes = 1", "[providers.p]", "notes must be a string"),
        ('notes = "n"', 'limits = "secret"', "[providers.p]", "limits must be one of"),
        ('notes = "n"', 'note = "n"', "[providers.p]", "unknown keys: note"),
        ('notes = "n"', 'resets = { rpw = "UTC" }', "[providers.p]", "unknown limits: rpw"),
        ('status = "active"', 'status = "gone"', "[providers.p]", "bad dialect or status"),
        ("rpm = 20\n", "rpm = 20\nburst = 5\n", "[pools.shared]", "unknown keys: burst"),
        ("rpm = 20\n", "", "[pools.shared]", "sets no limit"),
    ],
)
def test_bad_data_is_an_error_naming_the_entry(
    old: str, new: str, where: str, problem: str
) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(RuntimeError, match="llamux catalog") as caught:
        read_catalog(tomllib.loads(text))
    assert where in str(caught.value) and problem in str(caught.value)


def test_unpublished_provider_models_default_to_unpublished() -> None:
    text = GOOD.replace('notes = "n"', 'limits = "unpublished"').replace("rpm = 30\n", "")
    (entry,) = read_catalog(tomllib.loads(text)).models["p"]
    assert (entry.published, entry.known) == (False, None)
