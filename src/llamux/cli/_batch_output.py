"""The output of ``llamux batch``: JSONL in the OpenAI Batch API's output line format
(``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``) plus
``"llamux": {"endpoint", "tokens"}``, one complete line at a time.

Crash-safe and resumable: a line is written whole and flushed as its item completes (fsync
when the run ends cleanly); on opening, a last line without its newline (a kill -9, a power
cut mid-write) is cut off, and every ``custom_id`` already written is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from .._engine.served import served_by
from .._errors import LlamuxError, ProviderError
from ._output import UsageError


class Output:
    """An output file opened for appending, knowing which ``custom_id``s it holds."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dropped = _cut_partial(Path(path))
        """Bytes of a partial last line that were cut off (0: none)."""
        self.done = _written(Path(path))
        try:
            self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(
                f"cannot write the output {path}: {exc}; pass a writable path"
            ) from exc

    def write(self, custom_id: str, outcome: Any) -> None:
        """One complete line for ``custom_id`` (a response or a ``LlamuxError``), flushed."""
        self._file.write(json.dumps(output_line(custom_id, outcome), ensure_ascii=False) + "\n")
        self._file.flush()
        self.done.add(custom_id)

    def close(self, *, sync: bool) -> None:
        if sync:
            os.fsync(self._file.fileno())
        self._file.close()


def output_line(custom_id: str, outcome: Any) -> dict[str, Any]:
    """The OpenAI Batch output line of one item (and how llamux served it)."""
    line: dict[str, Any] = {"id": f"batch_req_{custom_id}", "custom_id": custom_id}
    if isinstance(outcome, LlamuxError):
        status = outcome.status if isinstance(outcome, ProviderError) else None
        endpoint = outcome.endpoint if isinstance(outcome, ProviderError) else None
        code = (outcome.code if isinstance(outcome, ProviderError) else None) or type(
            outcome
        ).__name__
        body = outcome.body if isinstance(outcome, ProviderError) else None
        line["response"] = (
            None if status is None else {"status_code": status, "request_id": None, "body": body}
        )
        line["error"] = {"code": code, "message": str(outcome)}
        line["llamux"] = {"endpoint": endpoint, "tokens": None}
        return line
    served = served_by(outcome)
    body = outcome.model_dump(mode="json") if hasattr(outcome, "model_dump") else outcome
    request_id = body.get("id") if isinstance(body, dict) else None
    line["response"] = {"status_code": 200, "request_id": request_id, "body": body}
    line["error"] = None
    line["llamux"] = {
        "endpoint": served.endpoint if served else None,
        "tokens": served.tokens if served else None,
    }
    return line


def _cut_partial(path: Path) -> int:
    """Truncate a last line that has no newline (a write cut short); its size."""
    try:
        with open(path, "rb+") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            end = size
            while end > 0:
                file.seek(max(0, end - 65536))
                chunk = file.read(end - max(0, end - 65536))
                where = chunk.rfind(b"\n")
                if where >= 0:
                    keep = max(0, end - len(chunk)) + where + 1
                    break
                end = max(0, end - 65536)
            else:
                keep = 0
            if keep < size:
                file.truncate(keep)
                os.fsync(file.fileno())
            return size - keep
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise UsageError(f"cannot read the output {path}: {exc}; pass a writable path") from exc


def _written(path: Path) -> set[str]:
    """The ``custom_id`` of every line already in the output."""
    done: set[str] = set()
    if not path.exists():
        return done
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            try:
                custom_id = json.loads(line).get("custom_id")
            except (json.JSONDecodeError, AttributeError):
                raise UsageError(
                    f"{path}:{number}: not an output line of llamux batch; pass another -o "
                    "path, or remove the line"
                ) from None
            if isinstance(custom_id, str):
                done.add(custom_id)
    return done
