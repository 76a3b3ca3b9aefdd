"""What a 429 says: which window ran out and when to come back (``classify_429``), and every
limit it states (``stated_limits``), from its headers and wherever its body nests them
(providers.md sections 2, 4 and 5). Pure, ``now`` as an argument; never raises on provider
input.

The limits a 429 body states, with the providers' own wording:

- OpenAI and Groq: "... on tokens per day (TPD): Limit 200000, Used 197204, Requested 3000.
  Please try again in 5m12s." (also "requests per minute (RPM)", OpenAI's "per min", and the
  older "on requests per min. Limit: 3 / min. Current: 2 / min."); "Request too large ...
  on tokens per minute (TPM): Limit 6000, Requested 9000" states the limit alone;
- SambaNova: "Request would exceed rate limit. Violated duration_s: 86400, current usage: 20,
  limit: 20" (the window mapped from ``duration_s`` as ``ietf_fields.conservative_window``
  maps a standard window; requests unless the sentence says tokens);
- Gemini: ``QuotaFailure.violations[]`` with ``quotaId`` (``GenerateRequestsPerDayPer...``,
  ``GenerateContentInputTokensPerModelPerMinute-FreeTier``) and ``quotaValue`` ("20");
- Anthropic: "This request would exceed the rate limit for your organization (<id>) of 50,000
  input tokens per minute" (input and output token limits read as tokens, as the headers).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from .ietf_fields import conservative_window
from .ratelimits import (
    WINDOWS,
    Hint,
    as_number,
    count,
    dialect_hints,
    dialect_of,
    lowered,
    parse_reset,
    retry_after,
    standard_hints,
    within_reach,
)


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A 429, classified."""

    window: str | None  # "minute" | "hour" | "day" | "month" | None when nothing tells
    retry_at: float | None  # epoch seconds when the provider says to come back, if it says
    reason: str  # short human text, e.g. "Groq requests per day exhausted"


@dataclass(frozen=True, slots=True)
class _Evidence:
    """What a 429 says, in its headers and wherever it is nested in its body."""

    dialect: str
    headers: dict[str, str]  # the real headers over the body's copy (OpenRouter)
    own: tuple[Hint, ...]  # what the dialect's headers state
    standard: tuple[Hint, ...]  # what the IETF RateLimit fields state
    text: str  # every string value of the body, lower-cased
    quotas: tuple[tuple[str, object], ...]  # Gemini violations[]: (quotaId, quotaValue)
    delays: tuple[object, ...]  # Gemini RetryInfo.retryDelay

    @property
    def hints(self) -> tuple[Hint, ...]:
        return self.own + self.standard

    @property
    def quota_ids(self) -> tuple[str, ...]:
        return tuple(quota_id for quota_id, _ in self.quotas)


def _decode(body: object) -> object:
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            return body
    return body


def _walk(node: object, depth: int = 0) -> Iterator[object]:
    yield node
    if depth < 16 and isinstance(node, dict | list):
        for child in node.values() if isinstance(node, dict) else node:
            yield from _walk(child, depth + 1)


_Body = tuple[str, tuple[tuple[str, object], ...], tuple[object, ...], dict[str, str]]


def _read_body(body: object) -> _Body:
    """The body's text, Gemini quotas, retry delays and ``error.metadata.headers``."""
    texts: list[str] = []
    quotas: list[tuple[str, object]] = []
    delays: list[object] = []
    headers: dict[str, str] = {}
    for node in itertools.islice(_walk(_decode(body)), 10_000):
        if isinstance(node, str):
            texts.append(node.lower())
        elif isinstance(node, dict):
            if isinstance(quota := node.get("quotaId"), str):
                quotas.append((quota, node.get("quotaValue")))
            if "retryDelay" in node:
                delays.append(node["retryDelay"])
            metadata = node.get("metadata")
            if isinstance(metadata, dict):
                headers.update(lowered(metadata.get("headers")))
    return "\n".join(texts), tuple(quotas), tuple(delays), headers


