"""TokenProvider: a valid token for one credential, from the cheapest place that has one.

Order of look-up: this process's memory, then the shared cache (file or Redis) if the connection has
one, then the token endpoint (:class:`TokenEndpoint`, with its retries). Each miss is single flight per
credential for the whole process (every hook, thread and event loop), checked again once the lock is
taken, and across processes through the shared cache's fetch lock.

A refused credential (400/401/403 from the token endpoint) is remembered for
:data:`FAILURE_MEMORY_SECONDS`, so 50 mapped tasks with a wrong secret ask the identity provider once
and then replay its answer. ``force_refresh`` (the Test button) skips every cache and that memory.

Rotating refresh tokens (``grant_type=refresh_token``): each refresh spends the newest refresh token and
the server answers with the next one, which is stored (encrypted) in the shared cache, or this
process's memory, before the fetch lock is released: a group of processes never spends one twice. The
connection's refresh token only seeds the chain (it is part of the credential's fingerprint, so a new
seed starts a new chain).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from airflow_vendorauth.auth.cache import MEMORY_CACHE, MemoryTokenCache, SharedTokenCache
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
from airflow_vendorauth.exceptions import TokenRequestError

FAILURE_MEMORY_SECONDS = 30.0

_failures: dict[str, tuple[float, TokenRequestError]] = {}
_failures_guard = threading.Lock()


class TokenProvider:
    """Obtains, caches and refreshes the token of one credential (``key``: its fingerprint)."""

    def __init__(
        self,
        endpoint: TokenEndpoint,
        *,
        key: str,
        shared: SharedTokenCache | None = None,
        refresh_seed: str | None = None,
        on_new_token: Callable[[AccessToken], None] | None = None,
        logger: logging.Logger | None = None,
        memory: MemoryTokenCache = MEMORY_CACHE,
    ) -> None:
        self.endpoint = endpoint
        self.key = key
        self._shared = shared
        self._refresh_seed = refresh_seed
        self._on_new_token = on_new_token
        self._log = logger or logging.getLogger(__name__)
        self._memory = memory

    def __repr__(self) -> str:
        return f"TokenProvider({self.endpoint!r})"

    @property
    def requests_sent(self) -> int:
        """Token requests this provider sent (attempts included), for logs and benchmarks."""
        return self.endpoint.requests_sent

    @property
    def last_token(self) -> AccessToken | None:
        """This credential's current token in this process (error messages name its roles, redact it)."""
        return self._memory.get(self.key)

    # ---- the decisions, shared by sync and async -------------------------------------------------

    @staticmethod
    def _usable(token: AccessToken | None) -> AccessToken | None:
        return token if token is not None and token.is_fresh() else None

    def _replay_remembered_failure(self) -> None:
        with _failures_guard:
            remembered = _failures.get(self.key)
            if remembered is None:
                return
            until, error = remembered
            if time.monotonic() >= until:
                del _failures[self.key]
                return
        raise error

    def _remember(self, error: TokenRequestError) -> None:
        if not error.retryable:
            with _failures_guard:
                _failures[self.key] = (time.monotonic() + FAILURE_MEMORY_SECONDS, error)

    def _fetch(self) -> AccessToken:
        try:
            return self.endpoint.fetch() if self._refresh_seed is None else self._refresh()
        except TokenRequestError as error:
            self._remember(error)
            raise

    def _refresh(self) -> AccessToken:
        """Spend the newest refresh token and keep the one that replaces it (called under the fetch lock)."""
        store: SharedTokenCache | MemoryTokenCache = self._shared or self._memory
        current = store.load_refresh_token(self.key) or self._refresh_seed
        try:
            token = self.endpoint.fetch(current)
        except TokenRequestError as error:
            if error.error != "invalid_grant":
                raise
            newer = store.load_refresh_token(self.key)  # another process may have just rotated it
            if newer is None or newer == current:
                raise self._spent(error) from None
            try:
                token = self.endpoint.fetch(newer)
            except TokenRequestError as again:
                raise self._spent(again) if again.error == "invalid_grant" else again from None
        if token.refresh_token:
            store.store_refresh_token(self.key, token.refresh_token)
        return token

    def _spent(self, error: TokenRequestError) -> TokenRequestError:
        said = ": ".join(p for p in (error.error, error.error_description) if p)
        why = (
            f"the refresh token was refused ({said}); it was spent by another process or revoked. Fix: put a new "
            "refresh token in Refresh token (refresh_token); with more than one task process, set Token cache "
            "to file or a Redis URL so they share the newest one"
        )
        return TokenRequestError(
            f"{self.endpoint.vendor} connection {self.endpoint.conn_id!r}: {why}",
            summary=why[0].upper() + why[1:],
            vendor=self.endpoint.vendor,
            conn_id=self.endpoint.conn_id,
            status=error.status,
            error=error.error,
            error_description=error.error_description,
        )

    def _accept(self, token: AccessToken, origin: str) -> AccessToken:
        if self._on_new_token is not None:
            self._on_new_token(token)
        self._memory.put(self.key, token)
        self._log.info(
            "%s token for connection %r from %s: valid %d s more (lifetime %d s), refresh planned at %s",
            self.endpoint.vendor,
            self.endpoint.conn_id,
            origin,
            token.seconds_left(),
            token.lifetime_seconds,
            token.refresh_at.to_iso8601_string(),
        )
        return token

    # ---- sync ------------------------------------------------------------------------------------

    def get_token(self, force_refresh: bool = False) -> AccessToken:
        """A token that will not expire before the refresh leeway; fetched only when needed.

        ``force_refresh=True`` (the Test button) proves the credential at the token endpoint every
        time, whatever a cache holds, and shares the fresh token through the shared cache.
        """
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
            return token
        with self._memory.lock(self.key):
            if force_refresh:
                return self._fetch_and_share()
            if (token := self._usable(self._memory.get(self.key))) is not None:
                return token
            self._replay_remembered_failure()
            if self._shared is None:
                return self._accept(self._fetch(), "the token endpoint (fetched)")
            return self._through_shared()

    def _through_shared(self) -> AccessToken:
        assert self._shared is not None
        if (token := self._usable(self._shared.load(self.key))) is not None:
            return self._accept(token, f"the {self._shared.name} cache")
        with self._shared.fetch_lock(self.key, self.endpoint.budget_seconds):
            if (token := self._usable(self._shared.load(self.key))) is not None:
                return self._accept(token, f"the {self._shared.name} cache")
            token = self._fetch()
            self._shared.store(self.key, token)
            return self._accept(token, f"the token endpoint (fetched, stored in the {self._shared.name} cache)")

    def _fetch_and_share(self) -> AccessToken:
        """Ask the token endpoint, no cache consulted (nor a remembered refusal), and share the answer."""
        if self._shared is None:
            return self._accept(self._fetch(), "the token endpoint (fetched on request)")
        with self._shared.fetch_lock(self.key, self.endpoint.budget_seconds):
            token = self._fetch()
            self._shared.store(self.key, token)
        return self._accept(token, f"the token endpoint (fetched on request, stored in the {self._shared.name} cache)")

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (it got a 401) here and in the shared cache, unless a newer one replaced it."""
        self.forget(token.access_token)

    def forget(self, access_token: str) -> None:
        """:meth:`invalidate` by the token's value (what a request carried in its Authorization header)."""
        self._memory.evict(self.key, access_token)
        if self._shared is not None:
            self._shared.evict(self.key, access_token)

    def close(self) -> None:
        self.endpoint.close()

    # ---- async -----------------------------------------------------------------------------------

    async def aget_token(self, force_refresh: bool = False) -> AccessToken:
        """The async twin of :meth:`get_token` (for triggers): same decisions, and the same single
        flight: one fetch per credential for every hook, thread and event loop of the process."""
        if not force_refresh and (token := self._usable(self._memory.get(self.key))) is not None:
            return token
        async with self._memory.alock(self.key):
            if not force_refresh:
                if (token := self._usable(self._memory.get(self.key))) is not None:
                    return token
                self._replay_remembered_failure()
            if self._shared is not None:
                # The shared caches block on locks and I/O: keep them off the event loop.
                return await asyncio.to_thread(self._fetch_and_share if force_refresh else self._through_shared)
            # A blocking fetch in a thread: tokens are fetched about once an hour, and one fetch path
            # (retries, discovery, rotating refresh tokens) serves sync and async callers alike.
            return self._accept(await asyncio.to_thread(self._fetch), "the token endpoint (fetched)")

    async def ainvalidate(self, token: AccessToken) -> None:
        self._memory.evict(self.key, token.access_token)
        if self._shared is not None:
            await asyncio.to_thread(self._shared.evict, self.key, token.access_token)


def forget_remembered_failures() -> None:
    """Clear the memory of refused credentials (tests; a user who fixed the connection meanwhile)."""
    with _failures_guard:
        _failures.clear()
