"""Settles a process holds for its next step on the state file.

On SQLite the cost of a step inside a call is mostly that of entering a write transaction
with cold caches (a reservation or a settle alone, ~45 µs after an HTTP call; both in one
transaction, ~55 µs). So a settle that only gives quota back is not written at once: it is
held, and the process's next step (the next reservation, most often) writes it first, in
its own transaction, before it decides. A call then costs one transaction instead of two.

What holding may change, and why it is safe:

* only a settle that gives back (real tokens and price at most the estimate's, no
  concurrency lease, no speed samples due) is held: until it is written the estimate stays
  counted, in flight, in every window, as if the answer were still coming. No other process
  can ever count less than what was used;
* this process reads its own usage after the held settles are written (reads of usage
  write them first);
* a flusher thread writes what is still held ``HOLD_SECONDS`` after it was held, so an idle
  process leaves nothing held for long, and ``close`` and the interpreter's exit write the
  rest. A process killed in between loses only the corrections: its estimates stay
  counted, as for a call it was killed in.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable

from .._policy.quota import Charge
from .sqlite_connections import FORKS

log = logging.getLogger("llamux")

HOLD_SECONDS = 0.02
"""How long a settle may wait for the process's next step before the flusher writes it."""
IDLE_SECONDS = 1.0
"""A flusher thread with nothing held for this long ends (the next held settle starts one)."""
RETRY_SECONDS = 1.0
"""How long the flusher waits after a write that failed (the file locked or unwritable)."""
HELD_MOST = 4096
"""Settles held at most: past it a settle is written at once."""

Item = tuple[tuple[int, list[Charge], str, int], int, float, int | None]
"""A held settle: the reservation's record (``sqlite_rows.Held``), its real tokens, the
moment of its outcome, its real price (None: the estimate's)."""


class Later:
    """The settles held by one store in this process (thread-safe); ``flush`` writes them
    (a store step) and is called by the flusher thread, at ``close`` and at exit."""

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = weakref.WeakMethod(flush)
        self._lock = threading.Lock()
        self.items: list[Item] = []
        self._since = 0.0
        """When the oldest held settle was held (``time.monotonic``)."""
        self._last = 0.0
        """When the last settle was held (or the flusher woken)."""
        self._woken: float | None = None
        """When ``wake`` asked for the next step, if none came since."""
        self._thread: threading.Thread | None = None
        self._forks = FORKS[0]
        self.closed = False
        self.failing = False
        """Whether the flusher's last write failed (it said so once, and tries again)."""
        _LIVE.add(self)

    def hold(self, item: Item) -> bool:
        """Hold ``item`` for the next step; False (nothing held) if it must be written now."""
        with self._lock:
            if self.closed or len(self.items) >= HELD_MOST:
                return False
            self._forked()
            now = time.monotonic()
            if not self.items:
                self._since = now
            self.items.append(item)
            start = self._started(now)
        if start is not None:
            start.start()
            _exit_hook()
        return True

    def wake(self) -> None:
        """Something besides settles waits for the next step (requests reserved ahead,
        ``sqlite_ahead``): the flusher runs one ``HOLD_SECONDS`` from now if no step comes."""
        with self._lock:
            if self.closed:
                return
            self._forked()
            now = time.monotonic()
            if self._woken is None:
                self._woken = now
            start = self._started(now)
        if start is not None:
            start.start()
            _exit_hook()

    def _started(self, now: float) -> threading.Thread | None:
        """(With the lock.) Note activity at ``now``; the flusher thread to start, if none runs."""
        self._last = now
        if self._thread is not None:
            return None
        self._thread = threading.Thread(
            target=_flusher, args=(weakref.ref(self),), name="llamux-settles", daemon=True
        )
        return self._thread

    def take(self) -> list[Item]:
        """Every held settle, to write in the step that takes them (``give_back`` if the step
        fails)."""
        self._woken = None  # the step does what the flusher was woken for
        if not self.items:  # the common case in a step that holds nothing
            return []
        with self._lock:
            items, self.items = self.items, []
            if self._forked():
                return []
        return items

    def give_back(self, items: list[Item]) -> None:
        """A step that took ``items`` failed: hold them again, first."""
        with self._lock:
            if not self._forked():
                self.items[:0] = items
                self._since = time.monotonic()

    def _forked(self) -> bool:
        """In a fork's child, what the parent held is the parent's to write: drop it."""
        if self._forks == FORKS[0]:
            return False
        self._forks = FORKS[0]
        self.items = []
        self._woken = None
        self._thread = None
        return True

    def due(self) -> float | None:
        """Seconds until the oldest held settle is due; None if nothing is held and the
        flusher may end (it has been idle ``IDLE_SECONDS``)."""
        with self._lock:
            now = time.monotonic()
            waiting = [self._since] if self.items else []
            if self._woken is not None:
                waiting.append(self._woken)
            if waiting:
                return max(0.0, min(waiting) + HOLD_SECONDS - now)
            if now - self._last >= IDLE_SECONDS or self.closed:
                self._thread = None
                return None
            return HOLD_SECONDS

    def flush(self) -> None:
        """Write what is held now (the store's step), if the store still exists."""
        flush = self._flush()
        woken, self._woken = self._woken, None
        if flush is None:  # the store is gone, and its connections with it
            self.items = []
        elif self.items or woken is not None:
            flush()


def _flusher(ref: weakref.ref[Later]) -> None:
    """The flusher thread of one ``Later``: it holds no reference to it while it sleeps."""
    while True:
        later = ref()
        if later is None:
            return
        wait = later.due()
        if wait is None:
            return
        if wait == 0.0:
            try:
                later.flush()
                later.failing = False
            except Exception as exc:  # kept (given back by the step): tried again later
                if not later.failing:  # said once, not every try
                    log.warning("llamux: held settles could not be written yet (%s)", exc)
                later.failing = True
                wait = RETRY_SECONDS
        del later
        if wait:
            time.sleep(wait)


_LIVE: weakref.WeakSet[Later] = weakref.WeakSet()
_HOOKED = [False]


def _exit_hook() -> None:
    """Register ``_at_exit`` once, when a first settle is held: after the finalizers that
    close connections registered theirs, so that it runs before them (last in, first out)."""
    if not _HOOKED[0]:
        _HOOKED[0] = True
        atexit.register(_at_exit)


def _at_exit() -> None:
    """Write every store's held settles before the interpreter ends."""
    for later in list(_LIVE):
        try:
            later.flush()
        except Exception as exc:
            log.warning("llamux: held settles could not be written at exit (%s)", exc)
