"""Key lists: a row whose ``api_key_env`` names several variables is one endpoint per key."""

from __future__ import annotations

import pytest

from llamux._config.load import Endpoint, parse_table, parse_toml
from llamux._errors import ConfigError
from llamux._policy.scoping import quota_key, scopes_for

TABLE = """\
| provider | model                   | rpm | api_key_env                  | name | pool |
| -------- | ----------------------- | --- | ---------------------------- | ---- | ---- |
| cerebras | llama3.3-70b            | 30  |                              |      |      |
| groq     | llama-3.3-70b-versatile | 30  | GROQ_API_KEY, GROQ_API_KEY_2 |      |      |
| groq     | llama-3.1-8b-instant    | 30  | GROQ_ORG_A,GROQ_ORG_B        | fast |      |
| mistral  | mistral-small-latest    | 2   | MISTRAL_A, MISTRAL_B         |      | eu   |
| groq     | gemma2-9b-it            | 30  | GROQ_ONE                     |      |      |
"""

TOML = """\
[[endpoints]]
provider = "groq"
model = "llama-3.3-70b-versatile"
rpm = 30
api_key_env = ["GROQ_API_KEY", "GROQ_API_KEY_2", "GROQ_API_KEY_3"]

[[endpoints]]
provider = "cerebras"
model = "llama3.3-70b"
name = "cb"
api_key_env = "CEREBRAS_A, CEREBRAS_B"

[[endpoints]]
provider = "groq"
model = "gemma2-9b-it"
api_key_env = ["GROQ_ONE"]

[routes.fast]
endpoints = ["cb", "groq:llama-3.3-70b-versatile#2", "groq:llama-3.3-70b-versatile"]
"""


