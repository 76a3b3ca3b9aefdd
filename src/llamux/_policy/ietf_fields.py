"""The IETF RateLimit header fields, read whatever the provider's dialect.

draft-ietf-httpapi-ratelimit-headers (-10, 2025) defines two Structured Fields (RFC 9651):
``RateLimit-Policy: "burst";q=100;w=60, "daily";q=1000;w=86400`` states each quota policy
(``q`` quota, ``w`` window in seconds, ``qu`` quota unit, ``pk`` partition key) and
``RateLimit: "burst";r=95;t=25`` the service limit of each named policy now (``r`` remaining,
``t`` seconds until more quota is made available). Older drafts, still widely sent, have
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` (delta seconds) for the
policy closest to its limit, beside ``RateLimit-Policy: 10;w=1, 100;w=60`` (bare quotas);
draft -07 put the same trio in one field, ``RateLimit: limit=10, remaining=1, reset=7``.

Units: ``requests`` (the default) reads as requests; a unit ending in ``tokens`` (no draft
registers one, some LLM API may send it) as tokens. ``content-bytes``, ``concurrent-requests``
and any other unit are skipped, with their service limits. Partition keys are ignored.

Windows, mapped conservatively (llamux never allows more than the provider): a window of
``w`` seconds equal to a minute, hour or day (60, 3600, 86400) is that window with limit
``q``; shorter than a minute, a minute with limit ``q`` (stricter than ``q`` per ``w``);
otherwise the largest llamux window ``W <= w`` with limit ``floor(q / ceil(w / W))``, since
``ceil(w / W)`` back-to-back windows of ``W`` cover any ``w`` seconds (for example
``q=100;w=120`` is 50 per minute and ``q=1000;w=7200`` is 500 per hour; a quota smaller
than that count maps to 0). A remaining count is capped at the mapped limit. A policy that
names no window states no usable limit: its remaining and reset still count, and the caller
picks their window from the reset's distance (``ratelimits.window_by_reset``); so does an
old-draft trio whose limit matches no policy's quota.

Pure: no I/O, no clock (a reset is returned as the text sent, read by the caller). Malformed
fields are ignored, as the draft requires: this never raises on provider input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

FIELD_NAMES = (
    "ratelimit-policy",
    "ratelimit",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
)
"""The standard fields, lower-cased: the current draft's two, then the older drafts' trio."""
LLAMUX_WINDOWS = (("minute", 60), ("hour", 3600), ("day", 86400))
"""llamux's windows that a standard window maps onto, shortest first, in seconds."""


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit the standard fields state, before it meets the clock."""

    metric: str  # "requests" | "tokens"
    window: str | None  # None: no window stated
    limit: int | None
    remaining: int | None
    reset: str | None  # seconds until more quota, as sent (``t``, ``RateLimit-Reset``)


def conservative_window(seconds: float, quota: int) -> tuple[str, int] | None:
    """The llamux window and limit that never allow more than ``quota`` per ``seconds``.

    None for a window that is not a positive finite number of seconds.
    """
    if not (math.isfinite(seconds) and seconds > 0) or quota < 0:
        return None
    if seconds <= LLAMUX_WINDOWS[0][1]:
        return LLAMUX_WINDOWS[0][0], quota
    name, length = max((w for w in LLAMUX_WINDOWS if w[1] <= seconds), key=lambda w: w[1])
    return name, quota // math.ceil(seconds / length)


# --- Structured Fields (RFC 9651), as much as these fields need --------------------------


class _Malformed(ValueError):
    pass


_OTHER = object()  # a date or display string: valid, but nothing these fields use
_KEY = re.compile(r"[a-z*][a-z0-9_.*-]*")
_TOKEN = re.compile(r"[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,3})?")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")
_DISPLAY = re.compile(r'%"[^"]*"')
Params = dict[str, object]
Member = tuple[object, Params]


class _Reader:
    """A cursor over one field value."""

    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def peek(self) -> str:
        return self.text[self.at : self.at + 1]

    def skip(self, chars: str = " \t") -> None:
        while self.peek() and self.peek() in chars:
            self.at += 1

    def match(self, pattern: re.Pattern[str]) -> re.Match[str]:
        found = pattern.match(self.text, self.at)
        if found is None:
            raise _Malformed(self.text)
        self.at = found.end()
        return found

    def string(self) -> str:
        out, self.at = [], self.at + 1
        while (char := self.peek()) != '"':
            if not char or not (" " <= char <= "~"):
                raise _Malformed(self.text)
            if char == "\\":
                self.at += 1
                char = self.peek()
                if char not in ('"', "\\"):
                    raise _Malformed(self.text)
            out.append(char)
            self.at += 1
        self.at += 1
        return "".join(out)

    def bare(self) -> object:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "-" or "0" <= char <= "9":
            number = self.match(_NUMBER)[0]
            return float(number) if "." in number else int(number)
        if char == ":":
            return self.match(_BYTES)[1].encode()
        if char == "?":
            return self.match(re.compile(r"\?[01]"))[0] == "?1"
        if char == "@":
            self.at += 1
            self.match(_NUMBER)
            return _OTHER
        if char == "%":
            self.match(_DISPLAY)
            return _OTHER
        return self.match(_TOKEN)[0]

    def params(self) -> Params:
        out: Params = {}
        while True:
            self.skip()  # lenient: RFC 9651 allows no space before ";"
            if self.peek() != ";":
                return out
            self.at += 1
            self.skip(" ")
            key = self.match(_KEY)[0]
            if self.peek() == "=":
                self.at += 1
                out[key] = self.bare()
            else:
                out[key] = True

    def member(self) -> Member:
        if self.peek() != "(":
            return self.bare(), self.params()
        self.at += 1  # an inner list: parsed, of no use here
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.at += 1
                return _OTHER, self.params()
            if not self.peek():
                raise _Malformed(self.text)
            self.bare()
            self.params()

    def members(self, keyed: bool) -> list[tuple[str, Member]]:
        """A List (``keyed`` False: every key is "") or a Dictionary, to the end of the text."""
        out: list[tuple[str, Member]] = []
        self.skip()
        while self.peek():
            key = self.match(_KEY)[0] if keyed else ""
            if keyed and self.peek() != "=":
                out.append((key, (True, self.params())))
            else:
                self.at += int(keyed)
                out.append((key, self.member()))
            self.skip()
            if not self.peek():
                break
            if self.peek() != ",":
                raise _Malformed(self.text)
            self.at += 1
            self.skip()
            if not self.peek():
                raise _Malformed(self.text)  # a trailing comma
        return out


def parse_list(text: str) -> list[Member] | None:
    """An RFC 9651 List, or None when malformed."""
    try:
        return [member for _, member in _Reader(text).members(keyed=False)]
    except (_Malformed, ValueError, IndexError):
        return None


def parse_dictionary(text: str) -> dict[str, Member] | None:
    """An RFC 9651 Dictionary (the last of a repeated key wins), or None when malformed."""
    try:
        return dict(_Reader(text).members(keyed=True))
    except (_Malformed, ValueError, IndexError):
        return None


# --- What the fields state -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Policy:
    name: str | None  # None: an old draft's bare quota
    metric: str | None  # None: a unit llamux cannot count (content-bytes, ...)
    quota: int
    seconds: int | None


def _count(value: object) -> int | None:
    """A non-negative Integer (a Decimal, from a lenient server, rounded down), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return math.floor(value) if value >= 0 else None


