"""Reading one value of a config row: where the row came from (``Place``, which makes the
error that names a file, line and column), numbers with ``K``/``M`` suffixes, text, IANA
time zones, and the close name to suggest for a misspelt one."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from .._errors import ConfigError
from .endpoint import LIMIT_NAMES

# ---------------------------------------------------------------- locating errors


@dataclass(frozen=True, slots=True)
class Place:
    """Where a row or table comes from, to locate error messages."""

    file: str
    line: int | None = None
    prefix: str = ""
    """Prepended to a key to name the column: ``endpoints[2].`` in TOML."""
    key_lines: Mapping[str, int] = field(default_factory=dict)
    toml: bool = False

    @property
    def empty(self) -> str:
        return "leave the key out" if self.toml else "leave the cell empty"

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line if self.line else self.prefix.rstrip('.')}"

    def error(self, message: str, key: str | None = None) -> ConfigError:
        line = self.key_lines.get(key, self.line) if key else self.line
        column = None if key is None else self.prefix + key
        return ConfigError(message, file=self.file, line=line, column=column)


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (ignoring case), if one is close."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def show(value: object) -> str:
    """A short repr of a user's value for a message."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def check_keys(place: Place, keys: Iterable[str], known: Iterable[str], what: str) -> None:
    """Raise on the first key not in ``known``, suggesting the closest known one."""
    choices = tuple(known)
    for key in keys:
        if key not in choices:
            close = suggest(key, choices)
            fix = f"rename it to {close!r}, or remove it" if close else "remove it"
            listed = ", ".join(choices)
            raise place.error(f"unknown {what} {show(key)} (known: {listed}); {fix}", key)


# ---------------------------------------------------------------- values

_NUMBER = re.compile(r"([0-9]{1,20}(?:\.[0-9]{1,20})?|\.[0-9]{1,20})([kKM]?)")
_SEPARATORS = str.maketrans("", "", "_ \u2009\u202f\u00a0")
_SUFFIXES = {"": 1, "k": 1000, "K": 1000, "M": 1_000_000}
_LARGEST = 10**18
_INTEGERS: Mapping[str, tuple[int | None, str]] = {
    **{
        name: (0, "write a non-negative integer such as 30 (14.4K and 1_000_000 work too; "
               "0 means never use this metric), auto for the provider's own limit, "
               "or {empty} for no limit")
        for name in LIMIT_NAMES
    },
    "priority": (None, "write an integer such as 1 (lower is preferred), "
                 "or {empty} to keep the order of the endpoints"),
    "context": (1, "write a positive integer such as 128K (the most tokens a request may "
                "use), or {empty} if unknown"),
    "max_output": (1, "write a positive integer such as 1024 (tokens reserved for the "
                   "answer), or {empty} for the default 1024"),
    "max_inputs": (1, "write a positive integer such as 96 (the most inputs one embeddings "
                   "request may carry), or {empty} if unknown"),
    "concurrency": (1, "write a positive integer such as 2 (the most requests in flight at "
                    "once), or {empty} for no limit"),
}  # fmt: skip
_FLOATS: Mapping[str, str] = {
    "weight": "write a non-negative number such as 1 or 0.5, or {empty} for 1",
    "input_cost": "write USD per million input tokens, such as 0.59, or {empty} if unknown",
    "output_cost": "write USD per million output tokens, such as 0.79, or {empty} if unknown",
    "usd_day": "write the most dollars to spend per day, such as 1.50, or {empty} for no budget",
    "usd_month": "write the most dollars to spend per month, such as 20, or {empty} for no budget",
}


def integer(place: Place, key: str, value: object) -> int | None:
    """The integer in ``value`` (None if absent), checked against the column's minimum."""
    if value is None:
        return None
    minimum, fix = _INTEGERS[key]
    fix = fix.format(empty=place.empty)
    number = _whole(value)
    if number is None:
        raise place.error(f"{show(value)} is not a whole number; {fix}", key)
    if abs(number) > _LARGEST:
        raise place.error(f"{show(value)} is too large; {fix}", key)
    if minimum is not None and number < minimum:
        problem = "negative" if minimum == 0 else "not positive"
        raise place.error(f"{number} is {problem}; {fix}", key)
    return number


def _whole(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.translate(_SEPARATORS)
    sign = -1 if text.startswith("-") else 1
    match = _NUMBER.fullmatch(text.removeprefix("-"))
    if match is None:
        return None
    number = Decimal(match[1]) * _SUFFIXES[match[2]]
    return sign * int(number) if number == number.to_integral_value() else None


def number(place: Place, key: str, value: object) -> float | None:
    """The non-negative, finite number in ``value`` (None if absent)."""
    if value is None:
        return None
    fix = _FLOATS[key].format(empty=place.empty)
    found: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        found = float(value)
    elif isinstance(value, str):
        try:
            found = float(value.strip().removeprefix("$"))
        except ValueError:
            found = None
    if found is None or found != found or found in (float("inf"), float("-inf")):
        raise place.error(f"{show(value)} is not a number; {fix}", key)
    if found < 0:
        raise place.error(f"{show(value)} is negative; {fix}", key)
    return found


def text(place: Place, key: str, value: object, example: str) -> str | None:
    """The stripped string in ``value``, None if absent or blank."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise place.error(f"{key} must be a string; write it in quotes, e.g. {example}", key)
    return value.strip() or None


def timezone(place: Place, key: str, name: str) -> str:
    """The IANA timezone called ``name``, ignoring case (``utc`` is ``UTC``)."""
    if name.lower() in _zones():
        return _zones()[name.lower()]
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        close = suggest(name, _zones().values())
        hint = f"write {close!r}, or " if close else "write a name such as UTC or "
        fix = f"{hint}America/Los_Angeles, or rolling for rolling windows"
        raise place.error(f"{show(name)} is not a known IANA timezone; {fix}", key) from None
    return name


@cache
def _zones() -> dict[str, str]:
    """Lower-cased name -> name of every timezone the system knows."""
    return {zone.lower(): zone for zone in (*available_timezones(), "UTC")}