def ids(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return [ep.id for ep in endpoints]


def test_a_table_row_of_several_keys_is_one_endpoint_per_key_where_the_row_stood() -> None:
    config = parse_table(TABLE.replace("| eu   |", "|      |"), "t.md")
    assert ids(config.endpoints) == [
        "cerebras:llama3.3-70b",
        "groq:llama-3.3-70b-versatile#1",
        "groq:llama-3.3-70b-versatile#2",
        "fast#1",
        "fast#2",
        "mistral:mistral-small-latest#1",
        "mistral:mistral-small-latest#2",
        "groq:gemma2-9b-it",
    ]
    by_id = {ep.id: ep for ep in config.endpoints}
    first, second = by_id["groq:llama-3.3-70b-versatile#1"], by_id["groq:llama-3.3-70b-versatile#2"]
    assert (first.api_key_env, second.api_key_env) == ("GROQ_API_KEY", "GROQ_API_KEY_2")
    assert first.group == second.group == "groq:llama-3.3-70b-versatile"
    assert (by_id["fast#1"].api_key_env, by_id["fast#2"].group) == ("GROQ_ORG_A", "fast")
    # everything else of the row is the same on every key's endpoint
    assert first.limits == second.limits and first.base_url == second.base_url
    assert first.source == second.source == "t.md:4"
    # a row of one key keeps its id and has no group
    single = by_id["groq:gemma2-9b-it"]
    assert (single.api_key_env, single.group) == ("GROQ_ONE", None)
    assert by_id["cerebras:llama3.3-70b"].api_key_env == "CEREBRAS_API_KEY"


def test_each_key_counts_apart_and_a_shared_pool_counts_once() -> None:
    config = parse_toml(TABLE_AS_POOLED_TOML, "c.toml")
    pools = {pool.name: pool for pool in config.pools}
    scopes = scopes_for(config.endpoints, pools)
    a, b = (scopes[f"mistral:mistral-small-latest#{n}"] for n in (1, 2))
    assert a[0].key != b[0].key  # each key's own quota
    assert a[0].key.endswith("|MISTRAL_A") and b[0].key.endswith("|MISTRAL_B")
    assert a[1].key == b[1].key == "pool:eu"  # the pool: one quota for both keys
    keys = [quota_key(ep) for ep in config.endpoints]
    assert len(set(keys)) == len(keys)


TABLE_AS_POOLED_TOML = """\
[[endpoints]]
provider = "mistral"
model = "mistral-small-latest"
rpm = 2
api_key_env = ["MISTRAL_A", "MISTRAL_B"]
pool = "eu"

[pools.eu]
rpm = 3
"""


def test_a_toml_list_or_string_expands_and_routes_take_every_key_in_order() -> None:
    config = parse_toml(TOML, "c.toml")
    assert ids(config.endpoints) == [
        "groq:llama-3.3-70b-versatile#1",
        "groq:llama-3.3-70b-versatile#2",
        "groq:llama-3.3-70b-versatile#3",
        "cb#1",
        "cb#2",
        "groq:gemma2-9b-it",
    ]
    assert [ep.api_key_env for ep in config.endpoints[3:5]] == ["CEREBRAS_A", "CEREBRAS_B"]
    assert config.endpoints[5].api_key_env == "GROQ_ONE"
    (route,) = config.routes
    assert route.endpoints == (
        "cb",
        "groq:llama-3.3-70b-versatile#2",
        "groq:llama-3.3-70b-versatile",
    )


def test_a_route_naming_an_unknown_id_suggests_the_rows_id() -> None:
    text = TOML.replace('"cb", ', '"cbb", ')
    with pytest.raises(ConfigError, match="write 'cb'"):
        parse_toml(text, "c.toml")


KEY = "sk-live-0123456789abcdef"

TABLE_ERRORS = [
    ("GROQ_A,,GROQ_B", "item 2 of api_key_env is empty"),
    ("GROQ_A, ", "item 2 of api_key_env is empty"),
    (", GROQ_A", "item 1 of api_key_env is empty"),
    ("GROQ_A, GROQ_B, GROQ_A", "item 3 of api_key_env repeats item 1; remove the repeat"),
    (f"GROQ_A, {KEY}", "item 2 of api_key_env is not an environment variable name"),
    ("GROQ_A, GROQ B", "item 2 of api_key_env is not an environment variable name"),
    ("GROQ_A; GROQ_B", "api_key_env must be an environment variable name"),
]


@pytest.mark.parametrize(("cell", "problem"), TABLE_ERRORS)
def test_a_bad_key_list_in_a_table_is_one_line_naming_file_line_column_and_fix(
    cell: str, problem: str
) -> None:
    text = f'provider,model,api_key_env\ngroq,m,ok\ngroq,m2,"{cell}"\n'
    with pytest.raises(ConfigError) as caught:
        parse_table(text, "t.csv")
    error = caught.value
    assert (error.file, error.line, error.column) == ("t.csv", 3, "api_key_env")
    message = str(error)
    assert problem in message and "\n" not in message
    assert "such as GROQ_API_KEY" in message or "remove the repeat" in message  # the fix
    assert KEY not in message and KEY not in repr(error)


TOML_ERRORS = [
    ("[]", "api_key_env lists no variable"),
    ('["A", ""]', "item 2 of api_key_env is empty"),
    ('["A", 3]', "item 2 of api_key_env is not a string"),
    ('["A", "A"]', "item 2 of api_key_env repeats item 1"),
    (f'["A", "{KEY}"]', "item 2 of api_key_env is not an environment variable name"),
    ("7", "api_key_env must be a string or a list of strings"),
]


@pytest.mark.parametrize(("value", "problem"), TOML_ERRORS)
def test_a_bad_key_list_in_toml_names_its_line_and_key(value: str, problem: str) -> None:
    text = f'[[endpoints]]\nprovider = "groq"\nmodel = "m"\napi_key_env = {value}\n'
    with pytest.raises(ConfigError) as caught:
        parse_toml(text, "c.toml")
    error = caught.value
    assert (error.file, error.line, error.column) == ("c.toml", 4, "endpoints[0].api_key_env")
    assert problem in str(error) and "\n" not in str(error)
    fix = '["GROQ_API_KEY", "GROQ_API_KEY_2"]'
    assert fix in str(error) or "remove the repeat" in str(error)
    assert KEY not in str(error)


@pytest.mark.parametrize(
    ("rows", "taken"),
    [
        ('groq,m,"A, B",x\ngroq,m2,C,x', "'x'"),  # a later row takes a key list's id
        ('groq,m2,C,x\ngroq,m,"A, B",x', "'x'"),  # a key list takes an earlier row's id
        ('groq,m,"A, B",x\ngroq,m2,C,x#2', "'x#2'"),  # the id of one key's endpoint
        ('groq,m,"A, B",\ngroq,m,"C, D",', "'groq:m#1'"),  # two key lists of one id
    ],
)
def test_an_id_taken_by_a_key_list_is_a_duplicate(rows: str, taken: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_table(f"provider,model,api_key_env,name\n{rows}\n", "t.csv")
    assert f"endpoint {taken} is already defined at t.csv:2" in str(caught.value)
    assert (caught.value.line, caught.value.column) == (3, "name")


@pytest.mark.parametrize(
    "pasted", ["gsk_abcdefghijklmnopqrstuvwxyz0123", "AIzaSyD3xAmple0123456789abcdefghij"]
)
def test_a_key_pasted_in_place_of_its_variable_is_refused_without_being_shown(pasted: str) -> None:
    from llamux._config.load import parse_table

    table = "| provider | model | api_key_env |\n|---|---|---|\n" + f"| groq | m | {pasted} |\n"
    with pytest.raises(ConfigError) as caught:
        parse_table(table)
    assert "not the key itself" in str(caught.value) and pasted not in str(caught.value)
    listed = (
        "| provider | model | api_key_env |\n|---|---|---|\n" + f'| groq | m | "A, {pasted}" |\n'
    )
    with pytest.raises(ConfigError) as caught:
        parse_table(listed)
    assert pasted not in str(caught.value)