def _metric(unit: object) -> str | None:
    if unit is None or unit == "requests":
        return "requests"
    return "tokens" if isinstance(unit, str) and unit.endswith("tokens") else None


def _policies(text: str | None) -> list[_Policy]:
    out = []
    for bare, params in parse_list(text or "") or []:
        name = bare if isinstance(bare, str) else None
        quota = _count(params.get("q")) if name is not None else _count(bare)
        if quota is not None:
            seconds = _count(params.get("w")) or None
            out.append(_Policy(name, _metric(params.get("qu")), quota, seconds))
    return out


def _stated(policy: _Policy | None, remaining: int | None, reset: str | None) -> Quota:
    """A policy's quota with its service limit (either may be missing)."""
    metric = "requests" if policy is None or policy.metric is None else policy.metric
    mapped = None
    if policy is not None and policy.seconds is not None:
        mapped = conservative_window(policy.seconds, policy.quota)
    if mapped is None:
        return Quota(metric, None, None, remaining, reset)
    window, limit = mapped
    capped = None if remaining is None else min(remaining, limit)
    return Quota(metric, window, limit, capped, reset)


def _current(headers: Mapping[str, str], policies: list[_Policy]) -> list[Quota]:
    """The current draft: ``RateLimit`` service limits matched to policies by name."""
    named = {p.name: p for p in reversed(policies) if p.name is not None}
    found, seen = [], set()
    for bare, params in parse_list(headers.get("ratelimit", "")) or []:
        remaining, reset = _count(params.get("r")), _count(params.get("t"))
        policy = named.get(bare) if isinstance(bare, str) else None
        if not isinstance(bare, str) or remaining is None:
            continue
        seen.add(bare)
        if policy is None or policy.metric is not None:  # no policy: the unit is requests
            found.append(_stated(policy, remaining, None if reset is None else str(reset)))
    alone = [p for p in policies if p.name is not None and p.name not in seen and p.metric]
    return found + [_stated(p, None, None) for p in alone]