def _evidence(dialect: str, headers: Mapping[str, str], body: object, now: float) -> _Evidence:
    key = dialect_of(dialect)
    text, quotas, delays, copied = _read_body(body)
    merged = {**copied, **lowered(headers)}
    own, standard = dialect_hints(key, merged, now), standard_hints(merged, now)
    return _Evidence(key, merged, own, standard, text, quotas, delays)


# --- Classifying a 429 --------------------------------------------------------------------

_QUOTA_ID_WINDOWS = (("PerMinute", "minute"), ("PerHour", "hour"), ("PerDay", "day"))
_OPENROUTER_NAME = re.compile(r"free-models-per-(min|hour|day)")
_DURATION_S = re.compile(r"duration_s:\s*(\d+(?:\.\d+)?)")
_DURATION_TOPS = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))
_LIMIT_TYPES = (("byminute", "minute"), ("byhour", "hour"), ("byday", "day"), ("bymonth", "month"))
_MESSAGE_CUES = (  # longest window first: a day cap beats a minute cap
    ("month", ("per month",)),
    ("day", ("per day", "(rpd)", "(tpd)")),
    ("hour", ("per hour", "(rph)", "(tph)")),
    ("minute", ("per minute", "(rpm)", "(tpm)")),
)
_TRY_AGAIN = re.compile(r"(?:try again|retry) in ([0-9.]+[0-9.hmsunµ]*)")
_PER = r"s? per (?:min|hour|day|month)"
_METRIC_CUES = (
    (re.compile(rf"\btoken{_PER}|\(tp[mhd]\)"), "tokens"),
    (re.compile(rf"\brequest{_PER}|\(rp[mhd]\)|free-models-per-"), "requests"),
)
_NAMES = {"openai": "OpenAI", "openrouter": "OpenRouter", "sambanova": "SambaNova"}
_ADJECTIVES = {"minute": "per-minute", "hour": "hourly", "day": "daily", "month": "monthly"}


def _longest(windows: list[str]) -> str | None:
    ranks = [WINDOWS.index(w) for w in windows if w in WINDOWS]
    return WINDOWS[max(ranks)] if ranks else None


def _by_quota_id(ev: _Evidence) -> str | None:
    found = [w for q in ev.quota_ids for cue, w in _QUOTA_ID_WINDOWS if cue in q]
    return _longest(found)


def _by_openrouter_name(ev: _Evidence) -> str | None:
    found = _OPENROUTER_NAME.search(ev.text)
    return None if found is None else {"min": "minute"}.get(found[1], found[1])


def _by_duration_s(ev: _Evidence) -> str | None:
    found = _DURATION_S.search(ev.text)
    if found is None:
        return None
    seconds = float(found[1])
    return next((w for w, top in _DURATION_TOPS if seconds <= top), "month")


def _by_limit_type(ev: _Evidence) -> str | None:
    kind = ev.headers.get("x-ratelimit-type", "").lower()
    return next((w for cue, w in _LIMIT_TYPES if cue in kind), None)


def _by_groq_requests(ev: _Evidence) -> str | None:
    out = count(ev.headers.get("x-ratelimit-remaining-requests")) == 0
    return "day" if ev.dialect == "groq" and out else None


def _by_message(ev: _Evidence) -> str | None:
    return next((w for w, cues in _MESSAGE_CUES if any(c in ev.text for c in cues)), None)


def _by_exhausted_hint(ev: _Evidence) -> str | None:
    return _longest([h.window for h in ev.hints if h.remaining == 0])


_WINDOW_RULES = (
    _by_quota_id,
    _by_openrouter_name,
    _by_duration_s,
    _by_limit_type,
    _by_groq_requests,
    _by_message,
    _by_exhausted_hint,
)
"""How a 429 tells its window; the first rule that answers wins."""


