"""A text table that fits a width without breaking a word: boxed on a terminal, plain
(aligned columns, no lines) elsewhere.

Columns that do not wrap (ids, numbers) keep their whole width; columns that may wrap break
only between words. :func:`fit` says which widths fit, or ``None``: the caller then shows
its data another way rather than breaking it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._screen import Screen, longest_word, pad, width_of, wrap

Segment = tuple[str, str]
"""Text and its style (``""``: none)."""
Line = tuple[Segment, ...]
Cell = tuple[Line, ...]

WORD_CAP = 24
"""A wrapping column need not be wider than this for a long word: it is cut with ``…``."""
BOXES = {True: "┏━┳┓┃┡╇┩│├─┼┤└┴┘", False: "+-++|+++|+-+++++"}
"""Box characters (top, header, under the header, body, sections, bottom), Unicode or ASCII."""


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    right: bool = False
    wraps: bool = False
    """Whether the column's text may wrap between words (never within one)."""
    cuts: bool = True
    """Whether a wrapping column may cut a word longer than ``WORD_CAP`` (with ``…``);
    never for ids."""


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[Cell, ...]
    end_section: bool = False


def text_cell(*lines: str, style: str = "") -> Cell:
    """A cell of plain lines, all in one style (empty lines are dropped)."""
    return tuple(((line, style),) for line in lines if line)


def plain(line: Line) -> str:
    return "".join(text for text, _ in line)


def overhead(count: int, boxed: bool) -> int:
    """Columns taken by borders and gaps around ``count`` columns."""
    return 3 * count + 1 if boxed else 2 * (count - 1)


def natural(columns: Sequence[Column], rows: Sequence[Row]) -> list[int]:
    """Each column's width with nothing wrapped."""
    widths = [width_of(c.header) for c in columns]
    for row in rows:
        for index, cell in enumerate(row.cells):
            for line in cell:
                widths[index] = max(widths[index], width_of(plain(line)))
    return widths


def fit(
    columns: Sequence[Column], rows: Sequence[Row], width: int | None, boxed: bool
) -> list[int] | None:
    """Column widths within ``width`` (None: unbounded), narrowing the wrapping columns
    (the widest first) down to their longest word; ``None`` if even that is too wide."""
    widths = natural(columns, rows)
    extra = overhead(len(columns), boxed)
    if width is None or sum(widths) + extra <= width:
        return widths
    least = [
        max(width_of(c.header), _longest(rows, i, c.cuts)) if c.wraps else widths[i]
        for i, c in enumerate(columns)
    ]
    excess = sum(widths) + extra - width
    while excess > 0:
        room = [(widths[i] - least[i], i) for i in range(len(columns)) if widths[i] > least[i]]
        if not room:
            return None
        _, widest = max((widths[i], i) for _, i in room)
        widths[widest] -= 1
        excess -= 1
    return widths


def _longest(rows: Sequence[Row], index: int, cuts: bool) -> int:
    words = [longest_word(plain(line)) for row in rows for line in row.cells[index]]
    longest = max(words, default=0)
    return min(longest, WORD_CAP) if cuts else longest


def render(
    columns: Sequence[Column],
    rows: Sequence[Row],
    widths: Sequence[int],
    screen: Screen,
    boxed: bool,
) -> list[str]:
    """The table's lines at ``widths`` (from :func:`fit`)."""
    b = BOXES[screen.unicode]
    header = Row(tuple(text_cell(c.header, style="bold") for c in columns))
    out: list[str] = []
    if boxed:
        out.append(_rule(b[0], b[1], b[2], b[3], widths))
    out += _lines(columns, header, widths, screen, boxed, b[4])
    if boxed:
        out.append(_rule(b[5], b[1], b[6], b[7], widths))
    for number, row in enumerate(rows):
        out += _lines(columns, row, widths, screen, boxed, b[8])
        if boxed and row.end_section and number < len(rows) - 1:
            out.append(_rule(b[9], b[10], b[11], b[12], widths))
    if boxed:
        out.append(_rule(b[13], b[10], b[14], b[15], widths))
    return out


def _rule(left: str, fill: str, cross: str, right: str, widths: Sequence[int]) -> str:
    return left + cross.join(fill * (w + 2) for w in widths) + right


def _lines(
    columns: Sequence[Column],
    row: Row,
    widths: Sequence[int],
    screen: Screen,
    boxed: bool,
    bar: str,
) -> list[str]:
    cells = [
        _wrapped(cell, widths[i]) if columns[i].wraps else list(cell)
        for i, cell in enumerate(row.cells)
    ]
    height = max((len(cell) for cell in cells), default=0) or 1
    out = []
    for n in range(height):
        parts = []
        for i, cell in enumerate(cells):
            line: Line = cell[n] if n < len(cell) else ()
            text = plain(line)
            painted = "".join(screen.paint(t, style) for t, style in line)
            gap = " " * max(0, widths[i] - width_of(text))
            parts.append(gap + painted if columns[i].right else painted + gap)
        if boxed:
            out.append(f"{bar} " + f" {bar} ".join(parts) + f" {bar}")
        else:
            out.append("  ".join(parts).rstrip())
    return out


def _wrapped(cell: Cell, width: int) -> list[Line]:
    """A wrapping cell's lines at ``width``: each line's text wrapped (an indented line
    keeps its indent on each of its lines), in its first style."""
    out: list[Line] = []
    for line in cell:
        style, text = (line[0][1] if line else ""), plain(line)
        indent = " " * (len(text) - len(text.lstrip(" ")))
        out += [((piece, style),) for piece in wrap(text, width, indent)]
    return out


__all__ = ["Cell", "Column", "Line", "Row", "fit", "pad", "render", "text_cell"]