def _item(text: str | None) -> object:
    members = parse_list(text or "")
    return members[0][0] if members else None


def _trio(headers: Mapping[str, str]) -> tuple[int | None, int | None, str | None]:
    """Older drafts' expiring limit: separate fields (-06) or one Dictionary (-07)."""
    limit = _count(_item(headers.get("ratelimit-limit")))
    remaining = _count(_item(headers.get("ratelimit-remaining")))
    reset = headers.get("ratelimit-reset")
    if (limit, remaining, reset) == (None, None, None) and "ratelimit" in headers:
        fields = parse_dictionary(headers["ratelimit"]) or {}
        limit, remaining, seconds = (
            _count(fields.get(name, (None, {}))[0]) for name in ("limit", "remaining", "reset")
        )
        reset = None if seconds is None else str(seconds)
    return limit, remaining, reset


def _old(headers: Mapping[str, str], policies: list[_Policy]) -> list[Quota]:
    """Older drafts: bare quotas, and the trio of the one closest to its limit (its window
    is the one of the policy whose quota equals its limit, bare quotas first)."""
    bare = [p for p in policies if p.name is None and p.metric is not None]
    limit, remaining, reset = _trio(headers)
    usable = bare + [p for p in policies if p.name is not None and p.metric is not None]
    match = next((p for p in usable if p.quota == limit), None) if limit is not None else None
    found = [_stated(p, None, None) for p in bare if p is not match]
    if (limit, remaining, reset) != (None, None, None):
        found.append(_stated(match, remaining, reset))
    return found


def standard_quotas(headers: Mapping[str, str]) -> tuple[Quota, ...]:
    """Every limit the IETF RateLimit fields state in ``headers`` (names lower-cased).

    A quota that states nothing (no limit, remaining or reset) is left out.
    """
    if not any(name in headers for name in FIELD_NAMES):
        return ()  # the common case, kept cheap: parse_headers runs on every answer
    try:
        policies = _policies(headers.get("ratelimit-policy"))
        found = _current(headers, policies) + _old(headers, policies)
    except Exception:  # provider input never breaks a call; the parsers above should not raise
        return ()
    return tuple(q for q in found if (q.limit, q.remaining, q.reset) != (None, None, None))
