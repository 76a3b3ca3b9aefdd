"""What the Redis store finds by scanning its namespace (``SCAN``; on a Redis Cluster, every
master): the scopes that hold usage, and the keys a ``reset`` deletes. Not atomic, and
rare (``status`` warnings, ``reset``); each key is then read or deleted alone, in one
pipeline (split by node on a cluster)."""

from __future__ import annotations

import json
import re
from typing import Any


def glob(namespace: str, rest: str) -> str:
    """A SCAN pattern for ``rest`` in ``namespace`` (the namespace glob-escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", namespace) + ":" + rest


def counted_scopes(client: Any, namespace: str, since: float) -> set[str]:
    """The scopes with a bucket charged at ``since`` or later."""
    keys = list(client.scan_iter(match=glob(namespace, "{*}:b:*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    found: set[str] = set()
    for key, flat in zip(keys, pipe.execute(), strict=True):
        if any(int(field[1:]) >= since and int(value) > 0 for field, value in flat.items()):
            found.add(key.split("}:b:", 1)[1].split(":", 1)[1])
    return found


def reset(client: Any, namespace: str, scope: str | None) -> None:
    """Delete every key of ``namespace``, or those holding ``scope``'s state; the counts of
    writes stay (a reset is no loss of data: ``redis_losses``)."""
    keys = list(client.scan_iter(match=glob(namespace, "*"), count=1000))
    keys = [key for key in keys if not key.endswith("}:w")]
    if scope is not None:
        keys = _keys_of(client, namespace, scope, keys)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    pipe.execute()


def _keys_of(client: Any, namespace: str, scope: str, keys: list[str]) -> list[str]:
    """The keys among ``keys`` that hold ``scope``'s state, whatever their tag."""
    prefix, name = re.escape(namespace), re.escape(scope)
    own = re.compile(rf"{prefix}:\{{.*\}}:(?:b:[^:]+|c|f):{name}|{prefix}:\{{{name}\}}:[pl]")
    reservation = re.compile(rf"{prefix}:\{{.*\}}:r:[0-9a-f]{{32}}")
    found = [key for key in keys if own.fullmatch(key)]
    held = [key for key in keys if reservation.fullmatch(key)]
    if held:
        pipe = client.pipeline(transaction=False)  # one slot each: no MGET
        for key in held:
            pipe.get(key)
        records = pipe.execute()
        found += [
            key
            for key, record in zip(held, records, strict=True)
            if record and json.loads(record).get("e") == scope
        ]
    return found
