"""The UI's Test button (and ``airflow connections test``): prove a credential without harming the workers.

Test runs in the api-server (or the CLI's process), which is none of the workers: it shares their Redis at
best, never their disk nor their memory. So:

- a credential that mints tokens (client credentials, password, federation...) is proven at the token
  endpoint, whatever a cache holds, and the fresh token is shared through the connection's cache;
- a rotating refresh token is spent only through a cache every worker reads, Redis: under the workers'
  lock, its successor stored where they find it. With ``cache: file`` (this machine's disk, which no worker
  on another machine or pod reads) or ``memory`` the successor would stay here and the workers would present
  a spent token: Test then checks the token endpoint and the client credentials with a refresh token that
  cannot exist, and says that the refresh token itself was not spent;
- a cache that cannot be reached from here, or cannot keep tokens (no Fernet key), is named: tokens will
  not be shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_vendorauth.exceptions import VendorAuthError

if TYPE_CHECKING:
    from airflow_vendorauth.hooks.base import VendorHook


def check_connection(hook: VendorHook) -> tuple[bool, str]:
    """``(ok, message)`` for the hook's connection (see the module docstring)."""
    vendor = hook.profile.display_name
    try:
        provider = hook.client.provider
        shared = provider.shared
        if provider.rotating and (shared is None or shared.name != "redis"):
            checked = provider.check_refresh_client()
            where = (
                "this machine's file cache, which workers on other machines or pods do not read"
                if shared is not None
                else "this process's memory, out of the workers' reach"
            )
            message = (
                f"{vendor}: {checked}. The refresh token was not spent: its successor would stay in {where}, and "
                "the workers would then present a spent one. Set Token cache to Redis (every worker's and this "
                "server's) to have Test refresh it under the workers' lock"
            )
            return True, message + _notes(hook)
        token = hook.get_token(force_refresh=True)
    except VendorAuthError as error:
        hook.log.info("Test of connection %r failed: %s", hook.conn_id, error)
        return False, error.summary + _notes(hook)
    roles = f"; roles: {', '.join(token.roles)}" if token.roles else ""
    return True, f"{vendor} token obtained, valid for {token.seconds_left()} s{roles}" + _notes(hook)


def _notes(hook: VendorHook) -> str:
    """Test's word on what it noticed beside the credential: unknown extras, a cache that shares nothing."""
    notes = [note for note in (_unknown_extras(hook), _cache_problem(hook)) if note]
    return "".join(f". Note: {note}" for note in notes)


def _unknown_extras(hook: VendorHook) -> str | None:
    settings = hook._settings
    return settings.unknown_extras if settings else None


def _cache_problem(hook: VendorHook) -> str | None:
    """Why the connection's shared cache shares nothing from here, or None when it works (or is memory)."""
    settings = hook._settings
    if settings is None or settings.token_cache.kind == "memory" or hook._client is None:
        return None
    shared = hook._client.provider.shared
    if shared is None:
        return (
            f"Token cache is {settings.token_cache}, but Airflow has no valid [core] fernet_key to encrypt tokens at "
            "rest: tokens stay in each process's memory and are not shared"
        )
    problem = shared.unreachable()
    return f"the {shared.name} token cache {problem}: tokens will not be shared" if problem else None