def _delay_at(delay: object, now: float) -> float | None:
    """Epoch seconds of a google.protobuf.Duration: ``"37s"`` or ``{"seconds": 37, "nanos": 0}``."""
    if isinstance(delay, dict):
        seconds = as_number(str(delay.get("seconds", 0)))
        nanos = as_number(str(delay.get("nanos", 0)))
        if seconds is None or nanos is None or seconds < 0 or nanos < 0:
            return None
        return within_reach(now + seconds + nanos / 1e9, now)
    return parse_reset(delay, now) if isinstance(delay, str) else None


def _retry_candidates(ev: _Evidence, window: str | None, now: float) -> Iterator[float | None]:
    yield retry_after(ev.headers, now)
    yield from (_delay_at(delay, now) for delay in ev.delays)
    resets = [
        h.reset_at
        for h in ev.hints
        if h.remaining == 0 and h.window == window and h.reset_at is not None
    ]
    yield max(resets, default=None)
    yield parse_reset(ev.headers.get("x-ratelimit-reset", ""), now)
    for found in _TRY_AGAIN.finditer(ev.text):
        yield parse_reset(found[1].rstrip("."), now)


def _metric(ev: _Evidence, window: str | None) -> str | None:
    for quota_id in map(str.lower, ev.quota_ids):
        for metric in ("tokens", "requests"):
            if metric in quota_id:
                return metric
    cued = next((m for cue, m in _METRIC_CUES if cue.search(ev.text)), None)
    if cued is not None:
        return cued
    return next((h.metric for h in ev.hints if h.remaining == 0 and h.window == window), None)


def _reason(dialect: object, window: str | None, metric: str | None) -> str:
    key = str(dialect).strip()
    who = _NAMES.get(key.lower()) or key[:40].capitalize() or "Provider"
    if window is None:
        return f"{who} rate limit hit; no window stated"
    if metric is None:
        return f"{who} {_ADJECTIVES[window]} limit exhausted"
    return f"{who} {metric} per {window} exhausted"


def _window(ev: _Evidence) -> str | None:
    return next((w for rule in _WINDOW_RULES if (w := rule(ev)) is not None), None)


def _relabeled(ev: _Evidence, window: str | None) -> _Evidence:
    """OpenRouter's headers name no window: the one the 429 names is theirs."""
    if ev.dialect != "openrouter" or window is None:
        return ev
    return replace(ev, own=tuple(dict.fromkeys(replace(h, window=window) for h in ev.own)))


def classify_429(dialect: str, headers: Mapping[str, str], body: object, now: float) -> RateLimited:
    """What a 429 means: which window ran out and when to come back.

    ``body`` is the provider's JSON error as the openai SDK gives it: a dict (wrapped in
    ``{"error": ...}`` or not), a list of them, a JSON string, or None. Headers copied into
    the body (OpenRouter's ``error.metadata.headers``) count when the real ones lack them.
    """
    ev = _evidence(dialect, headers, body, now)
    window = _window(ev)
    ev = _relabeled(ev, window)
    retry_at = next(
        (t for t in _retry_candidates(ev, window, now) if t is not None and t >= now), None
    )
    return RateLimited(window, retry_at, _reason(dialect, window, _metric(ev, window)))


# --- The limits a 429 states --------------------------------------------------------------

_N = r"([0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,18})"  # 50,000 or 200000
_PERIODS = {"min": "minute", "minute": "minute", "hour": "hour", "day": "day"}
_OPENAI_LIMIT = re.compile(
    rf"on (tokens|requests) per (min|minute|hour|day)\b(?: \([rt]p[mhd]\))?: "
    rf"limit {_N}(?:, used {_N})?"
)
_OPENAI_OLD = re.compile(
    rf"on (tokens|requests) per (min|hour|day)\. limit: {_N} / \w+\.(?: current: {_N} / )?"
)
_SAMBANOVA = re.compile(
    rf"duration_s:\s*([0-9]{{1,9}}(?:\.[0-9]{{1,6}})?)\s*,\s*current usage:\s*{_N}\s*,"
    rf"\s*limit:\s*{_N}"
)
_ANTHROPIC = re.compile(
    rf"rate limit for your organization(?: \([^)]{{0,100}}\))? of {_N} "
    r"((?:input |output )?tokens|requests) per (minute|hour|day)"
)


