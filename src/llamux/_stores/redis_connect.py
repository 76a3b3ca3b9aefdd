"""The Redis store's connection side: its URLs (checked before connecting, shown with the
password masked), opening a client (one server, or a Redis Cluster found from any of its
nodes), and redis-py's errors as ``StoreError`` saying what happened and what to do."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .._errors import StoreError

CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 10.0

URL_PARAMETERS = (
    "namespace",
    "db",
    "username",
    "password",
    "client_name",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "retry_on_timeout",
    "health_check_interval",
    "max_connections",
    "protocol",
)
"""The query parameters a Redis URL may carry: llamux's ``namespace`` and what redis-py
reads (``unix://`` URLs all but ``socket_keepalive``)."""
TLS_PARAMETERS = (
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)
"""The parameters a ``rediss://`` (TLS) URL may carry besides."""
CERT_REQS = ("none", "optional", "required")
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""A Redis Cluster's URL schemes, and the scheme each of its nodes is reached by."""
FORMS = (
    "redis://[user:password@]host:port/db, rediss://... (TLS), unix:///path/to/socket?db=0 "
    "or redis+cluster://[user:password@]host:port[,host:port...] (rediss+cluster:// for TLS)"
)
CLUSTER_HINT = (
    "it is a Redis Cluster node: open the cluster with redis+cluster://host:port (any node "
    "finds the rest; database 0 only)"
)


def check_url(url: str) -> None:
    """Raise ``StoreError`` (one line, password masked) if ``url`` is not a Redis URL llamux
    can open: its scheme, hosts and ports, database number and every query parameter, which
    must be one of ``URL_PARAMETERS`` (and ``TLS_PARAMETERS`` for TLS)."""
    shown = masked(url)
    where = f"the Redis URL {shown}"
    scheme = url.partition("://")[0].lower()
    try:
        if scheme in CLUSTER_SCHEMES:
            cluster_nodes(url)
            db = _authority_and_path(url)[1]
        else:
            parts = urlsplit(url)
            port, db = parts.port, parts.path.lstrip("/")
            if scheme in ("redis", "rediss") and port == 0:
                raise StoreError(f"{where} has port 0; give the port Redis listens on (6379)")
    except ValueError as exc:
        raise StoreError(f"{where} is malformed ({exc}); write {FORMS}") from None
    if scheme != "unix" and db and not db.isdigit():
        raise StoreError(
            f"{where} names database {db!r}; the path is a database number (redis://host:6379/0)"
        )
    tls = scheme in ("rediss", "rediss+cluster")
    accepted = URL_PARAMETERS + (TLS_PARAMETERS if tls else ())
    if scheme == "unix":
        accepted = tuple(name for name in accepted if name != "socket_keepalive")
    query = url.partition("?")[2]
    for name, value in parse_qsl(query, keep_blank_values=True):
        _check_parameter(where, name, value, accepted, cluster=scheme in CLUSTER_SCHEMES)
    if scheme in CLUSTER_SCHEMES and (db or "0") != "0":
        raise StoreError(f"{where} names database {db}; a Redis Cluster has database 0 only")


def _check_parameter(
    where: str, name: str, value: str, accepted: Sequence[str], *, cluster: bool
) -> None:
    if name == "cluster" and not cluster:
        raise StoreError(
            f"{where} has {name!r}: a Redis Cluster is opened by its scheme, write "
            "redis+cluster://host:port[,host:port...]"
        )
    if name in TLS_PARAMETERS and name not in accepted:
        raise StoreError(
            f"{where} has {name!r}, which only a TLS URL takes: write rediss:// (or "
            "rediss+cluster://), or drop the parameter"
        )
    if name not in accepted:
        raise StoreError(
            f"{where} has an unknown parameter {name!r}; the accepted ones are "
            f"{', '.join(accepted)}"
        )
    if name == "ssl_cert_reqs" and value.lower() not in CERT_REQS:
        raise StoreError(f"{where}: ssl_cert_reqs is {value!r}; use one of {', '.join(CERT_REQS)}")
    if name == "db" and cluster and value != "0":
        raise StoreError(f"{where} names database {value}; a Redis Cluster has database 0 only")


def _authority_and_path(url: str) -> tuple[str, str]:
    """The authority (``user:password@host:port,host:port``) and database of a cluster URL."""
    rest = url.partition("://")[2].partition("?")[0]
    authority, _, path = rest.partition("/")
    return authority, path.strip("/")


def cluster_nodes(url: str) -> tuple[str, list[tuple[str, int]]]:
    """For a ``redis+cluster://`` URL: the URL of its first node (scheme, credentials,
    database and parameters kept) and every node it names as (host, port); ValueError
    if a node is malformed."""
    scheme, _, _ = url.partition("://")
    authority, _ = _authority_and_path(url)
    userinfo, at, hosts = authority.rpartition("@")
    nodes = []
    for item in hosts.split(","):
        if not item.strip():
            raise ValueError("a node is empty: list them as host:port,host:port")
        parts = urlsplit("//" + item.strip())
        if not parts.hostname:
            raise ValueError(f"node {item!r} has no host")
        nodes.append((parts.hostname, parts.port or 6379))
    first = hosts.split(",")[0].strip()
    query = url.partition("?")[2]
    node_url = f"{CLUSTER_SCHEMES[scheme.lower()]}://{userinfo}{at}{first}/0"
    return node_url + (f"?{query}" if query else ""), nodes


def masked(url: str) -> str:
    """``url`` with its password hidden, even when it is too malformed to parse."""
    try:
        return mask_url(url)
    except ValueError:
        base, sep, query = url.partition("?")
        base = re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", base)
        return base + sep + re.sub(r"(?i)((?:^|&)password=)[^&]*", r"\1***", query)


def mask_url(url: str) -> str:
    """``url`` with any password (in the authority or a ``password=`` parameter) as ``***``."""
    base, sep, query = url.partition("?")
    parts = urlsplit(base)
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        base = base.replace(parts.netloc, f"{user.partition(':')[0]}:***@{host}", 1)
    return base + sep + re.sub(r"(?i)((?:^|&)password=)[^&]*", r"\1***", query)


def secrets_of(url: str) -> list[str]:
    """The passwords ``url`` holds (to mask in what a server says)."""
    found = [urlsplit(url.partition("?")[0]).password, *re.findall(r"(?i)password=([^&]+)", url)]
    return [secret for secret in found if secret] + [unquote(s) for s in found if s]


def split_namespace(url: str) -> tuple[str, str | None]:
    """``url`` without its ``namespace=`` query parameter, and that parameter."""
    base, _, query = url.partition("?")
    pairs = [pair for pair in query.split("&") if pair]
    names = [unquote(p.partition("=")[2]) for p in pairs if p.startswith("namespace=")]
    rest = [pair for pair in pairs if not pair.startswith("namespace=")]
    return base + ("?" + "&".join(rest) if rest else ""), names[-1] if names else None


def open_client(redis: Any, url: str) -> Any:
    """A client of the one server at ``url`` (checked), with llamux's timeouts and one retry."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1),
    )


def open_cluster(redis: Any, url: str) -> Any:
    """A ``RedisCluster`` client of the cluster that the nodes of ``url`` (checked) belong
    to: any one that answers is enough to find the others. On a lost node it refreshes its
    map of the slots and retries once, then raises (no long retry loop)."""
    from redis.cluster import ClusterNode, RedisCluster

    node_url, nodes = cluster_nodes(url)
    return RedisCluster.from_url(
        node_url,
        startup_nodes=[ClusterNode(host, port) for host, port in nodes[1:]],  # type: ignore[no-untyped-call]
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1),
    )


def refuse_cluster_node(redis: Any, client: Any, url: str) -> None:
    """Raise ``StoreError`` if the server of a ``redis://`` URL is a Redis Cluster node (its
    keys would be refused with MOVED for every slot it does not serve)."""
    try:
        enabled = client.info("cluster").get("cluster_enabled")
    except redis.exceptions.ResponseError:  # INFO renamed or refused: MOVED will tell
        return
    if enabled in (1, "1"):
        raise StoreError(f"the Redis store {url}: {CLUSTER_HINT}")


def store_error(redis: Any, url: str, secrets: Sequence[str], exc: BaseException) -> StoreError:
    """The ``StoreError`` for a Redis failure at ``url`` (masked), ``secrets`` masked in the
    server's text too: what happened and what to do."""
    errors = redis.exceptions
    text = str(exc)
    for secret in secrets:
        text = text.replace(secret, "***")
    where = f"the Redis store {url}"
    cluster = "+cluster://" in url
    special = _cluster_error(errors, where, text, exc)
    if special is not None:
        return special
    if isinstance(exc, errors.BusyLoadingError):
        return StoreError(f"{where} is still loading its data ({text}); retry in a moment")
    if isinstance(exc, errors.AuthenticationError | errors.AuthorizationError) or any(
        word in text for word in ("NOAUTH", "WRONGPASS", "AUTH", "NOPERM")
    ):
        return StoreError(
            f"{where} refused the credentials ({text}); fix the user and password in "
            "the URL (LLAMUX_STORE or store=)"
        )
    if isinstance(exc, errors.ConnectionError | errors.TimeoutError) and cluster:
        return StoreError(
            f"{where}: a node is unreachable ({text}); start it again, or let a replica take "
            "over its slots (redis-cli --cluster check HOST:PORT shows which)"
        )
    if isinstance(exc, errors.ConnectionError | errors.TimeoutError):
        return StoreError(
            f"{where} is unreachable ({text}); start Redis there, or check the URL "
            "(LLAMUX_STORE or store=)"
        )
    return StoreError(f"{where} failed: {text}; check the server's logs and settings")


