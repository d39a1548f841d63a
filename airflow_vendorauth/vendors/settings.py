"""A connection as plain values (:class:`RawConnection`) and validated (:class:`ConnectionSettings`),
with the rules every URL and the token cache setting obey. Nothing here imports Airflow."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

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
                return cls("redis", redis_conn_id=conn_id)
            raise fail("cache", f"is {value!r}, with no connection id", "write e.g. redis_conn_id:redis_default")
        parts = urlsplit(value)
        if parts.scheme in ("redis", "rediss") and parts.hostname:
            return cls("redis", value)
        raise fail(
            "cache",
            f"is {_without_credentials(value)!r}",
            "use memory, file, redis_conn_id:<an Airflow Redis connection> (keeps the password secret), or a "
            "Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)",
        )

    @property
    def url_password(self) -> str | None:
        """The password written inside a Redis URL (to register with the secrets masker), if any."""
        return urlsplit(self.url).password if self.url else None

    def __str__(self) -> str:
        """As the user wrote it, minus any password in a Redis URL: safe to log."""
        if self.redis_conn_id is not None:
            return f"{REDIS_CONN_PREFIX}{self.redis_conn_id}"
        if self.url is None:
            return self.kind
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


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
