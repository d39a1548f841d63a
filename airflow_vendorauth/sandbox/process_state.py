"""A test's fresh start: forget what this process remembers of tokens, refusals, caches and warnings."""

from __future__ import annotations


def forget_process_state() -> None:
    """Forget every process-wide memory of the provider: tokens, refused credentials, shared-cache
    objects, quotas, warnings said once, DPoP keys and nonces, a stop asked of an earlier task."""
    from airflow_vendorauth.auth.cache import MEMORY_CACHE
    from airflow_vendorauth.auth.dpop import forget_keys_and_nonces
    from airflow_vendorauth.auth.provider import forget_remembered_failures
    from airflow_vendorauth.auth.warn_once import forget_warnings
    from airflow_vendorauth.hooks.async_connections import forget_async_reads
    from airflow_vendorauth.hooks.masking import forget_masked
    from airflow_vendorauth.hooks.quota import forget_quota_stores
    from airflow_vendorauth.hooks.shared_cache import forget_shared_caches
    from airflow_vendorauth.stopping import forget_stop

    MEMORY_CACHE.clear()
    forget_remembered_failures()
    forget_shared_caches()
    forget_async_reads()
    forget_masked()
    forget_warnings()
    forget_keys_and_nonces()
    forget_stop()
    forget_quota_stores()
