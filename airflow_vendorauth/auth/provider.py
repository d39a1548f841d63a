"""TokenProvider: a valid token for one credential, from the cheapest place that has one.

Order of look-up: this process's memory, then the shared cache (file or Redis) if the connection has
one, then the vendor's token endpoint, with tenacity retries on transient failures only. Each miss is
single-flight (a lock per credential, checked again once taken), for threads and for asyncio tasks.

A refused credential (400/401/403 from the token endpoint: ``invalid_client``, ``invalid_grant``,
``invalid_scope`` ...) is never retried, and is remembered for :data:`FAILURE_MEMORY_SECONDS`, so 50
mapped tasks with a wrong secret ask the identity provider once and then replay its answer.

Sync and async share every decision (:meth:`_usable`, :meth:`_interpret`, the retry arguments); only
the I/O differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import tenacity

from airflow_vendorauth.auth.cache import MEMORY_CACHE, MemoryTokenCache, SharedTokenCache
from airflow_vendorauth.auth.errors import InvalidTokenResponseError, TokenRequestError, vendor_error_fields
from airflow_vendorauth.auth.grants import TokenRequest
from airflow_vendorauth.auth.redact import excerpt, redact
from airflow_vendorauth.auth.retry import TRANSIENT_STATUSES, RetryPolicy, parse_retry_after, retry_arguments
from airflow_vendorauth.auth.token import AccessToken, parse_token_response

FAILURE_MEMORY_SECONDS = 30.0

#: What to tell the user for the errors identity providers send most (Microsoft's AADSTS codes too).
_HINTS: dict[str, str] = {
    "invalid_client": "check the connection's login (client ID) and password (client secret)",
    "unauthorized_client": "the application is not allowed this grant; ask the vendor to enable it",
    "invalid_grant": "check the username and password extras (the user's credentials)",
    "invalid_scope": "check the scope extra",
    "invalid_request": "check the connection's extras (resource, scope, grant_type)",
    "AADSTS7000215": "the client secret is wrong: set the connection's password to the secret's value",
    "AADSTS700016": "the application (client ID) is unknown in this tenant: check login and tenant_id",
    "AADSTS90002": "the tenant was not found: check the tenant_id extra",
    "AADSTS70011": "the scope is invalid: check the scope extra",
    "AADSTS50126": "the user's password is wrong: check the user_password extra",
    "AADSTS50076": "the user needs MFA, which the password grant cannot do: use client_credentials",
}

_failures: dict[str, tuple[float, TokenRequestError]] = {}
_failures_guard = threading.Lock()


class TokenProvider:
    """Obtains, caches and refreshes the token of one credential."""

    def __init__(
        self,
        *,
        vendor: str,
        conn_id: str,
        token_request: TokenRequest,
        key: str,
        policy: RetryPolicy,
        timeout: float,
        verify: bool,
        expect_jwt: bool = False,
        shared: SharedTokenCache | None = None,
        on_new_token: Callable[[AccessToken], None] | None = None,
        logger: logging.Logger | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        memory: MemoryTokenCache = MEMORY_CACHE,
    ) -> None:
        self.vendor = vendor
        self.conn_id = conn_id
        self.key = key
        self._request = token_request
        self._policy = policy
        self._timeout = timeout
        self._verify = verify
        self._expect_jwt = expect_jwt
        self._shared = shared
        self._on_new_token = on_new_token
        self._log = logger or logging.getLogger(__name__)
        self._transport = transport
        self._async_transport = async_transport
        self._memory = memory
        self._client: httpx.Client | None = None
        #: Token requests this provider sent (attempts included), for logs and benchmarks.
        self.requests_sent = 0

    def __repr__(self) -> str:
        return f"TokenProvider(vendor={self.vendor!r}, conn_id={self.conn_id!r}, url={self._request.url!r})"

    # ---- the decisions, shared by sync and async -------------------------------------------------

    @staticmethod
    def _usable(token: AccessToken | None) -> AccessToken | None:
        return token if token is not None and token.is_fresh() else None

    @property
    def fetch_budget_seconds(self) -> float:
        """The longest one fetch may take, retries included: the retry budget plus one last attempt.
        Whoever waits for another process's fetch waits this long, and a lock lease outlives it."""
        return self._policy.max_elapsed_seconds + self._timeout + 5.0

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

    def _remember_failure(self, error: TokenRequestError) -> None:
        if not error.retryable:
            with _failures_guard:
                _failures[self.key] = (time.monotonic() + FAILURE_MEMORY_SECONDS, error)

    def _accept(self, token: AccessToken, origin: str) -> AccessToken:
        if self._on_new_token is not None:
            self._on_new_token(token)
        self._memory.put(self.key, token)
        self._log.info(
            "%s token for connection %r from %s: valid %d s more (lifetime %d s), refresh planned at %s",
            self.vendor,
            self.conn_id,
            origin,
            token.seconds_left(),
            token.lifetime_seconds,
            token.refresh_at.to_iso8601_string(),
        )
        return token

    def _error(self, message: str, **kwargs: Any) -> TokenRequestError:
        return TokenRequestError(
            f"{self.vendor} token request for connection {self.conn_id!r} to {self._request.url} {message}",
            vendor=self.vendor,
            conn_id=self.conn_id,
            secrets=self._request.secrets,
            **kwargs,
        )

    def _transport_error(self, exc: httpx.TransportError) -> TokenRequestError:
        return self._error(f"could not complete: {type(exc).__name__}: {exc}", retryable=True)

    def _interpret(self, response: httpx.Response) -> AccessToken:
        """Turn the token endpoint's answer into a token or into the right error."""
        status = response.status_code
        text = response.text
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if 200 <= status < 300:
            if body is None:
                content_type = response.headers.get("content-type", "no content type")
                shown = excerpt(redact(text, self._request.secrets), 120) or "an empty body"
                raise InvalidTokenResponseError(
                    f"{self.vendor} token endpoint for connection {self.conn_id!r} answered HTTP {status} "
                    f"with {content_type} that is not JSON ({shown!r}); a proxy or a wrong token_url "
                    "is the usual cause",
                    vendor=self.vendor,
                    conn_id=self.conn_id,
                    status=status,
                    retryable=True,
                    secrets=self._request.secrets,
                )
            return parse_token_response(body, vendor=self.vendor, conn_id=self.conn_id, expect_jwt=self._expect_jwt)
        error, description, codes = vendor_error_fields(body)
        said = ": ".join(p for p in (error, description) if p) or excerpt(text, 200) or "no body"
        if status in TRANSIENT_STATUSES:
            # Entra ID throttles token requests with 429 (or 503) and Retry-After: honour it, as API calls do.
            raise self._error(
                f"got HTTP {status} ({said})",
                status=status,
                error=error,
                error_description=description,
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            ) from None
        hint = next((_HINTS[c] for c in codes if c in _HINTS), None) or _HINTS.get(error or "")
        hint = hint or "check the connection's credentials and token_url"
        raise self._error(
            f"was refused with HTTP {status}: {said}. Fix: {hint}",
            status=status,
            error=error,
            error_description=description,
            retryable=False,
        )

    def _retry_arguments(self) -> dict[str, Any]:
        return retry_arguments(
            self._policy, logger=self._log, what=f"{self.vendor} token request for connection {self.conn_id!r}"
        )

    def _http_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": self._request.headers}
        if self._request.json is not None:
            kwargs["json"] = self._request.json
        else:
            kwargs["data"] = self._request.form
        return kwargs

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
        with self._shared.fetch_lock(self.key, self.fetch_budget_seconds):
            if (token := self._usable(self._shared.load(self.key))) is not None:
                return self._accept(token, f"the {self._shared.name} cache")
            token = self._fetch()
            self._shared.store(self.key, token)
            return self._accept(token, f"the token endpoint (fetched, stored in the {self._shared.name} cache)")

    def _fetch_and_share(self) -> AccessToken:
        """Ask the token endpoint, no cache consulted (nor a remembered refusal), and share the answer."""
        if self._shared is None:
            return self._accept(self._fetch(), "the token endpoint (fetched on request)")
        with self._shared.fetch_lock(self.key, self.fetch_budget_seconds):
            token = self._fetch()
            self._shared.store(self.key, token)
        return self._accept(token, f"the token endpoint (fetched on request, stored in the {self._shared.name} cache)")

    def invalidate(self, token: AccessToken) -> None:
        """Forget ``token`` (it got a 401) here and in the shared cache, unless a newer one replaced it."""
        self._memory.evict(self.key, token.access_token)
        if self._shared is not None:
            self._shared.evict(self.key, token.access_token)

    def _fetch(self) -> AccessToken:
        try:
            for attempt in tenacity.Retrying(**self._retry_arguments()):
                with attempt:
                    token = self._post_once()
        except TokenRequestError as error:
            self._remember_failure(error)
            raise
        return token

    def _post_once(self) -> AccessToken:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout, verify=self._verify, follow_redirects=False, transport=self._transport
            )
        self.requests_sent += 1
        try:
            response = self._client.post(self._request.url, **self._http_kwargs())
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from None
        return self._interpret(response)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

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
            if self._shared is None:
                origin = "the token endpoint (fetched on request)" if force_refresh else "the token endpoint (fetched)"
                return self._accept(await self._afetch(), origin)
            # The shared caches block on locks and I/O: keep them off the event loop.
            return await asyncio.to_thread(self._fetch_and_share if force_refresh else self._through_shared)

    async def ainvalidate(self, token: AccessToken) -> None:
        self._memory.evict(self.key, token.access_token)
        if self._shared is not None:
            await asyncio.to_thread(self._shared.evict, self.key, token.access_token)

    async def _afetch(self) -> AccessToken:
        try:
            async for attempt in tenacity.AsyncRetrying(**self._retry_arguments()):
                with attempt:
                    token = await self._apost_once()
        except TokenRequestError as error:
            self._remember_failure(error)
            raise
        return token

    async def _apost_once(self) -> AccessToken:
        # A client per call: the async path serves triggers, whose event loops come and go, and an
        # AsyncClient must not outlive its loop. Token requests are rare, so this costs nothing.
        async with httpx.AsyncClient(
            timeout=self._timeout, verify=self._verify, follow_redirects=False, transport=self._async_transport
        ) as client:
            self.requests_sent += 1
            try:
                response = await client.post(self._request.url, **self._http_kwargs())
            except httpx.TransportError as exc:
                raise self._transport_error(exc) from None
        return self._interpret(response)


def forget_remembered_failures() -> None:
    """Clear the memory of refused credentials (tests; a user who fixed the connection meanwhile)."""
    with _failures_guard:
        _failures.clear()
