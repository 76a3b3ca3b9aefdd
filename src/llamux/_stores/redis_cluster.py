"""The Redis store on a Redis Cluster: ``redis+cluster://[user:password@]host:port[,...]``.

The same keys and the same Lua scripts as ``redis.py``: every key of one step shares one
hash tag (the endpoint's pool, else its own quota), so each script runs on the one master
that serves that slot, and the few untagged keys (``P:scopes``, ``P:quotas``, ``P:lost``)
are each read or written alone. redis-py's ``RedisCluster`` routes each step: ``EVALSHA`` to
its slot's master, ``SCRIPT LOAD`` to every master, ``SCAN`` (``reset``, the usage status
warns of) to every master, pipelines split by node. The clock is the ``TIME`` of the master
serving the slot of ``P:clock``, the same node for every process (another master's while
that one is down).
"""

from __future__ import annotations

from typing import Any

from .redis import RedisStore
from .redis_connect import open_cluster


class RedisClusterStore(RedisStore):
    """Quota state on a Redis Cluster, shared by every process and machine that opens it.

    ``url`` is ``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster``
    for TLS), any one node being enough to find the others; database 0 only. Everything
    else is as :class:`RedisStore`: a step of a node that is down, or of slots no master
    serves, raises ``StoreError`` saying which (never an admission that was not counted);
    a decision passes over an endpoint whose node failed and tries the next, and raises only
    when every candidate's node failed.
    """

    per_slot = True

    def _open(self, url: str) -> Any:
        return open_cluster(self._redis, url)

    def _connected(self) -> None:
        """Nothing to check: the client refused to start unless every slot is served."""

    def _server_time(self) -> Any:
        node = self._client.get_node_from_key(f"{self.namespace}:clock")
        try:
            return self._client.time(target_nodes=node)
        except self._errors:  # that master is down: another one's clock (NTP keeps them close)
            return self._client.time()


__all__ = ["RedisClusterStore"]