def _count_text(text: str) -> int:
    """A count as the patterns match it: digits, perhaps grouped by commas."""
    return int(text.replace(",", ""))


def _number(text: str | None) -> int | None:
    return None if text is None else _count_text(text)


def _left(limit: int, used: int | None) -> int | None:
    return None if used is None else max(0, limit - used)


def _line_after(text: str, end: int) -> str:
    stop = text.find("\n", end)
    return text[end : stop if stop >= 0 else len(text)]


def _try_again(text: str, end: int, now: float) -> float | None:
    """When the sentence after ``end`` says to try again, if it does."""
    found = _TRY_AGAIN.search(_line_after(text, end))
    return None if found is None else parse_reset(found[1].rstrip("."), now)


def _openai_limits(text: str, now: float) -> list[Hint]:
    found = []
    for match in itertools.chain(_OPENAI_LIMIT.finditer(text), _OPENAI_OLD.finditer(text)):
        limit, used = _count_text(match[3]), _number(match[4])
        at = _try_again(text, match.end(), now)
        found.append(Hint(match[1], _PERIODS[match[2]], limit, _left(limit, used), at, used))
    return found


def _sambanova_limits(text: str) -> list[Hint]:
    found = []
    for match in _SAMBANOVA.finditer(text):
        used, stated = _count_text(match[2]), _count_text(match[3])
        mapped = conservative_window(float(match[1]), stated)
        if mapped is None:
            continue
        window, limit = mapped
        start = text.rfind("\n", 0, match.start()) + 1
        metric = "tokens" if "token" in text[start : match.end()] else "requests"
        found.append(Hint(metric, window, limit, min(limit, max(0, stated - used)), None, used))
    return found


def _anthropic_limits(text: str) -> list[Hint]:
    found = []
    for match in _ANTHROPIC.finditer(text):
        limit = _count_text(match[1])
        metric = "requests" if match[2] == "requests" else "tokens"
        found.append(Hint(metric, match[3], limit, None, None))
    return found


_QUOTA_VALUE = re.compile(r"[0-9]{1,18}")


def _gemini_limits(ev: _Evidence) -> list[Hint]:
    found = []
    for quota_id, value in ev.quotas:
        text = str(value).strip() if isinstance(value, str | int) else ""
        window = _longest([w for cue, w in _QUOTA_ID_WINDOWS if cue in quota_id])
        lowered_id = quota_id.lower()
        metric = next((m for m in ("tokens", "requests") if m in lowered_id), None)
        if _QUOTA_VALUE.fullmatch(text) and window is not None and metric is not None:
            found.append(Hint(metric, window, int(text), None, None))
    return found


def stated_limits(
    dialect: str, headers: Mapping[str, str], body: object, now: float
) -> tuple[Hint, ...]:
    """Every limit a 429 states: its headers' hints (the dialect's, then the IETF fields', as
    ``parse_headers`` reads them, with the body's copy of OpenRouter's headers and their window
    named by the 429), then the limits its body states (see the module's docstring), without
    repeats. A body hint has ``used`` when the body says it; its ``reset_at`` is the body's
    "try again in" when it says one. Garbage gives nothing.
    """
    ev = _evidence(dialect, headers, body, now)
    ev = _relabeled(ev, _window(ev))
    text = ev.text
    body_hints = [
        *_openai_limits(text, now),
        *_sambanova_limits(text),
        *_anthropic_limits(text),
        *_gemini_limits(ev),
    ]
    return tuple(dict.fromkeys([*ev.hints, *body_hints]))
