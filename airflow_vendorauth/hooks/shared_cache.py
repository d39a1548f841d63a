"""Build the shared token cache a connection asks for, from Airflow's configuration.

This is where ``auth/`` (which never imports Airflow) meets Airflow's settings: the Fernet key
(``[core] fernet_key``) and the cache directory (``[vendorauth] token_cache_dir``, env
``AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR``, by default ``$AIRFLOW_HOME/vendorauth/token-cache``).

Without a Fernet key nothing is written to a file or to Redis (a token never rests in clear): the
connection then behaves as ``token_cache=memory``, and a warning says so once; a rotating refresh token is
refused instead (``hooks/wiring.py``), since its successor would die with the process.

Redis credentials: ``cache: redis_conn_id:<id>`` reads host, port, login, password and the extras ``db``
and ``ssl`` from an Airflow connection (the Redis type users already have), whose password is a secret
field; a password written inside a Redis URL is registered with the secrets masker all the same.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any
from urllib.parse import quote, urlencode

from airflow_vendorauth.auth.cache import SharedTokenCache
from airflow_vendorauth.auth.cipher import cipher_from_keys
from airflow_vendorauth.auth.warn_once import warn_once
from airflow_vendorauth.compat import conf
from airflow_vendorauth.hooks.masking import mask
from airflow_vendorauth.vendors.settings import TokenCacheSetting

_caches: dict[tuple[str, ...], SharedTokenCache] = {}
_guard = threading.Lock()


def token_cache_dir() -> str:
    home = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    configured = conf.get("vendorauth", "token_cache_dir", fallback=None)
    return (configured or "{AIRFLOW_HOME}/vendorauth/token-cache").replace("{AIRFLOW_HOME}", home)


#: The extras of an Airflow Redis connection that become TLS parameters of the URL (the names Airflow's
#: Redis provider reads, plus ``sentinel_auth``).
_URL_EXTRAS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname", "sentinel_auth")


def redis_address(connection: Any) -> tuple[str, str | None, str | None]:
    """A Redis URL without credentials, the username and the password, from an Airflow connection of
    type redis: host (several ``host:port`` separated by commas for Sentinel or Cluster), port, login,
    password, and the extras ``db``, ``ssl`` (and the ``ssl_*`` files Airflow's Redis provider reads),
    ``sentinel_master`` (a Sentinel group: the master's name) or ``cluster: true`` (cluster mode)."""
    extra = connection.extra_dejson if hasattr(connection, "extra_dejson") else {}

    def flag(name: str) -> bool:
        return str(extra.get(name, "")).lower() in ("true", "1", "yes")

    master = str(extra.get("sentinel_master") or "").strip()
    topology = "+sentinel" if master else "+cluster" if flag("cluster") else ""
    default_port = connection.port or (26379 if master else 6379)
    hosts = ",".join(
        h if ":" in h else f"{h}:{default_port}" for h in (p.strip() for p in str(connection.host or "127.0.0.1").split(","))
    )
    path = "" if topology == "+cluster" else f"/{quote(master, safe='')}/{int(extra.get('db', 0) or 0)}" if master else f"/{int(extra.get('db', 0) or 0)}"
    query = urlencode({name: str(extra[name]).lower() if isinstance(extra[name], bool) else extra[name]
                       for name in _URL_EXTRAS if extra.get(name) not in (None, "")})
    url = f"{'rediss' if flag('ssl') else 'redis'}{topology}://{hosts}{path}{'?' + query if query else ''}"
    return url, connection.login or None, connection.password or None


def shared_cache_for(
    setting: TokenCacheSetting, *, logger: logging.Logger | None = None, redis_connection: Any = None
) -> SharedTokenCache | None:
    """The connection's FileTokenCache or RedisTokenCache (one per setting per process); None for
    ``memory``, and None without a Fernet key (tokens never rest in clear). ``redis_connection``: the
    Airflow connection ``cache: redis_conn_id:<id>`` names (read by the hook)."""
    if setting.kind == "memory":
        return None
    fernet_key = conf.get("core", "fernet_key", fallback=None) or ""
    cipher = cipher_from_keys(fernet_key)
    if cipher is None:
        warn_once(
            logger,
            "no-fernet-key",
            "token_cache=%s needs Airflow's [core] fernet_key to encrypt tokens at rest; none is set (or it is "
            "invalid), so tokens stay in this process's memory only",
            str(setting),
        )
        return None
    directory = token_cache_dir() if setting.kind == "file" else ""
    url, username, password = setting.url or "", None, setting.url_password
    if setting.redis_conn_id is not None and redis_connection is not None:
        url, username, password = redis_address(redis_connection)
    if password:
        mask(password)  # in a URL or a connection: never in a log line
    key = (setting.url or str(setting), url, username or "", password or "", directory, fernet_key)
    with _guard:
        if key not in _caches:
            if setting.kind == "file":  # filelock is imported only by those who ask for the file cache
                from airflow_vendorauth.auth.file_cache import FileTokenCache

                _caches[key] = FileTokenCache(directory, cipher, logger=logger)
            else:  # redis is an optional extra: imported only by those who ask for it
                from airflow_vendorauth.auth.redis_cache import RedisTokenCache

                _caches[key] = (
                    RedisTokenCache(url, cipher, username=username, password=password, logger=logger)
                    if setting.redis_conn_id
                    else RedisTokenCache(url, cipher, logger=logger)  # the URL carries its own credentials
                )
        return _caches[key]


def forget_shared_caches() -> None:
    """Drop this process's cache objects (tests; a changed Fernet key or directory gets new ones)."""
    with _guard:
        _caches.clear()
