"""ApiClient: authenticated HTTP to one API, built from resolved connection settings and a token provider.

One pooled ``httpx.Client`` (and one ``AsyncClient`` per event loop) with the base URL, timeouts, TLS
settings and :class:`~airflow_vendorauth.auth.httpx_auth.VendorAuth`; credentials never follow a
request to another origin; every call retried by one declarative policy (:mod:`.calls`); answers
turned into responses or clear errors (:mod:`.answers`); paging through the one paging loop.
Nothing here reads an Airflow connection: the hook does, and hands over the settings.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from contextlib import aclosing, contextmanager
from typing import Any

import httpx
import tenacity

from airflow_vendorauth.auth import dpop
from airflow_vendorauth.auth.httpx_auth import Origin, VendorAuth, origin_of
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.replay import ONE_TIME_BODY, BodyReplay
from airflow_vendorauth.client import answers, pool
from airflow_vendorauth.client.lean import ResolvedUrls, lean_cookies
from airflow_vendorauth.exceptions import VendorApiError
from airflow_vendorauth.pagination.adaptive import AdaptiveConcurrency
from airflow_vendorauth.pagination.drivers import apage_batches, page_batches, window_for
from airflow_vendorauth.pagination.strategies import PageRequest, Pagination
from airflow_vendorauth.pagination.walk import PageBatch, PagingOptions, Window
from airflow_vendorauth.quota.limiter import QuotaLimiter, hold_until_answered
from airflow_vendorauth.retry import Outcome, RetryPolicy, arun_call, call_flow, retry_arguments, run_call
from airflow_vendorauth.vendors.profile import ConnectionSettings

USER_AGENT = "airflow-vendorauth"


class _Permits:
    """The quota permits of one call: the lease of the request being sent. Each request the call sends (its
    first, a 401's resend with a new token, a DPoP nonce's, a redirect at home: each one more request the
    API counts) takes its permit in the client's request hook, once its token is in hand: none is held
    while the auth flow fetches a token (retries, another process's fetch lock), where its lease would lapse
    and a token request that takes a permit too would wait for the slot its own call holds."""

    def __init__(self, limiter: QuotaLimiter) -> None:
        self.limiter = limiter
        self.lease: str | None = None


#: Where a request sent through the client directly keeps its lease until its answer.
_LEASE = "vendorauth_quota_lease"
#: The call being sent in this thread or task (the request hooks, run by httpx for every request it
#: sends, see it).
_CALL: contextvars.ContextVar[_Permits | None] = contextvars.ContextVar("vendorauth_quota_call", default=None)


class ApiClient:
    """Calls one API with one connection's settings and token provider (see the module docstring)."""

    def __init__(
        self,
        settings: ConnectionSettings,
        provider: TokenProvider,
        *,
        api_headers: Mapping[str, str],
        sensitive_headers: tuple[str, ...],
        policy: RetryPolicy,
        default_pagination: Callable[[], Pagination] | None,
        logger: logging.Logger,
        max_concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        limiter: QuotaLimiter | None = None,
    ) -> None:
        self.settings = settings
        #: The credential's quota: every request sent takes a permit from it (see :mod:`..quota`).
        self.limiter = limiter
        self.provider = provider
        self._auth = VendorAuth(provider, api_headers, settings.base_url)
        self._sensitive_headers = ("Authorization", "DPoP", *sensitive_headers)
        self._urls = ResolvedUrls()
        self._origin: Origin = origin_of(httpx.URL(settings.base_url))
        self._default_pagination = default_pagination
        #: The most pages fetched at once by ``concurrency="auto"`` (the vendor's declared ceiling).
        self.max_concurrency = max_concurrency
        self._windows: list[AdaptiveConcurrency] = []
        self._transport, self._async_transport = transport, async_transport
        self._client: httpx.Client | None = None
        #: The loop whose shared async client this client holds (see :mod:`.pool`).
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._pool_key = (
            provider.key,
            settings.base_url,
            settings.timeout,
            settings.verify,
            tuple(sorted(api_headers.items())),
        )
        self.caller = answers.Caller(settings.vendor, settings.conn_id, self._secrets, self._roles)
        #: API retries made so far (the operator reports them in its progress lines).
        self.retries = 0
        self._retrying = tenacity.Retrying(
            **retry_arguments(
                policy,
                retry_on=lambda exc: isinstance(exc, VendorApiError) and exc.retryable,
                logger=logger,
                what=f"{settings.vendor} API call",
                on_retry=self._on_retry,
            )
        )

    def __repr__(self) -> str:
        return f"ApiClient(vendor={self.settings.vendor!r}, conn_id={self.settings.conn_id!r})"

    @property
    def api_headers(self) -> dict[str, str]:
        """The vendor's headers every API call carries (besides Authorization)."""
        return dict(self._auth.headers)

    def _on_retry(self, exc: BaseException | None) -> None:
        self.retries += 1
        if isinstance(exc, VendorApiError) and (exc.status == 429 or exc.timed_out):
            for window in self._windows:  # the API pushes back: every adaptive scan slows down
                window.throttle()

    def _secrets(self) -> tuple[str, ...]:
        last = self.provider.last_token
        return (*self.settings.secrets, *((last.access_token,) if last else ()))

    def _roles(self) -> tuple[str, ...]:
        last = self.provider.last_token
        return last.roles if last else ()

    # ---- pooled clients ---------------------------------------------------------------------------

    def _strip_if_foreign(self, request: httpx.Request) -> None:
        """Never let credentials follow a request (or a redirect) to another origin; at home, a request
        re-sent by a redirect gets a fresh DPoP proof (:func:`~airflow_vendorauth.auth.dpop.before_send`).

        httpx drops ``Authorization`` on a cross-origin redirect but keeps custom headers such as
        ``Ocp-Apim-Subscription-Key``; this drops both, for redirects and absolute URLs alike.
        """
        if origin_of(request.url) != self._origin:
            for name in self._sensitive_headers:
                request.headers.pop(name, None)
            dpop.forget_binding(request)
        else:
            dpop.before_send(request)  # a redirect at home: a fresh DPoP proof for where it goes now
            if (limiter := self._needs_permit(request)) is not None:
                self._hold(request, limiter.acquire())

    async def _astrip_if_foreign(self, request: httpx.Request) -> None:
        if origin_of(request.url) != self._origin:
            self._strip_if_foreign(request)
            return
        dpop.before_send(request)
        if (limiter := self._needs_permit(request)) is not None:
            self._hold(request, await limiter.aacquire())

    def _needs_permit(self, request: httpx.Request) -> QuotaLimiter | None:
        """The quota the request about to go to the API takes a permit of: the call's (a pooled async
        client's hooks are those of the hook that built it; the previous request's lease is given back here,
        its answer is in), or, sent through :meth:`get_client` directly, this client's (given back by
        :meth:`_answered`)."""
        call = _CALL.get()
        if call is None:
            return self.limiter
        if call.lease is not None:
            lease, call.lease = call.lease, None
            call.limiter.release(lease)
        return call.limiter

    def _hold(self, request: httpx.Request, lease: str) -> None:
        call = _CALL.get()
        if call is not None:
            call.lease = lease  # given back by the call
        elif self.limiter is not None:
            request.extensions[_LEASE] = hold_until_answered(request, self.limiter, lease)

    def _answered(self, response: httpx.Response) -> None:
        """A request sent through the client directly is answered: its lease back, its headers learnt."""
        held = response.request.extensions.pop(_LEASE, None)
        if held is not None and held.give_back():
            held.limiter.observe(response.status_code, response.headers)

    async def _aanswered(self, response: httpx.Response) -> None:
        self._answered(response)

    def _options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "base_url": s.base_url,
            "auth": self._auth,
            "timeout": s.timeout,
            "verify": s.tls(),
            "follow_redirects": True,
            "headers": {"Accept": "application/json", "User-Agent": USER_AGENT},
        }

    def get_client(self) -> httpx.Client:
        """The pooled client: base URL, auth, vendor headers, timeouts. Reused for every call."""
        if self._client is None:
            hooks: dict[str, list[Callable[..., Any]]] = {"request": [self._strip_if_foreign], "response": [self._answered]}
            self._client = httpx.Client(**self._options(), event_hooks=hooks, transport=self._transport)
            lean_cookies(self._client)
        return self._client

    def aget_client(self) -> httpx.AsyncClient:
        """The async twin of :meth:`get_client`: one pooled client per credential and event loop, shared
        with every other hook of that credential (a triggerer's thousand waits share it; see :mod:`.pool`)."""
        loop = asyncio.get_running_loop()
        if self._async_loop is loop and (held := pool.current(self._pool_key)) is not None:
            return held
        hooks: dict[str, list[Callable[..., Any]]] = {"request": [self._astrip_if_foreign], "response": [self._aanswered]}

        def build() -> httpx.AsyncClient:
            client = httpx.AsyncClient(
                **self._options(), event_hooks=hooks, transport=self._async_transport, limits=pool.LIMITS
            )
            lean_cookies(client)
            return client

        client = pool.acquire(self._pool_key, build)
        self._async_loop = loop
        return client

    async def _release_async_client(self) -> None:
        if self._async_loop is asyncio.get_running_loop():
            self._async_loop = None
            await pool.release(self._pool_key)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.provider.close()

    async def aclose(self) -> None:
        """Let go of the shared async client (the last hook to let go closes it)."""
        await self._release_async_client()

    # ---- calls ----------------------------------------------------------------------------------

    def request(self, method: str, endpoint: str, *, retry_unsafe: bool = False, **kwargs: Any) -> httpx.Response:
        """A 2xx response to ``endpoint`` (appended to the host's path), or a VendorApiError.
        ``kwargs``: ``params``, ``json``, ``data``, ``content``, ``files``, ``headers``, as httpx takes them;
        a body that can be read only once (a generator) is never sent twice (see :mod:`..auth.replay`)."""
        method, client = method.upper(), self.get_client()
        body = BodyReplay.of_call(kwargs)

        def send() -> Outcome:
            body.rewind()  # a retry sends the whole body again: a file back to where it stood
            call = _Permits(self.limiter) if self.limiter else None  # its permits: taken by the request hook
            token = _CALL.set(call)
            try:
                response = client.request(method, self._urls(client, endpoint), **kwargs)
            except httpx.TransportError as exc:
                return exc
            except httpx.StreamConsumed:
                raise self._one_time_body_redirected(method, endpoint) from None
            finally:
                _CALL.reset(token)
                if call is not None and call.lease is not None:
                    call.limiter.release(call.lease)
            if self.limiter:
                self.limiter.observe(response.status_code, response.headers)
            return response

        return run_call(self._flow(method, endpoint, retry_unsafe, body), send)

    async def arequest(
        self, method: str, endpoint: str, *, retry_unsafe: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """The async twin of :meth:`request`: the same decisions, driven on the event loop."""
        method, client = method.upper(), self.aget_client()
        body = BodyReplay.of_call(kwargs)

        async def send() -> Outcome:
            body.rewind()
            call = _Permits(self.limiter) if self.limiter else None  # its permits: taken by the request hook
            token = _CALL.set(call)
            try:
                response = await client.request(method, self._urls(client, endpoint), **kwargs)
            except httpx.TransportError as exc:
                return exc
            except httpx.StreamConsumed:
                raise self._one_time_body_redirected(method, endpoint) from None
            finally:
                _CALL.reset(token)
                if call is not None and call.lease is not None:
                    await call.limiter.arelease(call.lease)
            if self.limiter:
                await self.limiter.aobserve(response.status_code, response.headers)
            return response

        return await arun_call(self._flow(method, endpoint, retry_unsafe, body), send)

    def _flow(self, method: str, endpoint: str, retry_unsafe: bool, body: BodyReplay) -> Any:
        return call_flow(
            self._retrying,
            lambda outcome: answers.accept(self.caller, outcome, method, endpoint, retry_unsafe, body.possible),
        )

    def _one_time_body_redirected(self, method: str, endpoint: str) -> VendorApiError:
        """The auth flow never resends such a body; httpx follows a 307 or 308 by sending it again."""
        return self.caller.error(
            f"{method} {endpoint} for connection {self.settings.conn_id!r} needed its body a second time (a "
            f"redirect with 307 or 308 sends it again) and could not: {ONE_TIME_BODY}",
            status=None,
        )

    def json_body(self, response: httpx.Response, field: str | None = None) -> Any:
        return answers.json_body(self.caller, response, field)

    # ---- paging ---------------------------------------------------------------------------------

    def _strategy(self, options: PagingOptions) -> Pagination:
        if options.pagination is not None:
            return options.pagination
        if self._default_pagination is None:
            raise ValueError(f"{self.settings.vendor} has no default pagination; pass one")
        return self._default_pagination()

    def _where(self, endpoint: str) -> str:
        return f"{self.settings.vendor} {endpoint} (connection {self.settings.conn_id!r})"

    def page_batches(self, endpoint: str, options: PagingOptions) -> Iterator[PageBatch]:
        """Each page's records and the request of the next page, one page in memory at a time."""

        window, threads = window_for(options, self.max_concurrency)  # the driver runs `threads` fetches at once

        def fetch(page: PageRequest) -> httpx.Response:
            params = None if page.url else page.params
            return self.request("GET", page.url or endpoint, params=params, headers=options.headers)

        with self._listening(window):
            yield from page_batches(fetch, self._strategy(options), options, self._where(endpoint), window, threads)

    async def apage_batches(self, endpoint: str, options: PagingOptions) -> AsyncGenerator[PageBatch, None]:
        """The async twin of :meth:`page_batches`."""

        window, _ = window_for(options, self.max_concurrency)  # the driver holds its gate around each fetch

        async def fetch(page: PageRequest) -> httpx.Response:
            params = None if page.url else page.params
            return await self.arequest("GET", page.url or endpoint, params=params, headers=options.headers)

        # aclosing: a scan closed early closes the driver's now (its pages cancelled and ended before this
        # returns), not when the loop's async-generator finalizer gets round to it
        scan = apage_batches(fetch, self._strategy(options), options, self._where(endpoint), window)
        with self._listening(window):
            async with aclosing(scan):
                async for batch in scan:
                    yield batch

    @contextmanager
    def _listening(self, window: Window) -> Iterator[None]:
        """While a scan runs, its adaptive window hears of the API's throttling."""
        if not isinstance(window, AdaptiveConcurrency):
            yield
            return
        self._windows.append(window)
        try:
            yield
        finally:
            self._windows.remove(window)
