"""What each endpoint serves: the serves and max_inputs columns, and their defaults."""

from __future__ import annotations

import pytest

from llamux._config.load import parse_table, parse_toml
from llamux._errors import ConfigError

HEAD = "| provider | model | base_url | serves | max_inputs |\n|---|---|---|---|---|\n"


def serves(model: str, provider: str = "fake", cell: str = "", inputs: str = "") -> frozenset[str]:
    url = "" if provider != "fake" else "http://127.0.0.1:9/v1"
    config = parse_table(HEAD + f"| {provider} | {model} | {url} | {cell} | {inputs} |\n")
    return config.endpoints[0].serves


def test_written_kinds_are_kept() -> None:
    assert serves("m", cell="chat, embeddings") == {"chat", "embeddings"}
    assert serves("m", cell="RESPONSES") == {"responses"}


def test_defaults_come_from_the_catalog_else_the_model_id_else_chat() -> None:
    assert serves("llama-3.3-70b-versatile", "groq") == {"chat", "responses"}
    assert serves("gemini-3.5-flash", "gemini") == {"chat"}
    assert serves("text-embedding-3-small", "openai") == {"embeddings"}
    assert serves("nomic-embed-text") == {"embeddings"}
    assert serves("m") == {"chat"}


def test_an_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(
        ConfigError, match="unknown kind of request 'embedings'; write 'embeddings'"
    ):
        serves("m", cell="embedings")


def test_max_inputs_is_a_positive_integer() -> None:
    url = "http://127.0.0.1:9/v1"
    config = parse_table(HEAD + f"| fake | e | {url} | embeddings | 96 |\n")
    assert config.endpoints[0].max_inputs == 96
    with pytest.raises(ConfigError, match="max_inputs"):
        parse_table(HEAD + f"| fake | e | {url} | embeddings | 0 |\n")


def test_toml_takes_a_list() -> None:
    text = (
        '[[endpoints]]\nprovider = "fake"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'serves = ["chat", "completions"]\n'
    )
    assert parse_toml(text).endpoints[0].serves == {"chat", "completions"}
