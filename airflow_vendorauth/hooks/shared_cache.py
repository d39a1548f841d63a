"""Build the shared token cache a connection asks for, from Airflow's configuration.

This is where ``auth/`` (which never imports Airflow) meets Airflow's settings: the Fernet key
(``[core] fernet_key``) and the cache directory (``[vendorauth] token_cache_dir``, env
``AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR``, by default ``$AIRFLOW_HOME/vendorauth/token-cache``).

Without a Fernet key nothing is written to a file or to Redis (a token never rests in clear): the
connection then behaves as ``token_cache=memory``, and a warning says so once.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from airflow_vendorauth.auth.cipher import cipher_from_keys
from airflow_vendorauth.auth.warn_once import warn_once

_caches: dict[tuple[str, str, str], Any] = {}
_guard = threading.Lock()


def token_cache_dir() -> str:
    from airflow.sdk import conf

    home = os.path.expanduser(os.environ.get("AIRFLOW_HOME", "~/airflow"))
    configured = conf.get("vendorauth", "token_cache_dir", fallback=None)
    return (configured or "{AIRFLOW_HOME}/vendorauth/token-cache").replace("{AIRFLOW_HOME}", home)


def shared_cache_for(token_cache: str, *, logger: logging.Logger | None = None) -> Any:
    """A FileTokenCache or RedisTokenCache (one per setting per process), or None without a key."""
    from airflow.sdk import conf

    fernet_key = conf.get("core", "fernet_key", fallback=None) or ""
    cipher = cipher_from_keys(fernet_key)
    if cipher is None:
        warn_once(
            logger,
            "no-fernet-key",
            "token_cache=%s needs Airflow's [core] fernet_key to encrypt tokens at rest; none is set (or it is "
            "invalid), so tokens stay in this process's memory only",
            token_cache.split("@")[-1],
        )
        return None
    directory = token_cache_dir() if token_cache == "file" else ""
    key = (token_cache, directory, fernet_key)
    with _guard:
        if key not in _caches:
            if token_cache == "file":
                from airflow_vendorauth.auth.file_cache import FileTokenCache

                _caches[key] = FileTokenCache(directory, cipher, logger=logger)
            else:
                from airflow_vendorauth.auth.redis_cache import RedisTokenCache

                _caches[key] = RedisTokenCache(token_cache, cipher, logger=logger)
        return _caches[key]
