"""The input of ``llamux batch``: JSONL in the OpenAI Batch API's line format, or a text
file of one prompt per line (``--text``). Every line is checked before anything is sent:
an invalid line is an error naming its line number, and so is a ``custom_id`` used twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._engine.batch_item import URLS, BatchItem, batch_item
from .._errors import InvalidRequest, LlamuxError
from ._output import UsageError


@dataclass(frozen=True, slots=True)
class Line:
    """One request of the input: its ``custom_id``, its line number, its request."""

    custom_id: str
    number: int
    item: BatchItem


@dataclass(frozen=True, slots=True)
class Input:
    """The valid lines of an input, and what is wrong with the others (``path:N: ...``)."""

    lines: tuple[Line, ...]
    invalid: tuple[str, ...]


def read_input(
    path: str, *, text: bool, model: str | None, system: str | None, skip_invalid: bool
) -> Input:
    """The requests of ``path``. Raises ``UsageError`` for an unreadable file, duplicate
    ``custom_id``s, or (without ``skip_invalid``) invalid lines, each with its line number."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the input {path}: {exc}; pass a readable file") from exc
    lines: list[Line] = []
    invalid: list[str] = []
    for number, content in enumerate(raw.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            if text:
                lines.append(_prompt(content, number, model, system))
            else:
                lines.append(_line(content, number, model))
        except (ValueError, LlamuxError) as error:
            invalid.append(f"{path}:{number}: {error}")
    duplicates = _duplicates(lines, path)
    if duplicates:
        raise UsageError(
            "duplicate custom_id in the input (each must be unique, to resume): "
            + "; ".join(duplicates)
        )
    if invalid and not skip_invalid:
        more = f" (and {len(invalid) - 5} more)" if len(invalid) > 5 else ""
        raise UsageError(
            f"{len(invalid)} invalid input line(s): {'; '.join(invalid[:5])}{more}; fix them, "
            "or pass --skip-invalid to send the others"
        )
    return Input(tuple(lines), tuple(invalid))


def _prompt(content: str, number: int, model: str | None, system: str | None) -> Line:
    messages = [{"role": "user", "content": content}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    body: dict[str, Any] = {"messages": messages}
    if model:
        body["model"] = model
    return Line(f"line-{number}", number, BatchItem("chat", body))


def _line(content: str, number: int, model: str | None) -> Line:
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise InvalidRequest("a line must be a JSON object with custom_id and body")
    custom_id = value.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise InvalidRequest("custom_id must be a non-empty string")
    method = value.get("method", "POST")
    if method != "POST":
        raise InvalidRequest(f"method must be POST, not {method!r}")
    url = value.get("url")
    if url is not None and url not in URLS:
        raise InvalidRequest(f"unknown url {url!r}; use one of {', '.join(URLS)}")
    body = value.get("body")
    if isinstance(body, dict) and model and "model" not in body:
        value = {**value, "body": {**body, "model": model}}
    return Line(custom_id, number, batch_item(value))


def _duplicates(lines: Sequence[Line], path: str) -> list[str]:
    seen: dict[str, list[int]] = {}
    for line in lines:
        seen.setdefault(line.custom_id, []).append(line.number)
    return [
        f"{cid!r} on lines {', '.join(map(str, numbers))} of {path}"
        for cid, numbers in seen.items()
        if len(numbers) > 1
    ]
