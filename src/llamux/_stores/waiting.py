"""Store steps on an event loop: done at once when nothing holds the store, else moved off.

A store whose steps can wait (for another process's transaction) offers ``nowait()``: within
it, on this thread, a step that would have to wait raises :class:`WouldBlock` before it
changes anything, and the async router runs the work in a worker thread instead. Most steps
find the store free and cost no thread hop.
"""

from __future__ import annotations


class WouldBlock(Exception):
    """A store step would have waited for the store; nothing of it was done."""
