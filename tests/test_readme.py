"""The README's claims, checked: its commands and the numbers of its examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llamux import NoEndpointAvailable, Router
from llamux.testing import FakeClock

from conftest import SEED_TABLE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    blocks = bash_blocks(README)
    demo = next(b for b in blocks if "llamux demo" in b)
    tests = next(b for b in blocks if "pytest" in b)
    assert "pip install" in demo and "pip install" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_the_seed_table_in_the_readme_is_the_seed_table() -> None:
    assert SEED_TABLE.strip() in README


@pytest.fixture
def router(tmp_path: Path, keys: str) -> Router:
    path = tmp_path / "endpoints.csv"
    path.write_text(SEED_TABLE)
    return Router.from_csv(path, store="memory://", clock=FakeClock())


def test_completion_example_numbers(router: Router) -> None:
    messages = [{"role": "user", "content": "hey " * 4000}]
    served = [router.query(messages, max_tokens=500)[0] for _ in range(14)]
    assert served == ["cerebras"] * 13 + ["groq"]
    with pytest.raises(NoEndpointAvailable):
        router.query(messages, max_tokens=500)


def test_the_seed_example_numbers(router: Router) -> None:
    messages = [{"role": "user", "content": "hey" * 59999}]
    assert router.query(messages)[0] == "cerebras"
    with pytest.raises(NoEndpointAvailable, match="too large"):
        router.query(messages)


def test_thirty_first_short_request_goes_to_groq(router: Router) -> None:
    hello = [{"role": "user", "content": "Hello"}]
    served = [router.query(hello, max_tokens=10)[0] for _ in range(31)]
    assert served == ["cerebras"] * 30 + ["groq"]
