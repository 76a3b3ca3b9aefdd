"""Configuration: endpoints, limits, pools and routes, read from a table or a TOML file.

The table is a markdown pipe table (prose around it is ignored) or a CSV file (``,``,
``;`` or tab separated), one row per endpoint, in order of preference::

    | provider | model                   | rpm | tpm   | rpd   | reset |
    | -------- | ----------------------- | --- | ----- | ----- | ----- |
    | cerebras | llama3.3-70b            | 30  | 60000 | 14.4K |       |
    | groq     | llama-3.3-70b-versatile | 30  | 6000  | 1000  | UTC   |

Column names are case-insensitive. ``provider`` and ``model`` are required; the limit
columns ``rpm, tpm, rph, tph, rpd, tpd`` (requests / tokens per minute, hour, day) take a
non-negative integer (``1_000_000``, ``14.4K`` and ``1M`` work too) or ``auto`` (the limit the
provider has, as best llamux knows: learned from its answers, else the catalog's), an empty
cell meaning no limit. In a CSV file, lines that start with ``#`` are comments. Optional
columns: ``name`` (the endpoint id, default ``provider:model``), ``base_url``, ``api_key_env``,
``priority``, ``weight``, ``input_cost`` and ``output_cost`` (USD per million tokens),
``context``, ``max_output``, ``pool``, ``reset`` and ``capabilities`` (``tools``, ``vision``,
``json``). ``usd_day`` and ``usd_month`` are dollar budgets (a non-negative number, ``$``
allowed): a request is admitted only if its estimated price fits what is left, so an endpoint
with a budget needs ``input_cost`` or ``output_cost``.

``api_key_env`` may list several variables (``GROQ_API_KEY, GROQ_API_KEY_2``): the row is
then one endpoint per key, where the row stands, in the keys' order, with ids ``ID#1``,
``ID#2``, ... of the row's id ``ID`` (its ``name``, else ``provider:model``). Each counts its
own quota (a pool they share still counts once); ``ID`` selects all of them.

``reset`` says which limits count calendar periods instead of rolling windows: empty means
the catalog's defaults for the provider (Gemini's daily limits reset at midnight Pacific
time), ``rolling`` makes every limit rolling, a timezone (``UTC``) makes every limit count
calendar periods there, and ``rpd=America/Los_Angeles; rpm=rolling`` sets single limits.

The TOML format (see ``_config_toml``) holds the same endpoints plus pools, routes, the
store URL and the default strategy.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .._errors import ConfigError
from .endpoint import (
    CAPABILITIES,
    COLUMNS,
    DEFAULT_MAX_OUTPUT,
    LIMIT_NAMES,
    STRATEGIES,
    Config,
    Endpoint,
    Limits,
    Pool,
    Route,
)

__all__ = [
    "CAPABILITIES",
    "COLUMNS",
    "DEFAULT_MAX_OUTPUT",
    "LIMIT_NAMES",
    "STRATEGIES",
    "Config",
    "Endpoint",
    "Limits",
    "Pool",
    "Route",
    "load",
    "load_table",
    "load_toml",
    "parse_table",
    "parse_toml",
    "read_text",
]


def parse_table(text: str, source: str = "<string>") -> Config:
    """Parse a markdown pipe table or a CSV text (auto-detected) into a Config."""
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    if not any(line.strip() for line in lines):
        raise _empty(source)
    if any(line.lstrip().startswith("|") for line in lines):
        header, rows = _markdown_rows(lines, source)
    else:
        header, rows = _csv_rows(text, source)
    return _table_config(header, rows, source)


def load_table(path: str | os.PathLike[str]) -> Config:
    """Read a markdown or CSV endpoints table from ``path``."""
    return parse_table(read_text(path), os.fspath(path))


def parse_toml(text: str, source: str = "<string>") -> Config:
    """Parse a TOML config (endpoints, pools, routes, store, strategy)."""
    from .toml import parse_toml as parse

    return parse(text, source)


def load_toml(path: str | os.PathLike[str]) -> Config:
    """Read a TOML config from ``path``."""
    return parse_toml(read_text(path), os.fspath(path))


def load(path: str | os.PathLike[str]) -> Config:
    """Read a config: ``*.toml`` as TOML, anything else as a markdown or CSV table."""
    if os.fspath(path).lower().endswith(".toml"):
        return load_toml(path)
    return load_table(path)


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of ``path`` (a BOM dropped), or a ConfigError saying what to do."""
    name = os.fspath(path)
    try:
        return Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        fix = (
            "check the path, or point llamux at your endpoints table or TOML config, "
            "e.g. Router.from_csv('endpoints.csv') or Router.from_config('llamux.toml')"
        )
        raise ConfigError(f"this path does not exist; {fix}", file=name) from None
    except IsADirectoryError:
        fix = "give the path of the table or TOML file inside it"
        raise ConfigError(f"this path is a directory; {fix}", file=name) from None
    except UnicodeDecodeError as exc:
        fix = "save the file as UTF-8"
        raise ConfigError(f"not UTF-8 text (byte {exc.start}); {fix}", file=name) from None
    except OSError as exc:
        fix = "check that it exists and that you may read it"
        raise ConfigError(f"cannot be read ({exc.strerror}); {fix}", file=name) from None


