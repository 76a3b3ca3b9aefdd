"""``llamux init``: write a starting endpoints table from the built-in catalog.

It looks at which providers' key variables are set in the environment (and the variables a
base URL needs, such as ``CLOUDFLARE_ACCOUNT_ID``), only ever asking whether each is set:
no key's value is read into anything it prints or writes. For each provider found it writes
one row per free model the catalog lists, with the limits the catalog knows written out as
numbers: an empty cell means the tier has no such limit, and every limit of a model whose
numbers the provider does not publish is ``auto`` (the provider's own limit, as best llamux
knows: it learns them from the answers). OpenRouter's ``:free`` models share the pool
``openrouter-free``.

Rows come in this order of preference (``ORDER``), each provider's models in catalog order:

1. free tiers whose numbers are known, in catalog order (Groq, Codestral, OpenRouter): llamux
   can plan for them without a single 429;
2. free tiers whose numbers are unpublished (Gemini, Mistral): their limits are learned from
   the first answers and 429s;
3. trial tiers (NVIDIA, evaluation only; then Cerebras, a credit that is spent and expires).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .._config import catalog
from .._config.catalog import ModelLimits, Provider
from .._config.endpoint import AUTO, LIMIT_NAMES
from .._errors import ConfigError
from ._commands import CONFIG_FILES, EXIT_OK

FORMATS = ("md", "csv", "toml")
DEFAULT_OUTPUT = {"md": "endpoints.md", "csv": "endpoints.csv", "toml": "llamux.toml"}
_EXTENSIONS = {".md": "md", ".markdown": "md", ".csv": "csv", ".toml": "toml"}
_CREDITS_POOLS = ("openrouter-free", "openrouter-free-1000")
"""A pool init writes, and the catalog pool of the same quota for accounts with credits."""

ORDER = (
    "known free tiers first (Groq, Codestral, OpenRouter :free), then free tiers whose "
    "limits are unpublished and learned as llamux goes (Gemini, Mistral), then trial "
    "tiers (NVIDIA, then Cerebras); each provider's models in catalog order"
)
DESCRIPTION = (
    "Write a starting endpoints table from the catalog, with one row per free model of each "
    "provider whose key variable is set, and its known limits (an empty cell: no such limit; "
    "auto: unpublished, learned from the provider's answers). No key's value is ever "
    f"printed or written. Row order: {ORDER}."
)


@dataclass(frozen=True, slots=True)
class Row:
    """One endpoint to write: a catalog entry, and whether its provider's key is set."""

    entry: ModelLimits
    keyed: bool

    def cell(self, name: str) -> str:
        """The limit cell ``name``: a number, ``auto`` (unpublished) or empty (no limit)."""
        if not self.entry.published:
            return AUTO
        value = self.entry.limits.get(name)
        return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Plan:
    """What init would write, and what it found in the environment."""

    rows: tuple[Row, ...]
    looked_for: tuple[str, ...]
    """The variables of every provider init could write rows for, in order."""
    missing: tuple[tuple[Provider, tuple[str, ...]], ...]
    """Providers with free models whose variables (listed) are not all set."""
    others: tuple[Provider, ...]
    """Providers whose key is set but for which the catalog lists no free model."""
    include_all: bool = False
    """Whether the rows of providers without their variables set were written too."""


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """The options of ``llamux init``."""
    sub.description = DESCRIPTION
    sub.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the file to write (default: endpoints.md, endpoints.csv or llamux.toml, by format)",
    )
    sub.add_argument(
        "--format",
        choices=FORMATS,
        help="markdown table, CSV or TOML config (default: from the output's extension, else md)",
    )
    sub.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME",
        help="only this provider (repeatable), e.g. --provider groq --provider openrouter",
    )
    sub.add_argument(
        "--all",
        action="store_true",
        dest="include_all",
        help="also write rows for providers whose key is not set: llamux skips them, with one "
        "warning, until the key is set (so the file is ready for keys you add later)",
    )
    sub.add_argument("--force", action="store_true", help="overwrite the output if it exists")


