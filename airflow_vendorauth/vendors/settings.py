"""A connection as plain values (:class:`RawConnection`) and validated (:class:`ConnectionSettings`),
with the rules every URL and the token cache setting obey. Nothing here imports Airflow."""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_vendorauth.auth.mtls import ClientCertificate, Verify, ssl_context
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.urls import check_url, is_loopback

__all__ = ["ConnectionSettings", "RawConnection", "TokenCacheSetting", "check_url", "is_loopback"]


@dataclass(frozen=True)
class RawConnection:
    """The fields of an Airflow Connection, as plain values (the hook builds it)."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RawConnection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r})"


#: ``cache: redis_conn_id:<id>``: the Redis of an Airflow connection (its password stays a secret field).
REDIS_CONN_PREFIX = "redis_conn_id:"
#: The schemes of a Redis URL (``auth/redis_url.py``: one server, Sentinel, Cluster; ``rediss`` for TLS).
REDIS_SCHEMES = ("redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class TokenCacheSetting:
    """Where a connection's tokens are shared, parsed once: ``memory``, ``file``, a Redis URL, or
    ``redis_conn_id:<id>`` (an Airflow connection of type redis: host, port, login, password, extra
    ``db`` and ``ssl``), which keeps the Redis password out of the plain ``cache`` field."""

    kind: Literal["memory", "file", "redis"]
    url: str | None = None
    redis_conn_id: str | None = None

    @classmethod
    def parse(cls, value: str, fail: Callable[..., ConnectionConfigError]) -> TokenCacheSetting:
        if value in ("memory", "file"):
            return cls(value)  # type: ignore[arg-type]
        if value.startswith(REDIS_CONN_PREFIX):
            conn_id = value.removeprefix(REDIS_CONN_PREFIX).strip()
            if conn_id:
                return cls("redis", redis_conn_id=conn_id).needing_the_redis_client(fail)
            raise fail("cache", f"is {value!r}, with no connection id", "write e.g. redis_conn_id:redis_default")
        from airflow_vendorauth.auth.redis_url import EXAMPLES, RedisUrlError, parse_redis_url

        if "://" in value and value.split("://", 1)[0].lower() in REDIS_SCHEMES:
            try:
                parse_redis_url(value)
            except RedisUrlError as exc:
                raise fail("cache", f"is not a usable Redis URL: {exc}", f"write {EXAMPLES}") from None
            return cls("redis", value).needing_the_redis_client(fail)
        raise fail(
            "cache",
            f"is {_without_credentials(value)!r}",
            "use memory, file, redis_conn_id:<an Airflow Redis connection> (keeps the password secret), or a "
            "Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS; redis+sentinel://, redis+cluster:// "
            "for a Sentinel group or cluster mode)",
        )

    def needing_the_redis_client(self, fail: Callable[..., ConnectionConfigError]) -> TokenCacheSetting:
        """This setting, if the redis client can be imported here; else a refusal before any request.

        The fix names no package extra in brackets: Airflow's CLI prints a failed Test through Rich, which
        reads ``[redis]`` as markup and prints ``pip install 'airflow-vendorauth'`` (issue 32, item 5); and
        the package is installed from a clone or a wheel, not from an index (README, Install)."""
        if importlib.util.find_spec("redis") is None:
            raise fail(
                "cache",
                f"is {str(self)!r}, but the redis client is not installed in this Python environment",
                "pip install 'redis>=5.0' (what the package's redis extra installs) wherever this connection is "
                "used: workers, triggerer, and the api-server for Test; or set Token cache to memory or file",
            )
        return self

    @property
    def url_password(self) -> str | None:
        """The password written inside a Redis URL (to register with the secrets masker), if any."""
        from airflow_vendorauth.auth.redis_url import parse_redis_url

        return parse_redis_url(self.url).password if self.url else None

    def __str__(self) -> str:
        """As the user wrote it, minus any password in a Redis URL: safe to log."""
        if self.redis_conn_id is not None:
            return f"{REDIS_CONN_PREFIX}{self.redis_conn_id}"
        if self.url is None:
            return self.kind
        from airflow_vendorauth.auth.redis_url import parse_redis_url

        return parse_redis_url(self.url).shown()


def _without_credentials(value: str) -> str:
    """``value`` with everything before its last ``@`` hidden: a URL that did not parse may still hold a
    password there, and the masker learns a password only from a URL that parses."""
    if "@" not in value:
        return value
    head, _, tail = value.rpartition("@")
    scheme = head.split("//", 1)[0] + "//" if "//" in head else ""
    return f"{scheme}***@{tail}"


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """A validated connection: everything a hook needs, nothing left to check."""

    conn_id: str
    vendor: str
    base_url: str
    #: None when ``issuer`` is set: the token endpoint is discovered from the issuer's metadata.
    token_url: str | None
    issuer: str | None
    client_id: str
    #: None for client authentication without a secret (private_key_jwt, none).
    client_secret: str | None
    extras: Mapping[str, Any]
    secret_extras: tuple[str, ...]
    timeout: float
    max_retries: int
    verify: Verify
    token_cache: TokenCacheSetting
    #: A sentence naming the extras no field of the type reads (with the closest names), or None.
    unknown_extras: str | None = None
    #: Mutual TLS (RFC 8705): the certificate token requests and API calls present.
    client_certificate: ClientCertificate | None = None

    def tls(self) -> ssl.SSLContext | Verify:
        """What httpx takes as ``verify``: presents the client certificate, if any (one context per process)."""
        return ssl_context(self.client_certificate, self.verify)

    def extra(self, name: str) -> Any:
        return self.extras.get(name)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value that must be masked: the client secret and the sensitive extras."""
        values = [self.client_secret] if self.client_secret else []
        for name in self.secret_extras:
            value = self.extras.get(name)
            if isinstance(value, dict):
                values.extend(str(v) for v in value.values() if v)
            elif value:
                values.append(str(value))
        return tuple(values)

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(conn_id={self.conn_id!r}, vendor={self.vendor!r}, base_url={self.base_url!r}, "
            f"token_url={self.token_url or self.issuer!r}, client_id={self.client_id!r}, client_secret='***', "
            f"token_cache={str(self.token_cache)!r})"
        )