# ---------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    cells: list[str]


def _cells(line: str) -> list[str]:
    body = line.strip().removeprefix("|")
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def _is_separator(line: str) -> bool:
    return "-" in line and all(re.fullmatch(r":?-+:?", cell) for cell in _cells(line))


def _markdown_rows(lines: list[str], file: str) -> tuple[_Row, list[_Row]]:
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("|"))
    header = _Row(start + 1, _cells(lines[start]))
    if start + 1 >= len(lines) or not _is_separator(lines[start + 1]):
        fix = "add a separator row such as | --- | --- | under the header row"
        raise ConfigError(f"the table has no separator row; {fix}", file=file, line=start + 2)
    _check_width(_Row(start + 2, _cells(lines[start + 1])), len(header.cells), file)
    rows: list[_Row] = []
    end = len(lines)
    for index in range(start + 2, len(lines)):
        if not lines[index].strip() or "|" not in lines[index]:
            end = index
            break
        rows.append(_Row(index + 1, _cells(lines[index])))
    for index in range(end, len(lines)):
        if lines[index].lstrip().startswith("|"):
            fix = "remove the blank or prose lines inside the table, or keep one table per file"
            problem = f"a table row comes after the end of the table (line {end + 1})"
            raise ConfigError(f"{problem}; {fix}", file=file, line=index + 1)
    return header, rows


def _csv_rows(text: str, file: str) -> tuple[_Row, list[_Row]]:
    lines = re.split(r"\r\n|\r|\n", text)
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[_Row] = []
    line = 1
    try:
        for cells in reader:
            comment = bool(cells) and cells[0].lstrip().startswith("#")
            if not comment and any(cell.strip() for cell in cells):
                rows.append(_Row(line, [cell.strip() for cell in cells]))
            line = reader.line_num + 1
    except csv.Error as exc:
        fix = "check the quotes on this line"
        raise ConfigError(f"not valid CSV ({exc}); {fix}", file=file, line=line) from None
    if not rows:
        raise _empty(file)
    return rows[0], rows[1:]


def _empty(file: str) -> ConfigError:
    fix = "write a header row (provider, model, rpm, ...) and one row per endpoint"
    return ConfigError(f"the table is empty: it defines no endpoints; {fix}", file=file)


def _check_width(row: _Row, width: int, file: str) -> None:
    if len(row.cells) != width:
        fix = f"give every row {width} cells (an empty cell means no limit)"
        problem = f"this row has {len(row.cells)} cells but the header has {width}"
        raise ConfigError(f"{problem}; {fix}", file=file, line=row.line)


def _columns(header: _Row, file: str) -> list[str]:
    from .values import Place, check_keys

    place = Place(file, header.line)
    names = [cell.lower() for cell in header.cells]
    for index, name in enumerate(names):
        if not name:
            fix = "name it (provider, model, rpm, ...) or remove it"
            raise place.error(f"column {index + 1} of the header has no name; {fix}")
        if name in names[:index]:
            raise place.error(f"column {name!r} appears twice; remove one", name)
    check_keys(place, names, COLUMNS, "column")
    for name, example in (("provider", "groq"), ("model", "llama-3.3-70b-versatile")):
        if name not in names:
            fix = f"add a {name!r} column (e.g. {example}) to the header and every row"
            raise place.error(f"the table has no {name!r} column; {fix}", name)
    return names


def _table_config(header: _Row, rows: list[_Row], file: str) -> Config:
    from .build import add_unique, build_endpoints, make_config, unique
    from .values import Place

    columns = _columns(header, file)
    if not rows:
        fix = "add one row per endpoint under the header"
        raise ConfigError(f"the table has a header but no rows; {fix}", file=file, line=header.line)
    seen: dict[str, Endpoint] = {}
    for row in rows:
        _check_width(row, len(columns), file)
        values = {name: cell for name, cell in zip(columns, row.cells, strict=True) if cell}
        place = Place(file, row.line)
        add_unique(seen, build_endpoints(place, values), place)
    return make_config(unique(seen), source=file)