def cmd_init(args: argparse.Namespace) -> int:
    """Write the endpoints table for the keys set in the environment; say what was written."""
    fmt, path = output_of(args.format, args.output)
    found = plan(args.provider, include_all=args.include_all, environ=os.environ)
    if not found.rows:
        looked = ", ".join(found.looked_for)
        also = "".join(
            f" ({p.api_key_env} is set, but {p.name} has no free models)" for p in found.others
        )
        raise ConfigError(
            f"no provider key is set: looked for {looked} in the environment{also}; set one "
            "(e.g. export GROQ_API_KEY=...) and run llamux init again, or pass --all to "
            "write every provider's rows"
        )
    write(path, render(found.rows, fmt, catalog.last_checked()), force=args.force)
    for line in report(path, found, date.today()):
        print(line)
    return EXIT_OK


def output_of(fmt: str | None, output: str | None) -> tuple[str, Path]:
    """The format and the path to write: given, inferred from each other, else markdown."""
    inferred = _EXTENSIONS.get(Path(output).suffix.lower()) if output else None
    chosen = fmt or inferred or "md"
    path = Path(output) if output else Path(DEFAULT_OUTPUT[chosen])
    if (chosen == "toml") != (path.suffix.lower() == ".toml"):
        raise ConfigError(
            f"--format {chosen} does not fit {path}: llamux reads a file ending in .toml as "
            "TOML and any other as a table; name a TOML output *.toml and a table anything else"
        )
    return chosen, path


def plan(names: Sequence[str], *, include_all: bool, environ: Mapping[str, str]) -> Plan:
    """The rows for the providers ``names`` (all if empty) whose variables are set in
    ``environ`` (every one with ``include_all``), in the order of preference."""
    candidates = [
        p for p in catalog.providers() if p.status != "retired" and catalog.models(p.name)
    ]
    candidates.sort(key=_rank)
    chosen = _chosen(names, candidates)
    rows, missing = [], []
    for entry in chosen:
        unset = _unset(entry, environ)
        if unset:
            missing.append((entry, unset))
        if include_all or not unset:
            rows += [Row(model, not unset) for model in catalog.models(entry.name)]
    looked = tuple(var for entry in chosen for var in _variables(entry))
    others = () if names else _others(candidates, environ)
    return Plan(tuple(rows), looked, tuple(missing), others, include_all)


def _others(candidates: Sequence[Provider], environ: Mapping[str, str]) -> tuple[Provider, ...]:
    """The providers whose key is set but that init writes no rows for (paid APIs, ...)."""
    rest = [p for p in catalog.providers() if p not in candidates and p.status != "retired"]
    return tuple(p for p in rest if _set(p.api_key_env, environ))


def _rank(entry: Provider) -> int:
    if entry.status == "trial":
        return 2
    return 1 if entry.limits == catalog.UNPUBLISHED else 0


def _chosen(names: Sequence[str], candidates: Sequence[Provider]) -> list[Provider]:
    if not names:
        return list(candidates)
    by_name = {entry.name: entry for entry in candidates}
    known = ", ".join(entry.name for entry in candidates)
    wanted = []
    for name in names:
        key = name.strip().lower()
        if key not in by_name:
            known_here = catalog.provider(key) is not None
            what = (
                "has no free models in the catalog" if known_here else "is not a catalog provider"
            )
            raise ConfigError(f"--provider {name!r} {what}; init knows: {known}")
        if by_name[key] not in wanted:
            wanted.append(by_name[key])
    return sorted(wanted, key=candidates.index)


def _variables(entry: Provider) -> tuple[str, ...]:
    return (entry.api_key_env, *(var for _, var in entry.url_vars))


def _set(var: str, environ: Mapping[str, str]) -> bool:
    return bool(environ.get(var, "").strip())  # only whether it is set: never the value


