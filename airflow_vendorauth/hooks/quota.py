"""The quota limiter of a connection: its declared limits (``rate_limit``, ``max_in_flight``,
``quota_max_wait``) in the store that sits where its tokens are shared (``cache``): the Redis token
cache's own client (same URL, credentials and TLS), a file next to the file token cache, or this process's
memory (``cache: memory``, or a shared cache that keeps nothing for want of a Fernet key)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from airflow_vendorauth.auth.cache import SharedTokenCache
from airflow_vendorauth.quota.limiter import QuotaLimiter
from airflow_vendorauth.quota.spec import QuotaSpec, parse_rate_limit
from airflow_vendorauth.quota.stores import MEMORY_QUOTAS, QuotaStore

if TYPE_CHECKING:
    from airflow_vendorauth.vendors.profile import ConnectionSettings, VendorProfile

#: A lease outlives the request's timeout by this much: a process that dies mid-request frees its slot then.
LEASE_MARGIN_SECONDS = 5.0

_stores: dict[int, tuple[Any, QuotaStore]] = {}
_guard = threading.Lock()


def quota_spec(s: ConnectionSettings) -> QuotaSpec:
    declared = s.extra("rate_limit")
    return QuotaSpec(
        rates=parse_rate_limit(declared) if declared else (),
        max_in_flight=s.extra("max_in_flight"),
        max_wait=float(s.extra("quota_max_wait") or 60.0),
    )


def quota_store_for(shared: SharedTokenCache | None) -> tuple[QuotaStore, str]:
    """The quota store next to ``shared`` (one per token cache object), and where it is, for messages."""
    if shared is None:
        return MEMORY_QUOTAS, "memory"
    with _guard:
        held = _stores.get(id(shared))
        if held is None or held[0] is not shared:
            store: QuotaStore
            if shared.name == "redis":
                from airflow_vendorauth.quota.redis_store import RedisQuotaStore

                cache: Any = shared
                store = RedisQuotaStore(cache.client, cache.redis_errors, f"redis {cache.url_shown}")
            else:
                from airflow_vendorauth.quota.stores import FileQuotaStore

                store = FileQuotaStore(getattr(shared, "directory") / "quota")  # noqa: B009
            held = _stores[id(shared)] = (shared, store)
        store = held[1]
    where = getattr(store, "where", None) or f"file {getattr(store, 'directory', '')}"
    return store, where


def limiter_for(
    conn_id: str,
    profile: VendorProfile,
    s: ConnectionSettings,
    shared: SharedTokenCache | None,
    *,
    logger: logging.Logger | None = None,
    retry_after_cap: float = 60.0,
) -> QuotaLimiter:
    from airflow_vendorauth.hooks.wiring import quota_key

    store, where = quota_store_for(shared)
    return QuotaLimiter(
        quota_key(s),
        quota_spec(s),
        store,
        vendor=profile.display_name,
        conn_id=conn_id,
        lease_seconds=s.timeout + LEASE_MARGIN_SECONDS,
        logger=logger,
        where=where,
        retry_after_cap=retry_after_cap,
    )


def forget_quota_stores() -> None:
    """This process's quotas and store objects (tests start from a fresh process's state)."""
    from airflow_vendorauth.quota.limiter import FALLBACK

    MEMORY_QUOTAS.clear()
    FALLBACK.clear()
    with _guard:
        _stores.clear()
