"""``llamux init``: a starting endpoints table from the catalog, for the keys that are set."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from llamux._config import catalog
from llamux._config.catalog import ModelLimits, last_checked, model_limits, models, providers
from llamux._config.load import LIMIT_NAMES, Config, load, load_toml
from llamux.cli import main
from llamux.cli._init import Row, plan, render, report

from conftest import KEY

VARIABLES = sorted(
    {p.api_key_env for p in providers()} | {var for p in providers() for _, var in p.url_vars}
)
ORDER = ["groq", "codestral", "openrouter", "gemini", "mistral", "nvidia", "cerebras"]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider variable set, no config named, and the current directory empty."""
    for var in [*VARIABLES, "LLAMUX_CONFIG"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def set_keys(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    for name in names:
        entry = catalog.provider(name)
        assert entry is not None
        monkeypatch.setenv(entry.api_key_env, KEY)


def init(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``llamux init argv``: (exit code, stdout, stderr); no output may hold the key."""
    code = main(["init", *argv])
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    return code, out, err


def entries(config: Config) -> list[ModelLimits]:
    found = [model_limits(ep.provider, ep.model) for ep in config.endpoints]
    assert all(entry is not None for entry in found)
    return [entry for entry in found if entry is not None]


def assert_as_the_catalog_says(config: Config) -> None:
    for endpoint, entry in zip(config.endpoints, entries(config), strict=True):
        assert endpoint.id == f"{entry.provider}:{entry.model}"
        if entry.published:
            assert endpoint.limits == entry.limits  # every number, and None for no limit
        else:
            assert endpoint.limits.auto == frozenset(LIMIT_NAMES)
            assert endpoint.limits.items() == ()
        assert (endpoint.pool, endpoint.context) == (entry.pool, entry.context)
    pools = {pool.name for pool in config.pools}
    assert pools == {entry.pool for entry in entries(config) if entry.pool}


# ------------------------------------------------------------------ what is written


@pytest.mark.parametrize("fmt", ["md", "csv", "toml"])
@pytest.mark.parametrize(
    "names",
    [("groq",), ("groq", "openrouter", "cerebras"), ("gemini", "mistral"), tuple(ORDER)],
    ids=["groq", "mixed", "unpublished", "every"],
)
def test_the_written_file_loads_with_the_catalogs_limits(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fmt: str,
    names: tuple[str, ...],
) -> None:
    set_keys(monkeypatch, *names)
    code, _, _ = init(capsys, "--format", fmt)
    path = tmp_path / {"md": "endpoints.md", "csv": "endpoints.csv", "toml": "llamux.toml"}[fmt]
    config = load_toml(path) if fmt == "toml" else load(path)
    assert code == 0
    assert_as_the_catalog_says(config)
    expected = [(name, entry.model) for name in ORDER if name in names for entry in models(name)]
    assert [(ep.provider, ep.model) for ep in config.endpoints] == expected
    text = path.read_text()
    assert KEY not in text
    assert last_checked() in text.splitlines()[0]
    if fmt != "md":
        assert text.startswith("# ")


def test_rows_come_in_the_order_of_preference(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, *reversed(ORDER))
    assert init(capsys)[0] == 0
    config = load(tmp_path / "endpoints.md")
    providers_in_order = list(dict.fromkeys(ep.provider for ep in config.endpoints))
    assert providers_in_order == ORDER
    ranks = [_rank(entry) for entry in entries(config)]
    assert ranks == sorted(ranks)  # known free tiers, then unpublished, then trial


def _rank(entry: ModelLimits) -> int:
    owner = catalog.provider(entry.provider)
    assert owner is not None
    return 2 if owner.status == "trial" else (0 if entry.published else 1)


def test_a_limit_the_catalog_does_not_set_is_an_empty_cell(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "cerebras")
    init(capsys, "--output", "e.csv")
    header, row = [line.split(",") for line in (tmp_path / "e.csv").read_text().splitlines()[-2:]]
    cells = dict(zip(header, row, strict=True))
    assert cells == {
        **{"provider": "cerebras", "model": "gpt-oss-120b", "context": "65000"},
        **{"rpm": "5", "tpm": "30000", "rph": "", "tph": "1000000", "rpd": "", "tpd": "1000000"},
        **{"rpmo": "", "tpmo": ""},
    }


def test_openrouter_rows_name_the_pool_and_the_larger_one_is_mentioned(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "openrouter")
    init(capsys)
    text = (tmp_path / "endpoints.md").read_text()
    assert "openrouter-free-1000" in text and "rpd 1000" in text
    config = load(tmp_path / "endpoints.md")
    assert {ep.pool for ep in config.endpoints} == {"openrouter-free"}
    assert [pool.name for pool in config.pools] == ["openrouter-free"]


def test_no_pool_column_and_no_credits_line_without_openrouter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "groq")
    init(capsys)
    text = (tmp_path / "endpoints.md").read_text()
    assert "pool" not in text.splitlines()[2] and "openrouter" not in text


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize("fmt", ["md", "csv", "toml"])
def test_no_key_value_is_ever_printed_or_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fmt: str
) -> None:
    for var in VARIABLES:
        monkeypatch.setenv(var, KEY)
    code, out, _ = init(capsys, "--format", fmt, "--all")  # init() checks out and err
    assert code == 0 and out
    (written,) = tmp_path.iterdir()
    assert KEY not in written.read_text()


def test_with_no_key_set_it_names_the_variables_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = init(capsys)
    assert code == 1 and not out
    assert err.startswith("llamux: error: no provider key is set") and err.count("\n") == 1
    for name in ORDER:
        entry = catalog.provider(name)
        assert entry is not None and entry.api_key_env in err
    assert "--all" in err
    assert list(tmp_path.iterdir()) == []


def test_a_key_without_free_models_or_a_retired_provider_writes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("GITHUB_TOKEN", KEY)
    code, _, err = init(capsys)
    assert code == 1
    assert "OPENAI_API_KEY is set, but openai has no free models" in err
    assert "GITHUB_TOKEN" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_blank_key_is_not_a_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "  ")
    assert init(capsys)[0] == 1


def test_all_writes_providers_without_a_key_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "groq")
    code, out, _ = init(capsys, "--all")
    config = load(tmp_path / "endpoints.md")
    assert code == 0
    assert list(dict.fromkeys(ep.provider for ep in config.endpoints)) == ORDER
    assert_as_the_catalog_says(config)
    assert "written, skipped until set" in out and "GEMINI_API_KEY" in out
    assert (
        "No key was set for cerebras, codestral, gemini" in (tmp_path / "endpoints.md").read_text()
    )


def test_a_variable_the_base_url_needs_must_be_set_too(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = ModelLimits("cloudflare", "@cf/m", catalog.Limits(rpm=1), "2026-12-01", "test")
    real = catalog.models
    monkeypatch.setattr(
        catalog, "models", lambda name: (entry,) if name == "cloudflare" else real(name)
    )
    token = {"CLOUDFLARE_API_TOKEN": KEY}
    found = plan(["cloudflare"], include_all=False, environ=token)
    assert found.rows == ()
    assert [(p.name, unset) for p, unset in found.missing] == [
        ("cloudflare", ("CLOUDFLARE_ACCOUNT_ID",))
    ]
    both = plan(["cloudflare"], include_all=False, environ={**token, "CLOUDFLARE_ACCOUNT_ID": "a"})
    assert [row.entry for row in both.rows] == [entry]


# ------------------------------------------------------------------ options


def test_provider_restricts_the_rows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "groq", "openrouter", "cerebras")
    code, out, _ = init(capsys, "--provider", "CEREBRAS", "--provider", "groq")
    config = load(tmp_path / "endpoints.md")
    assert code == 0
    assert [ep.provider for ep in config.endpoints] == ["groq"] * 3 + ["cerebras"]
    assert "groq 3, cerebras 1" in out


@pytest.mark.parametrize(
    ("name", "problem"),
    [("nope", "is not a catalog provider"), ("openai", "has no free models in the catalog")],
)
def test_an_unknown_provider_is_a_one_line_error_listing_the_known(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, name: str, problem: str
) -> None:
    set_keys(monkeypatch, "groq")
    code, _, err = init(capsys, "--provider", name)
    assert code == 1 and err.count("\n") == 1
    assert problem in err and f"init knows: {', '.join(ORDER)}" in err


def test_an_existing_file_is_kept_without_force(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    set_keys(monkeypatch, "groq")
    (tmp_path / "endpoints.md").write_text("mine\n")
    code, out, err = init(capsys)
    assert code == 1 and not out
    assert "endpoints.md already exists; pass --force" in err
    assert (tmp_path / "endpoints.md").read_text() == "mine\n"
    assert init(capsys, "--force")[0] == 0
    assert len(load(tmp_path / "endpoints.md").endpoints) == 3


@pytest.mark.parametrize(
    ("argv", "written"),
    [
        (["--output", "mine.toml"], "toml"),
        (["--output", "mine.csv"], "csv"),
        (["--output", "mine.txt"], "md"),
        (["-o", "sub.csv", "--format", "md"], "md"),
    ],
)
def test_the_format_follows_the_output_unless_given(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
    written: str,
) -> None:
    set_keys(monkeypatch, "groq")
    assert init(capsys, *argv)[0] == 0
    (path,) = tmp_path.iterdir()
    text = path.read_text()
    looks = "toml" if "[[endpoints]]" in text else ("md" if "| provider" in text else "csv")
    assert looks == written
    assert len(load(path).endpoints) == 3


@pytest.mark.parametrize(
    "argv", [["--format", "toml", "-o", "e.md"], ["--format", "csv", "-o", "e.toml"]]
)
def test_a_format_that_does_not_fit_the_extension_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    argv: list[str],
) -> None:
    set_keys(monkeypatch, "groq")
    code, _, err = init(capsys, *argv)
    assert code == 1 and "does not fit" in err
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_does_not_exist_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_keys(monkeypatch, "groq")
    code, _, err = init(capsys, "-o", "no/such/dir/e.md")
    assert code == 1 and err.startswith("llamux: error: cannot write") and err.count("\n") == 1


def test_init_takes_no_config_or_store_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = init(capsys, "--config", "x.md")
    assert code == 1 and "unrecognized arguments" in err


# ------------------------------------------------------------------ the report


def test_the_report_says_what_was_written_and_what_next(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_keys(monkeypatch, "groq", "openrouter")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    code, out, _ = init(capsys)
    assert code == 0
    assert out.startswith("wrote endpoints.md: 8 endpoints (groq 3, openrouter 5)\n")
    assert "also set, no free models in the catalog: openai (OPENAI_API_KEY)" in out
    assert "no key for codestral (CODESTRAL_API_KEY)" in out and "or use --all" in out
    assert "llamux probe " in out and 'llamux chat "hi"' in out
    assert "--config" not in out  # ./endpoints.md is found without it


def test_the_next_steps_name_a_config_llamux_would_not_find(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_keys(monkeypatch, "groq")
    _, out, _ = init(capsys, "-o", "free.md")
    assert "llamux probe --config free.md" in out
    assert 'llamux chat --config free.md "hi"' in out


def test_the_report_flags_figures_checked_long_ago() -> None:
    found = plan(["codestral", "groq"], include_all=True, environ={})
    old = report(Path("e.md"), found, date(2026, 12, 31))
    assert any("over 90 days" in line and "codestral (2026-09-03)" in line for line in old)
    assert not any("groq (" in line and "90 days" in line for line in old)
    assert not any("90 days" in line for line in report(Path("e.md"), found, date(2026, 12, 1)))


def test_render_writes_auto_for_every_limit_of_an_unpublished_model() -> None:
    (entry, *_) = models("gemini")
    text = render([Row(entry, keyed=True)], "toml", "2026-12-01")
    assert all(f'{name} = "auto"' in text for name in LIMIT_NAMES)
    assert text.startswith("# ") and "2026-12-01" in text.splitlines()[0]
