"""Where a Redis token cache lives, parsed from its URL: one server, a Sentinel group or a Cluster, over TLS or not.

The forms (``cache`` extra, or built from an Airflow Redis connection by ``hooks/shared_cache.py``)::

    redis://[[user]:password@]host[:port][/db]                    one server (rediss:// for TLS)
    redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/db]
    redis+cluster://[[user]:password@]host:port[,host:port...]   (cluster mode: no db)

and ``rediss+sentinel://``, ``rediss+cluster://`` over TLS. Query parameters, all optional:
``ssl_ca_certs`` (a CA bundle file), ``ssl_certfile`` and ``ssl_keyfile`` (a client certificate and
its key), ``ssl_cert_reqs`` (``required``, the default, or ``none``), ``ssl_check_hostname``
(``true``/``false``), and for Sentinel ``sentinel_auth`` (``true``, the default: the sentinels take
the same user and password as the servers; ``false``: the sentinels have none).

A malformed URL is refused by :func:`parse_redis_url` with a sentence that says what is wrong and never
repeats the password; :meth:`RedisTarget.shown` is the form safe to log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

Topology = Literal["single", "sentinel", "cluster"]

_SCHEMES: dict[str, tuple[Topology, bool]] = {
    "redis": ("single", False),
    "rediss": ("single", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_DEFAULT_PORT = {"single": 6379, "sentinel": 26379, "cluster": 6379}
_TLS_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_PARAMETERS = (*_TLS_PARAMETERS, "sentinel_auth")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
EXAMPLES = (
    "redis://host:6379/0, rediss://host:6380/0, redis+sentinel://host1:26379,host2:26379/mymaster/0 or "
    "redis+cluster://host1:6379,host2:6379 (rediss+... for TLS)"
)


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; the message never holds its password."""


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """A parsed Redis URL (see the module docstring). Its ``repr`` and :meth:`shown` hold no password."""

    topology: Topology
    tls: bool
    nodes: tuple[tuple[str, int], ...]
    master: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls_options: dict[str, Any] = field(default_factory=dict)
    sentinel_auth: bool = True

    def shown(self) -> str:
        """The URL without credentials or query: safe for logs and messages."""
        scheme = next(s for s, (t, tls) in _SCHEMES.items() if t == self.topology and tls == self.tls)
        hosts = ",".join(f"{host}:{port}" for host, port in self.nodes)
        path = "" if self.topology == "cluster" else f"/{self.master}/{self.db}" if self.master else f"/{self.db}"
        return f"{scheme}://{hosts}{path}"

    def __repr__(self) -> str:
        return f"RedisTarget({self.shown()!r})"

    def with_credentials(self, username: str | None, password: str | None) -> RedisTarget:
        """The same target with these credentials (an Airflow connection's login and password)."""
        from dataclasses import replace

        return replace(self, username=username or self.username, password=password or self.password)

    def connect(self, **options: Any) -> Any:
        """The redis-py client for this target: ``redis.Redis`` (one server), the master of a
        ``redis.sentinel.Sentinel`` group (it follows a failover), or ``redis.cluster.RedisCluster``.
        ``options``: socket timeouts and the like, for every connection it makes."""
        import redis

        credentials: dict[str, Any] = {k: v for k, v in (("username", self.username), ("password", self.password)) if v}
        tls: dict[str, Any] = {"ssl": True, **self.tls_options} if self.tls else {}
        if self.topology == "single":
            host, port = self.nodes[0]
            return redis.Redis(host=host, port=port, db=self.db, **credentials, **tls, **options)
        if self.topology == "sentinel":
            from redis.sentinel import Sentinel

            sockets = {k: v for k, v in options.items() if k.startswith("socket_")}
            sentinel_kwargs = {**sockets, **tls, **(credentials if self.sentinel_auth else {})}
            group = Sentinel(list(self.nodes), sentinel_kwargs=sentinel_kwargs, **credentials, **tls, **options)
            assert self.master is not None
            return group.master_for(self.master, db=self.db)
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.nodes], **credentials, **tls, **options
        )


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``url`` (see the module docstring) or raise :class:`RedisUrlError` saying what is wrong."""
    shown = _without_credentials(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise RedisUrlError(f"{shown!r} is not a Redis URL: write {EXAMPLES}")
    topology, tls = _SCHEMES[scheme.lower()]
    # urlsplit takes one host: the credentials (up to the last @), the node list, path and query by hand.
    userinfo, at, after = rest.rpartition("@")
    after, _, query = after.partition("?")
    hostlist, _, path = after.partition("/")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (unquote(user) or None), (unquote(secret) if colon else None)
        if not colon:  # redis://secret@host: redis-py reads it as a password, as Redis' own docs write it
            username, password = None, unquote(user) or None
    nodes = tuple(_node(part, topology, shown) for part in hostlist.split(","))
    if topology == "single" and len(nodes) > 1:
        raise RedisUrlError(
            f"{shown!r} names {len(nodes)} hosts: a redis:// URL names one server; for several write "
            "redis+sentinel://... (a Sentinel group) or redis+cluster://... (cluster mode)"
        )
    segments = [unquote(s) for s in path.split("/") if s != ""]
    master, db = None, 0
    if topology == "sentinel":
        if not segments:
            raise RedisUrlError(
                f"{shown!r} names no master: a Sentinel URL ends with the master's name, e.g. "
                "redis+sentinel://host1:26379,host2:26379/mymaster/0"
            )
        master, segments = segments[0], segments[1:]
    if topology == "cluster" and segments:
        raise RedisUrlError(f"{shown!r} has a path: a Redis Cluster has no databases but 0 (write no /db)")
    if len(segments) > 1:
        raise RedisUrlError(f"{shown!r} has more path than a database number")
    if segments:
        if not segments[0].isdigit():
            raise RedisUrlError(f"{shown!r}: the database {segments[0]!r} is not a number")
        db = int(segments[0])
    options, sentinel_auth = _query(query, tls, topology, shown)
    return RedisTarget(topology, tls, nodes, master, db, username, password, options, sentinel_auth)


def _node(part: str, topology: Topology, shown: str) -> tuple[str, int]:
    if not part.strip():
        raise RedisUrlError(f"{shown!r} names no host (or an empty one between commas)")
    parts = urlsplit(f"//{part}")
    try:
        port = parts.port
    except ValueError:
        raise RedisUrlError(f"{shown!r}: the port of {part!r} is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise RedisUrlError(f"{shown!r}: {part!r} is not a host[:port]")
    return parts.hostname, port or _DEFAULT_PORT[topology]


def _query(query: str, tls: bool, topology: Topology, shown: str) -> tuple[dict[str, Any], bool]:
    options: dict[str, Any] = {}
    sentinel_auth = True
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _PARAMETERS:
            raise RedisUrlError(f"{shown!r}: unknown parameter {name!r} (known: {', '.join(_PARAMETERS)})")
        if name in _TLS_PARAMETERS and not tls:
            raise RedisUrlError(f"{shown!r}: {name} is for TLS; use rediss:// (or rediss+sentinel://, rediss+cluster://)")
        if name == "sentinel_auth":
            if topology != "sentinel":
                raise RedisUrlError(f"{shown!r}: sentinel_auth is for redis+sentinel:// URLs")
            sentinel_auth = _flag(name, value, shown)
        elif name == "ssl_cert_reqs":
            if value not in ("required", "none"):
                raise RedisUrlError(f"{shown!r}: ssl_cert_reqs is required or none, not {value!r}")
            options[name] = value
        elif name == "ssl_check_hostname":
            options[name] = _flag(name, value, shown)
        elif not value:
            raise RedisUrlError(f"{shown!r}: {name} is empty (a file path)")
        else:
            options[name] = value
    return options, sentinel_auth


def _flag(name: str, value: str, shown: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise RedisUrlError(f"{shown!r}: {name} is true or false, not {value!r}")


def _without_credentials(value: str) -> str:
    """``value`` with anything before the last ``@`` of its host part hidden, and no query (a URL that did
    not parse may still hold a password)."""
    if "@" in value:
        head, _, tail = value.rpartition("@")
        scheme = head.split("//", 1)[0] + "//" if "//" in head else ""
        value = f"{scheme}***@{tail}"
    return value.split("?", 1)[0]
