"""Server-sent events, incrementally: split a byte stream into whole events, bytes unchanged.

The proxy relays a provider's stream as it comes and needs two things from it: the usage
the last chunk reports (to settle the reservation), and to drop that usage-only chunk when
the client did not ask for it (llamux asks the provider for it on the client's behalf).
Nothing else is touched: every other byte goes out exactly as it came in.
"""

from __future__ import annotations

import json
import re
from typing import Any

_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
"""A blank line: two line ends in a row (CRLF, CR or LF each), which ends an event."""
_USAGE = re.compile(rb'"usage"\s*:\s*\{|"type"\s*:\s*"response\.(?:completed|failed|incomplete)"')
"""A usage object (not ``"usage": null``) or a Responses stream's last event: only such
events are worth parsing."""
_FINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")
"""The events that end a Responses API stream (the first carries the usage)."""


class EventSplitter:
    """Cuts a byte stream into whole events, each with its blank line, bytes unchanged."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The events that ``data`` completes, in order (the rest waits for more bytes)."""
        self._buffer += data
        events = []
        start = 0
        while (found := _EVENT_END.search(self._buffer, start)) is not None:
            events.append(self._buffer[start : found.end()])
            start = found.end()
        self._buffer = self._buffer[start:]
        return events

    def rest(self) -> bytes:
        """The bytes of an event that never ended (empty after a clean stream)."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> bytes | None:
    """The event's ``data`` field (its ``data:`` lines joined by newlines), if any."""
    lines = [line for line in event.splitlines() if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[6:] if line[5:6] == b" " else line[5:] for line in lines)


class UsageScanner:
    """Reads the usage out of an OpenAI stream as it passes: a chat or text-completion
    stream's usage chunk (optionally hiding the usage-only chunk, ``"choices": []``, that
    llamux asked for on the client's behalf), or a Responses API stream's
    ``response.completed`` event (which ends that stream: it sends no ``[DONE]``)."""

    def __init__(self, *, hide_usage: bool) -> None:
        self._split = EventSplitter()
        self._hide_usage = hide_usage
        self.usage: dict[str, Any] | None = None
        """The last ``usage`` object seen in the stream, ``None`` until one comes."""
        self.finished = False
        """Whether the ``data: [DONE]`` event has passed: the answer is complete."""

    def feed(self, data: bytes) -> bytes:
        """The bytes to pass on now: the whole events ``data`` completes, minus a hidden one."""
        return b"".join(event for event in self._split.feed(data) if self._keep(event))

    def rest(self) -> bytes:
        """What is left at the end of a clean stream: an unterminated last event, if any."""
        rest = self._split.rest()
        return rest if not rest or self._keep(rest) else b""

    def _keep(self, event: bytes) -> bool:
        data = event_data(event)
        if data is None or not _USAGE.search(data):
            self.finished = self.finished or data == b"[DONE]"
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        if not isinstance(chunk, dict):
            return True
        if chunk.get("type") in _FINAL_EVENTS:
            response = chunk.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            if isinstance(usage, dict):
                self.usage = usage
            self.finished = True
            return True
        if not isinstance(chunk.get("usage"), dict):
            return True
        self.usage = chunk["usage"]
        return not (self._hide_usage and chunk.get("choices") == [])


def json_usage(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` object of a JSON chat completion, ``None`` if it has none or is no JSON."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    usage = parsed.get("usage") if isinstance(parsed, dict) else None
    return usage if isinstance(usage, dict) else None
