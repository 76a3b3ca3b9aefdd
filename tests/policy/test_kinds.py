"""The kinds of request: their input's tokens, output budget and stream usage."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llamux._config.endpoint import KINDS
from llamux._policy.kinds import CHAT, COMPLETIONS, EMBEDDINGS, KIND, RESPONSES
from llamux._policy.tokens import input_tokens, text_tokens, usage_tokens


def test_every_kind_of_the_config_has_a_kind() -> None:
    assert tuple(KIND) == KINDS


def test_embeddings_cost_their_input_only() -> None:
    assert EMBEDDINGS.prompt("hello world", {}) == text_tokens("hello world")
    assert EMBEDDINGS.prompt(["ab", "cdefgh"], {}) == 1 + 2
    assert EMBEDDINGS.prompt([1, 2, 3], {}) == 3
    assert EMBEDDINGS.prompt([[1, 2], [3]], {}) == 3
    assert EMBEDDINGS.output({"max_tokens": 500}, 1024) == 0


def test_responses_count_input_instructions_and_max_output_tokens() -> None:
    plain = RESPONSES.prompt("hi", {})
    assert RESPONSES.prompt("hi", {"instructions": "x" * 40}) == plain + 10
    items = [{"role": "user", "content": [{"type": "input_text", "text": "a" * 400}]}]
    assert RESPONSES.prompt(items, {}) >= 100
    assert RESPONSES.output({"max_output_tokens": 77}, 1024) == 77
    assert RESPONSES.output({}, 1024) == 1024
    assert RESPONSES.output({"max_tokens": 5}, 1024) == 1024  # not the Responses API's knob


def test_text_completions_count_prompt_suffix_and_max_tokens_times_n() -> None:
    assert COMPLETIONS.prompt("abcd", {"suffix": "efgh"}) == 2
    assert COMPLETIONS.output({"max_tokens": 10, "n": 3}, 1024) == 30
    assert CHAT.output({"max_completion_tokens": 9, "max_tokens": 99}, 1024) == 9


def test_streams_report_usage_where_their_kind_puts_it() -> None:
    usage = SimpleNamespace(total_tokens=12)
    assert CHAT.stream_usage(SimpleNamespace(usage=usage, choices=[])) is usage
    done = SimpleNamespace(type="response.completed", response=SimpleNamespace(usage=usage))
    assert RESPONSES.stream_usage(done) is usage
    delta = SimpleNamespace(type="response.output_text.delta", delta="x")
    assert RESPONSES.stream_usage(delta) is None


@pytest.mark.parametrize(
    ("usage", "total"),
    [
        ({"input_tokens": 5, "output_tokens": 7}, 12),  # the Responses API's names
        ({"prompt_tokens": 5, "total_tokens": 5}, 5),  # embeddings
        ({"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}, 7),
    ],
)
def test_usage_of_every_kind_is_read(usage: dict[str, int], total: int) -> None:
    assert usage_tokens(usage) == total


def test_input_tokens_of_odd_values_never_fail() -> None:
    assert input_tokens({"a": 1}) > 0
    assert input_tokens([]) == 0