def _cluster_error(errors: Any, where: str, text: str, exc: BaseException) -> StoreError | None:
    """The error for what only a Redis Cluster answers (or a cluster client raises)."""
    check = "check it with redis-cli --cluster check HOST:PORT"
    if isinstance(exc, errors.ClusterDownError):
        return StoreError(
            f"{where} is down (CLUSTERDOWN: {text}): a master is failing and no replica has "
            "taken over its slots yet; llamux admits nothing it cannot count, so requests "
            f"fail until the cluster is whole again; {check}"
        )
    if isinstance(exc, errors.SlotNotCoveredError):
        return StoreError(f"{where} has slots no node serves ({text}); {check}")
    if isinstance(exc, errors.TryAgainError):
        return StoreError(f"{where} is moving slots between nodes (TRYAGAIN); retry in a moment")
    if isinstance(exc, errors.AskError):  # MOVED or ASK: only a plain client sees it
        kind = "MOVED" if isinstance(exc, errors.MovedError) else "ASK"
        return StoreError(f"{where} answered {kind} {text}: {CLUSTER_HINT}")
    if "SELECT is not allowed in cluster mode" in text:
        return StoreError(f"{where} refused SELECT: {CLUSTER_HINT}")
    if isinstance(exc, errors.ClusterError) and "TTL exhausted" in text:
        return StoreError(
            f"{where} kept redirecting a step (MOVED/ASK, again and again): slots are being "
            f"moved or the cluster's map is inconsistent; {check}"
        )
    if isinstance(exc, errors.ClusterCrossSlotError):
        return StoreError(f"{where} refused keys of several slots in one step (a llamux bug)")
    if isinstance(exc, errors.RedisClusterException):
        if "Cluster mode is not enabled" in text:
            return StoreError(
                f"{where} is not a Redis Cluster (cluster mode is off): open it with redis://"
            )
        if "cannot be connected" in text or "reachable" in text:
            return StoreError(
                f"{where}: none of its nodes answered as a cluster ({text}); start the "
                "cluster, or check the URL (LLAMUX_STORE or store=)"
            )
        return StoreError(f"{where} failed: {text}; {check}")
    return None
