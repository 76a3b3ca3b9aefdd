"""The exception hierarchy. Every message says what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine.served import Attempt
    from ._policy.quota import Refusal


MIN_SECRET = 8
"""Secrets shorter than this are not scrubbed: such a "key" (``ollama``, ``x``) guards
nothing, and replacing it would garble every message that happens to contain the word."""
MASK = "***"


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every secret replaced by ``***``: in a string, and in the strings (keys
    and values) of nested mappings, lists and tuples. Other values are returned as they are."""
    hidden = sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)
    return _redact(value, hidden) if hidden else value


def _redact(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, bytes):
        return _redact(value.decode("utf-8", "replace"), secrets).encode()
    if isinstance(value, Mapping):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(v, secrets) for v in value)
    return value


class LlamuxError(Exception):
    """Base class of every error llamux raises on purpose."""


class ConfigError(LlamuxError):
    """A configuration file or value is malformed.

    ``file``, ``line`` and ``column`` locate the problem when it has a place;
    the message always ends with how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        where = ""
        if file is not None:
            where = file if line is None else f"{file}:{line}"
            if column is not None:
                where += f": column {column!r}"
            where += ": "
        super().__init__(where + message)


class InvalidRequest(LlamuxError, ValueError):
    """A request parameter is malformed (``max_tokens`` not a positive whole number, ...)."""


class StoreError(LlamuxError):
    """The quota store cannot be opened, read or written."""


class RequestTooLarge(LlamuxError):
    """The request can never fit any candidate endpoint (context or a token limit)."""

    def __init__(self, message: str, *, tokens: int) -> None:
        self.tokens = tokens
        super().__init__(message)


class NoEndpointAvailable(LlamuxError):
    """No endpoint admits the request now.

    ``retry_after`` is the number of seconds until the first endpoint may admit it
    again (``None`` when none will without a reset), ``refusals`` the reason of each,
    ``attempts`` every endpoint considered for this request (``Attempt``: skipped, refused
    or failed, with the reason). ``detail`` is the message without the library's hint on
    how to wait (``pass wait=``): each surface adds its own knob (the CLI ``--wait N``, the
    proxy ``{"llamux": {"wait": N}}``).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        refusals: Sequence[Refusal] = (),
        attempts: Sequence[Attempt] = (),
        detail: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        self.refusals = tuple(refusals)
        self.attempts = tuple(attempts)
        self.detail = message if detail is None else detail
        super().__init__(message)

    @property
    def providers_failed(self) -> bool:
        """Whether the providers are the cause, not quota: every endpoint that could take
        the request was called and failed (connection refused, timeout, 5xx, 401...), none
        was refused for quota or answered 429."""
        tried = [a for a in self.attempts if a.outcome != "skipped"]
        failed = [a for a in tried if a.outcome == "failed" and a.status != 429]
        return bool(tried) and len(failed) == len(tried)

    @property
    def providers_down(self) -> bool:
        """Whether the providers, not quota, are why nothing served, more broadly than
        ``providers_failed``: every endpoint that could take the request failed just now or
        rests after failing (a connection refused, a timeout, a 5xx, a refused key: not a
        429). The command line's exit code 3 uses this; the proxy's 502, ``providers_failed``."""
        if self.providers_failed:
            return True
        tried = [a for a in self.attempts if a.outcome != "skipped"]
        return bool(tried) and all(_failure(a.outcome, a.reason, a.status) for a in tried)


RESTING = ("cooldown: ", "disabled: ")
"""How the refusal of an endpoint resting after a failure begins (``quota.cooling_refusal``:
the cool-down's kind, then its reason); a 429's rest is quota, not a failure."""


def _failure(outcome: str, reason: str, status: int | None) -> bool:
    if outcome == "failed":
        return status != 429
    kind = next((k for k in RESTING if reason.startswith(k)), None)
    return kind is not None and not reason[len(kind) :].startswith("HTTP 429")


class ProviderError(LlamuxError):
    """A provider call failed.

    ``endpoint`` names the endpoint, ``status`` the HTTP status (``None`` when no answer
    came), ``code`` the provider's error code, ``headers`` the response headers (lower-case
    names) and ``accepted`` whether the provider may have processed (and billed) the call.
    Every string in the message, code, headers and body has ``secrets`` (the API key the
    call was made with) replaced by ``***``: a provider that echoes the key in its error
    answer ("Incorrect API key provided: sk-...") never puts it into an exception.
    """

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: object = None,
        accepted: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        hidden = tuple(secrets)
        self.endpoint = endpoint
        self.status = status
        self.code: str | None = redact(code, hidden)
        self.headers: Mapping[str, str] = redact(dict(headers or {}), hidden)
        self.body = redact(body, hidden)
        self.accepted = accepted
        super().__init__(redact(message, hidden))


class ProviderStatusError(ProviderError):
    """The provider answered with an HTTP error status."""


class ProviderRateLimited(ProviderStatusError):
    """The provider answered 429."""


class ProviderConnectionError(ProviderError):
    """The provider could not be reached (refused, reset, DNS)."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""
