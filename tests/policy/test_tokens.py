"""The token estimate is conservative against the fake provider's count, and usage is read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llamux._policy.tokens import (
    PER_IMAGE,
    estimate,
    output_budget,
    prompt_tokens,
    text_tokens,
    usage_split,
    usage_tokens,
)
from llamux.testing import count_prompt_tokens


def test_text_tokens_bytes_over_four_and_cjk_by_character() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1 and text_tokens("abcde") == 2
    assert text_tokens("こんにちは") == 5  # 15 bytes would say 4: one per character
    assert text_tokens("héllo") == 2  # 6 bytes
    assert text_tokens("日本 ok") == 2 + 1


def test_prompt_counts_overhead_tools_and_images() -> None:
    plain = [{"role": "user", "content": "hi"}]
    assert prompt_tokens(plain, {}) == 3 + 4 + 1 + 1
    with_tools = prompt_tokens(plain, {"tools": [{"type": "function", "function": {"name": "f"}}]})
    assert with_tools > prompt_tokens(plain, {})
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    assert prompt_tokens(image, {}) >= PER_IMAGE


def test_output_budget_prefers_max_completion_tokens_and_counts_choices() -> None:
    assert output_budget({}, 1024) == 1024
    assert output_budget({"max_tokens": 50}, 1024) == 50
    assert output_budget({"max_completion_tokens": 70, "max_tokens": 50}, 1024) == 70
    assert output_budget({"max_tokens": 50, "n": 3}, 1024) == 150
    assert estimate([{"role": "user", "content": "hi"}], {"max_tokens": 5}, 9) == 9 + 5


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "system", "assistant"]), texts), min_size=1))
def test_estimate_is_never_below_the_fake_providers_count(pairs: list[tuple[str, str]]) -> None:
    messages = [{"role": role, "content": text} for role, text in pairs]
    assert prompt_tokens(messages, {}) >= count_prompt_tokens(messages)


def test_usage_from_objects_dicts_and_counts() -> None:
    class Usage:
        total_tokens = 12

    class Response:
        usage = Usage()
        choices = ()

    assert usage_tokens(Response()) == 12
    assert usage_tokens(Usage()) == 12
    assert usage_tokens({"usage": {"total_tokens": 7}}) == 7
    assert usage_tokens({"prompt_tokens": 3, "completion_tokens": 4}) == 7
    assert usage_tokens(9) == 9
    assert usage_tokens({"usage": None}) is None

    class NoUsage:
        usage = None
        choices = ()

    assert usage_tokens(NoUsage()) is None


def test_usage_from_sdk_models_their_fields_and_extras() -> None:
    import pydantic
    from openai.types.chat import ChatCompletion
    from openai.types.responses import ResponseUsage

    answer = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )
    assert usage_tokens(answer) == usage_tokens(answer.usage) == 8
    assert usage_tokens(answer.model_copy(update={"usage": None})) is None  # no usage said
    responses = ResponseUsage.model_validate(
        {
            "input_tokens": 4,
            "output_tokens": 6,
            "total_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
    )
    assert usage_split(responses) == (4, 6)

    class Loose(pydantic.BaseModel, extra="allow"):
        """A provider's usage whose counts came as undeclared (extra) fields."""

    assert usage_tokens(Loose.model_validate({"prompt_tokens": 2, "completion_tokens": 5})) == 7
    assert usage_tokens(Loose()) is None


def test_completion_tokens_from_objects_and_dicts() -> None:
    from llamux._policy.tokens import completion_tokens

    class Usage:
        completion_tokens = 7

    assert completion_tokens(Usage()) == 7
    assert completion_tokens({"completion_tokens": 5, "total_tokens": 9}) == 5
    assert completion_tokens({"total_tokens": 9}) is None
    assert completion_tokens(None) is None