def _unset(entry: Provider, environ: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(var for var in _variables(entry) if not _set(var, environ))


# ------------------------------------------------------------------ writing


def render(rows: Sequence[Row], fmt: str, checked: str) -> str:
    """The text of the file: a comment giving the catalog's date, then the endpoints."""
    notes = _notes(rows, checked, "left out" if fmt == "toml" else "empty")
    if fmt == "toml":
        return "".join(f"# {line}\n" for line in notes) + "".join(_toml(row) for row in rows)
    columns = _columns(rows)
    cells = [[_value(row, column) for column in columns] for row in rows]
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([list(columns), *cells])
        return "".join(f"# {line}\n" for line in notes) + out.getvalue()
    table = _markdown([list(columns), *cells])
    return "\n\n".join([notes[0], table, *notes[1:]]) + "\n"


def _notes(rows: Sequence[Row], checked: str, empty: str) -> list[str]:
    notes = [
        f"Endpoints for llamux, written by llamux init from the llamux catalog checked on "
        f"{checked}; free tiers change often, llamux probe checks them.",
        f"Rows are in order of preference. A limit {empty} means the tier has no such limit; "
        "auto means the provider's own limit, as best llamux knows (learned from its answers).",
    ]
    pools = {row.entry.pool for row in rows}
    small, large = _CREDITS_POOLS
    more = catalog.pool(large)
    if small in pools and more is not None:
        limits = ", ".join(f"{name} {value}" for name, value in more.limits.items())
        notes.append(
            f"OpenRouter accounts that bought 10+ credits: use pool {large} instead of "
            f"{small} ({limits})."
        )
    unkeyed = sorted({row.entry.provider for row in rows if not row.keyed})
    if unkeyed:
        notes.append(
            f"No key was set for {', '.join(unkeyed)}: llamux skips those rows until it is."
        )
    return notes


def _columns(rows: Sequence[Row]) -> tuple[str, ...]:
    extra = [name for name in ("pool", "context") if any(_value(row, name) for row in rows)]
    return ("provider", "model", *LIMIT_NAMES, *extra)


def _value(row: Row, column: str) -> str:
    if column in LIMIT_NAMES:
        return row.cell(column)
    if column == "context":
        return "" if row.entry.context is None else str(row.entry.context)
    value = {"provider": row.entry.provider, "model": row.entry.model, "pool": row.entry.pool}
    return value[column] or ""


def _markdown(table: list[list[str]]) -> str:
    escaped = [[cell.replace("|", "\\|") for cell in line] for line in table]
    widths = [max(3, *(len(line[i]) for line in escaped)) for i in range(len(escaped[0]))]
    lines = [
        [cell.ljust(width) for cell, width in zip(line, widths, strict=True)] for line in escaped
    ]
    lines.insert(1, ["-" * width for width in widths])
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _toml(row: Row) -> str:
    lines = ["", "[[endpoints]]", f"provider = {_quoted(row.entry.provider)}"]
    lines.append(f"model = {_quoted(row.entry.model)}")
    for name in LIMIT_NAMES:
        cell = row.cell(name)
        if cell:
            lines.append(f"{name} = {_quoted(cell) if cell == AUTO else cell}")
    if row.entry.pool:
        lines.append(f"pool = {_quoted(row.entry.pool)}")
    if row.entry.context is not None:
        lines.append(f"context = {row.entry.context}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a TOML basic string


def write(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``; an existing file only with ``force``."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it, or --output PATH")
    try:
        with path.open("w" if force else "x", encoding="utf-8", newline="") as out:
            out.write(text)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it") from None
    except OSError as exc:
        fix = "check that its directory exists and that you may write there"
        raise ConfigError(f"cannot write {path} ({exc.strerror}); {fix}") from None


# ------------------------------------------------------------------ the report


def report(path: Path, found: Plan, today: date) -> list[str]:
    """What was written and what to do next, one line each."""
    counts = Counter(row.entry.provider for row in found.rows)
    by_provider = ", ".join(f"{name} {count}" for name, count in counts.items())
    lines = [f"wrote {path}: {len(found.rows)} endpoints ({by_provider})"]
    old = {f"{r.entry.provider} ({r.entry.checked})" for r in found.rows if _stale(r, today)}
    if old:
        lines.append(f"  checked over 90 days ago, may have changed: {', '.join(sorted(old))}")
    if found.missing:
        skipped = ", ".join(f"{p.name} ({' and '.join(unset)})" for p, unset in found.missing)
        done = "written, skipped until set" if found.include_all else "not written (or use --all)"
        lines.append(f"  no key for {skipped}: {done}")
    if found.others:
        names = ", ".join(f"{p.name} ({p.api_key_env})" for p in found.others)
        lines.append(f"  also set, no free models in the catalog: {names}; add their rows yourself")
    flag = "" if _found_by_default(path) else f" --config {path}"
    lines += ["next:", f"  llamux probe{flag}        check each endpoint and its limits"]
    lines.append(f'  llamux chat{flag} "hi"    a first request')
    return lines


def _stale(row: Row, today: date) -> bool:
    return catalog.stale(row.entry.checked, today)


def _found_by_default(path: Path) -> bool:
    """Whether llamux, run here without --config, would read ``path``."""
    if os.environ.get("LLAMUX_CONFIG"):
        return False
    first = next((Path(name) for name in CONFIG_FILES if Path(name).is_file()), None)
    return first is not None and first.resolve() == path.resolve()
