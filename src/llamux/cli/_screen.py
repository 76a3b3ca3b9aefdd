"""What the output allows (width, colour, Unicode), and text made to fit it.

``COLUMNS`` sets the width wherever output goes; without it a terminal's own width is used,
and output that goes to a pipe or a file is never wrapped. Colour only on a terminal, and
never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``. Unicode bars and boxes
only where the stream's encoding can write them.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33"}
"""The SGR codes of the styles the views use (``"bold red"``: both)."""
PROBE = "█▏░┃━…·"
"""Characters the views draw with: the stream must be able to encode them all."""


@dataclass(frozen=True, slots=True)
class Screen:
    """Where a view is printed: ``width`` in columns (``None``: unbounded, never wrap),
    whether it is a terminal, whether to colour, whether Unicode can be written."""

    width: int | None = None
    tty: bool = False
    color: bool = False
    unicode: bool = True

    @classmethod
    def of(cls, stream: TextIO, environ: Mapping[str, str] | None = None) -> Screen:
        """The screen of ``stream`` (``sys.stdout``, ``sys.stderr``) under ``environ``."""
        env = os.environ if environ is None else environ
        tty = _isatty(stream)
        width = _columns(env)
        if width is None and tty:
            width = shutil.get_terminal_size().columns
        color = tty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
        return cls(width, tty, color, _encodes(stream, PROBE))

    def paint(self, text: str, style: str) -> str:
        """``text`` in ``style`` (space-separated names of ``STYLES``) if colouring."""
        if not self.color or not style or not text:
            return text
        codes = ";".join(STYLES[name] for name in style.split() if name in STYLES)
        return f"\x1b[{codes}m{text}\x1b[0m" if codes else text


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed, or not a real stream
        return False


def _columns(env: Mapping[str, str]) -> int | None:
    text = env.get("COLUMNS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _encodes(stream: TextIO, text: str) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def width_of(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide (CJK) characters two, combining none."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded with spaces to ``width`` columns (on the left if ``right``)."""
    gap = " " * max(0, width - width_of(text))
    return gap + text if right else text + gap


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` if it fits ``width`` columns, else its start and end around ``…``: an id
    stays recognisable (``groq:llama-3…-versatile``)."""
    if width_of(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    keep = width - 1
    head, tail = text[: (keep + 1) // 2], text[len(text) - keep // 2 :] if keep // 2 else ""
    while width_of(head) + width_of(tail) > keep:  # wide characters: drop one more
        head, tail = (head[:-1], tail) if len(head) >= len(tail) else (head, tail[1:])
    return f"{head}…{tail}"


def end_ellipsis(text: str, width: int) -> str:
    """``text`` if it fits ``width`` columns, else cut and ended with ``…``."""
    if width_of(text) <= width:
        return text
    cut = text
    while cut and width_of(cut) > width - 1:
        cut = cut[:-1]
    return cut + "…" if width > 0 else ""


def wrap(text: str, width: int | None, indent: str = "", cut: bool = True) -> list[str]:
    """``text`` in lines of at most ``width`` columns (after the first, each starts with
    ``indent``), broken only between words; a word longer than a line is cut with ``…``
    (``cut``), or left whole to overflow (an id in a sentence). One line if ``width`` is
    None."""
    if width is None or width_of(text) <= width:
        return [text]
    lines = textwrap.wrap(
        text,
        max(len(indent) + 1, width),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    if not cut:
        return lines or [""]
    return [end_ellipsis(line, width) for line in lines] or [""]


def longest_word(text: str) -> int:
    """Columns of the longest word of ``text`` with its indent (what wrapping cannot go
    below)."""
    indent = len(text) - len(text.lstrip(" "))
    return indent + max((width_of(word) for word in text.split()), default=0)
