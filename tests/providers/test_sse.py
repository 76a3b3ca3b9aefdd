"""Reading usage out of relayed streams, bytes unchanged: chat chunks and Responses events."""

from __future__ import annotations

import json

from llamux._providers.sse import UsageScanner


def sse(event: str | None, data: object) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def test_a_responses_stream_reports_usage_in_its_completed_event_and_ends_there() -> None:
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    stream = b"".join(
        [
            sse("response.created", {"type": "response.created", "response": {"usage": None}}),
            sse(
                "response.output_text.delta", {"type": "response.output_text.delta", "delta": "hi"}
            ),
            sse("response.completed", {"type": "response.completed", "response": {"usage": usage}}),
        ]
    )
    scanner = UsageScanner(hide_usage=True)
    passed = b"".join(scanner.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    assert passed + scanner.rest() == stream  # nothing hidden, nothing changed
    assert scanner.usage == usage and scanner.finished


def test_a_failed_responses_stream_is_finished_without_usage() -> None:
    scanner = UsageScanner(hide_usage=False)
    scanner.feed(sse("response.failed", {"type": "response.failed", "response": {"error": {}}}))
    assert scanner.finished and scanner.usage is None


def test_a_chat_stream_still_hides_the_usage_only_chunk_it_was_not_asked_for() -> None:
    chunk = {"choices": [{"delta": {"content": "x"}}], "usage": None}
    last = {"choices": [], "usage": {"total_tokens": 9}}
    scanner = UsageScanner(hide_usage=True)
    out = scanner.feed(sse(None, chunk) + sse(None, last) + b"data: [DONE]\n\n")
    assert out == sse(None, chunk) + b"data: [DONE]\n\n"
    assert scanner.usage == {"total_tokens": 9} and scanner.finished
