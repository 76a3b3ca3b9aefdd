"""Each name list is defined once: the dialects, the strategies, the limit names, the proxy's
defaults and key variable. Every module that needs a list reads it from its one source, and
these tests fail if a second copy appears or a table keyed by the names drifts from it."""

from __future__ import annotations

import argparse
import ast
import inspect
from dataclasses import fields
from pathlib import Path

import pytest

import llamux
from llamux._config import catalog as _catalog
from llamux._config import endpoint as _endpoint
from llamux._config import proxy_defaults as _proxy_defaults
from llamux._config.load import parse_table, parse_toml
from llamux._config.toml import POOL_KEYS
from llamux._policy import ratelimits as _ratelimits
from llamux._policy import strategies as _strategies
from llamux._policy.feedback import rule_name
from llamux._policy.ratelimits import Hint
from llamux._policy.rules import Rule, rules_from_limits
from llamux._policy.window import Window
from llamux.cli import build_parser
from llamux.testing import DIALECTS as FAKE_DIALECTS
from llamux.testing import FakeEndpoint, FakeEndpointState

SOURCE = Path(llamux.__file__).parent


def _literal_lists(tree: ast.AST) -> list[tuple[int, set[str]]]:
    """The strings of every tuple, list or set literal (or dict literal's keys) made only of
    strings, with its line."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            elements: list[ast.expr | None] = list(node.elts)
        elif isinstance(node, ast.Dict):
            elements = list(node.keys)
        else:
            continue
        items = [e.value for e in elements if isinstance(e, ast.Constant)]
        strings = {i for i in items if isinstance(i, str)}
        if items and len(items) == len(elements) == sum(isinstance(i, str) for i in items):
            found.append((node.lineno, strings))
    return found


def _copies(names: set[str]) -> list[str]:
    """Where in ``src/llamux`` a literal collection spells out exactly ``names``."""
    where = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where += [
            f"{path.relative_to(SOURCE).as_posix()}:{line}"
            for line, items in _literal_lists(tree)
            if items == names
        ]
    return where


@pytest.mark.parametrize(
    ("names", "places"),
    [
        # the header parser's and the fake's tables are keyed by dialect: held equal below
        (
            _endpoint.DIALECTS,
            ["_config/endpoint.py", "_policy/ratelimits.py", "testing/_dialects.py"],
        ),
        (_endpoint.STRATEGIES, ["_config/endpoint.py"]),
        (_endpoint.LIMIT_NAMES, ["_config/endpoint.py"]),
    ],
    ids=["dialects", "strategies", "limit names"],
)
def test_each_list_is_spelled_out_once(names: tuple[str, ...], places: list[str]) -> None:
    assert [place.split(":")[0] for place in _copies(set(names))] == places


# --- dialects -----------------------------------------------------------------------------


def test_catalog_and_fake_use_the_one_dialect_list() -> None:
    assert _catalog.DIALECTS is _endpoint.DIALECTS
    assert FAKE_DIALECTS is _endpoint.DIALECTS


def test_header_parser_knows_exactly_the_dialects() -> None:
    assert set(_ratelimits.DIALECTS) == set(_endpoint.DIALECTS)


def test_catalog_names_only_known_dialects() -> None:
    assert {entry.dialect for entry in _catalog.providers()} <= set(_endpoint.DIALECTS)


@pytest.mark.parametrize("dialect", _endpoint.DIALECTS)
def test_fake_speaks_every_dialect(dialect: str) -> None:
    assert FakeEndpoint("a", dialect=dialect).dialect == dialect


def test_fake_refuses_an_unknown_dialect() -> None:
    with pytest.raises(ValueError, match="dialect must be one of"):
        FakeEndpoint("a", dialect="klingon")


# --- strategies ---------------------------------------------------------------------------


def test_router_strategies_are_the_configs() -> None:
    assert set(_strategies.STRATEGIES) == set(_endpoint.STRATEGIES)


@pytest.mark.parametrize("name", _endpoint.STRATEGIES)
def test_each_strategy_is_built_by_its_name(name: str) -> None:
    assert _strategies.strategy_from(name).name == name
    config = parse_toml(f'strategy = "{name}"\n[[endpoints]]\nprovider = "groq"\nmodel = "m"\n')
    assert config.strategy == name


def test_cli_offers_exactly_the_strategies() -> None:
    sub = _subparser("query")
    (action,) = [a for a in sub._actions if a.dest == "strategy"]
    assert list(action.choices or ()) == sorted(_endpoint.STRATEGIES)


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    assert isinstance(commands.choices, dict)
    sub: argparse.ArgumentParser = commands.choices[name]
    return sub


# --- limit names --------------------------------------------------------------------------


def test_limits_fields_are_the_limit_names() -> None:
    names = tuple(f.name for f in fields(llamux.Limits))
    assert names == (*_endpoint.LIMIT_NAMES, "auto")  # the limits, then which are auto
    assert tuple(_endpoint.LIMIT_RULES) == _endpoint.LIMIT_NAMES


def test_table_and_pool_columns_take_every_limit_name() -> None:
    assert set(_endpoint.LIMIT_NAMES) <= set(_endpoint.COLUMNS)
    assert set(_endpoint.LIMIT_NAMES) <= set(POOL_KEYS)
    header = "provider, model, " + ", ".join(_endpoint.LIMIT_NAMES)
    cells = ", ".join(str(n) for n in range(1, len(_endpoint.LIMIT_NAMES) + 1))
    (endpoint,) = parse_table(f"{header}\ngroq, m, {cells}\n").endpoints
    assert [name for name, _ in endpoint.limits.items()] == list(_endpoint.LIMIT_NAMES)


@pytest.mark.parametrize(("name", "rule"), _endpoint.LIMIT_RULES.items())
def test_every_rule_name_agrees(name: str, rule: tuple[str, str]) -> None:
    metric, window = rule
    (made,) = rules_from_limits([(name, 5)], {})
    assert (made.name, made.metric, made.window.unit) == (name, metric, window)
    assert Rule(metric, Window(window), 5).name == name
    assert rule_name(Hint(metric, window, 5, 0, None)) == name
    fake = FakeEndpointState(FakeEndpoint("x", **{name: 5}))  # the fake provider's own limits
    assert [limit.name for limit in fake.limiter.limits] == [name]
    assert _endpoint.limit_name(metric, window) == name


def test_no_limit_name_for_what_no_limit_counts() -> None:
    with pytest.raises(ValueError, match="no limit counts"):
        _endpoint.limit_name("tokens", "week")


# --- proxy defaults and key variable ------------------------------------------------------


def test_cli_serve_defaults_are_the_proxys() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.max_body) == (
        _proxy_defaults.DEFAULT_HOST,
        _proxy_defaults.DEFAULT_PORT,
        _proxy_defaults.DEFAULT_MAX_BODY,
    )


def test_proxy_uses_the_one_set_of_defaults() -> None:
    proxy = pytest.importorskip("llamux.proxy")
    serve = inspect.signature(proxy.serve).parameters
    assert serve["host"].default == _proxy_defaults.DEFAULT_HOST
    assert serve["port"].default == _proxy_defaults.DEFAULT_PORT
    assert serve["max_body_bytes"].default == _proxy_defaults.DEFAULT_MAX_BODY
    app = inspect.signature(proxy.create_app).parameters
    assert app["max_body_bytes"].default == _proxy_defaults.DEFAULT_MAX_BODY
    assert proxy.DEFAULT_MAX_BODY == _proxy_defaults.DEFAULT_MAX_BODY
    assert proxy.KEY_VARIABLE == _proxy_defaults.KEY_VARIABLE


def test_the_key_variable_is_named_once() -> None:
    key = _proxy_defaults.KEY_VARIABLE
    where = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == key:
                where.append(path.relative_to(SOURCE).as_posix())
    assert where == ["_config/proxy_defaults.py"]
