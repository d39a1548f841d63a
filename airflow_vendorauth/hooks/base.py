"""VendorHook: the one hook all five vendors share. A vendor's hook only names its profile.

This is the only place that reads an Airflow Connection. It turns the connection into validated
settings (before any network call), a :class:`TokenProvider` and one pooled ``httpx`` client (sync,
and one async client per event loop), and makes authenticated calls with tenacity retries on
transient failures only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import tenacity
from airflow.sdk import BaseHook

from airflow_vendorauth.auth.cache import cache_key
from airflow_vendorauth.auth.errors import ConnectionConfigError, VendorApiError, VendorAuthError, vendor_error_fields
from airflow_vendorauth.auth.httpx_auth import Origin, VendorAuth, origin_of
from airflow_vendorauth.auth.provider import TokenProvider
from airflow_vendorauth.auth.redact import excerpt
from airflow_vendorauth.auth.retry import TRANSIENT_STATUSES, RetryPolicy, parse_retry_after, retry_arguments
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.vendors.profile import ConnectionSettings, RawConnection, VendorProfile

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_vendorauth.pagination import PageRequest, Pagination, PaginationStats

#: Methods that may be sent twice without harm; POST and PATCH are retried only when the request
#: provably never reached the server (a connect error) or was refused with 429, unless the caller opts in.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NEVER_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
USER_AGENT = "airflow-vendorauth"


def _vendor_message(text: str) -> str:
    """The vendor's own words from an error body, else a short excerpt of it."""
    try:
        body = json.loads(text)
    except ValueError:
        return excerpt(text, 200)
    error, description, _ = vendor_error_fields(body)
    said = ": ".join(p for p in (error, description) if p)
    return excerpt(said, 300) if said else excerpt(text, 200)


class VendorHook(BaseHook):
    """Token-aware HTTP hook for an OAuth-protected vendor API (see the subclasses)."""

    profile: ClassVar[VendorProfile]
    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "profile" in cls.__dict__:
            cls.conn_name_attr = cls.profile.conn_name_attr
            cls.default_conn_name = cls.profile.default_conn_name
            cls.conn_type = cls.profile.conn_type
            cls.hook_name = cls.profile.display_name

    def __init__(
        self,
        conn_id: str,
        *,
        retry_policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        self.conn_id = conn_id
        self._retry_policy = retry_policy
        self._transport = transport
        self._async_transport = async_transport
        self._settings: ConnectionSettings | None = None
        self._provider: TokenProvider | None = None
        self._auth: VendorAuth | None = None
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_client_loop: asyncio.AbstractEventLoop | None = None
        #: API retries made by this hook so far (the operator reports them in its progress lines).
        self.api_retries = 0
        self._origin: Origin | None = None
        self._retryings: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    # ---- connection -> settings -> token provider --------------------------------------------------

    def _raw_connection(self, conn: Connection) -> RawConnection:
        try:
            extra = conn.extra_dejson
        except Exception:  # noqa: BLE001 - Airflow raises several types for a malformed extra
            raise ConnectionConfigError(
                self.conn_id, "extra", "is not valid JSON", "write the extras as a JSON object"
            ) from None
        return RawConnection(
            conn_id=self.conn_id,
            conn_type=conn.conn_type,
            host=conn.host,
            login=conn.login,
            password=conn.password,
            port=conn.port,
            extra=extra,
        )

    def _adopt(self, settings: ConnectionSettings) -> ConnectionSettings:
        for secret in settings.secrets:
            _mask(secret)
        self._settings = settings
        return settings

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection (read once per hook)."""
        if self._settings is None:
            conn = self.get_connection(self.conn_id)
            self._adopt(self.profile.resolve(self._raw_connection(conn)))
        assert self._settings is not None
        return self._settings

    async def asettings(self) -> ConnectionSettings:
        """The async twin of :attr:`settings`: triggers must read connections with the async API."""
        if self._settings is None:
            conn = await self.aget_connection(self.conn_id)
            self._adopt(self.profile.resolve(self._raw_connection(conn)))
        assert self._settings is not None
        return self._settings

    def _policy(self) -> RetryPolicy:
        if self._retry_policy is None:
            self._retry_policy = RetryPolicy.from_max_retries(self.settings.max_retries)
        return self._retry_policy

    def _token_provider(self) -> TokenProvider:
        if self._provider is None:
            s = self.settings
            request = self.profile.build_token_request(s)
            identity = [s.extra(name) for name in self.profile.identity_extras]
            key = cache_key(self.profile.conn_type, s.token_url, s.client_id, s.client_secret, *map(_str, identity))
            self._provider = TokenProvider(
                vendor=self.profile.display_name,
                conn_id=self.conn_id,
                token_request=request,
                key=key,
                policy=self._policy(),
                timeout=s.timeout,
                verify=s.verify,
                expect_jwt=self.profile.issues_jwt,
                shared=self._shared_cache(s),
                on_new_token=lambda token: _mask(token.access_token),
                logger=self.log,  # type: ignore[arg-type]
                transport=self._transport,
                async_transport=self._async_transport,
            )
        return self._provider

    def _shared_cache(self, settings: ConnectionSettings) -> Any:
        """The file or Redis cache the connection asks for; None for memory, or without a Fernet key."""
        if settings.token_cache == "memory":
            return None
        from airflow_vendorauth.hooks.shared_cache import shared_cache_for

        return shared_cache_for(settings.token_cache, logger=self.log)  # type: ignore[arg-type]

    # ---- tokens ------------------------------------------------------------------------------------

    def get_token(self, force_refresh: bool = False) -> AccessToken:
        """A valid token: from the cache while it is fresh, else fetched (single flight)."""
        return self._token_provider().get_token(force_refresh=force_refresh)

    async def aget_token(self, force_refresh: bool = False) -> AccessToken:
        await self.asettings()
        return await self._token_provider().aget_token(force_refresh=force_refresh)

    @property
    def token_requests(self) -> int:
        """Token requests this hook sent (0 when every token came from a cache)."""
        return self._provider.requests_sent if self._provider else 0

    # ---- clients -----------------------------------------------------------------------------------

    def _vendor_auth(self) -> VendorAuth:
        if self._auth is None:
            self._auth = VendorAuth(
                self._token_provider(), self.profile.api_headers(self.settings), self.settings.base_url
            )
        return self._auth

    def _client_options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "base_url": s.base_url,
            "auth": self._vendor_auth(),
            "timeout": s.timeout,
            "verify": s.verify,
            "follow_redirects": True,
            "headers": {"Accept": "application/json", "User-Agent": USER_AGENT},
        }

    def _strip_if_foreign(self, request: httpx.Request) -> None:
        """Never let credentials follow a request (or a redirect) to another origin.

        httpx drops ``Authorization`` on a cross-origin redirect but keeps custom headers such as
        ``Ocp-Apim-Subscription-Key``; this drops both, for redirects and for absolute URLs alike.
        """
        if self._origin is None:
            self._origin = origin_of(httpx.URL(self.settings.base_url))
        if origin_of(request.url) != self._origin:
            for name in ("Authorization", *self.profile.header_names):
                request.headers.pop(name, None)

    def get_client(self) -> httpx.Client:
        """The hook's pooled client: base URL, auth, vendor headers, timeouts. Reused for every call."""
        if self._client is None:
            self._client = httpx.Client(
                **self._client_options(),
                event_hooks={"request": [self._strip_if_foreign]},
                transport=self._transport,
            )
        return self._client

    get_conn = get_client

    async def aget_client(self) -> httpx.AsyncClient:
        """The async twin of :meth:`get_client`, one per event loop (an AsyncClient must not outlive it)."""
        await self.asettings()
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_client_loop is not loop:

            async def strip(request: httpx.Request) -> None:
                self._strip_if_foreign(request)

            self._async_client = httpx.AsyncClient(
                **self._client_options(), event_hooks={"request": [strip]}, transport=self._async_transport
            )
            self._async_client_loop = loop
        return self._async_client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._provider is not None:
            self._provider.close()

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> VendorHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- requests ------------------------------------------------------------------------------------

    def _api_error(self, message: str, **kwargs: Any) -> VendorApiError:
        last = self._auth.last_token if self._auth else None
        return VendorApiError(
            f"{self.profile.display_name} API {message}",
            vendor=self.profile.display_name,
            conn_id=self.conn_id,
            secrets=(*self.settings.secrets, *((last.access_token,) if last else ())),
            **kwargs,
        )

    def _transport_failure(
        self, exc: httpx.TransportError, method: str, endpoint: str, unsafe_ok: bool
    ) -> VendorApiError:
        retryable = method in IDEMPOTENT_METHODS or unsafe_ok or isinstance(exc, _NEVER_REACHED)
        return self._api_error(
            f"{method} {endpoint} for connection {self.conn_id!r} failed: {type(exc).__name__}: {exc}",
            status=None,
            retryable=retryable,
        )

    def _check(self, response: httpx.Response, method: str, unsafe_ok: bool) -> httpx.Response:
        """Return a 2xx response; otherwise raise the error it deserves (retryable or not)."""
        if response.is_success:
            return response
        status = response.status_code
        said = _vendor_message(response.text)
        path = response.request.url.path
        message = f"{method} {path} for connection {self.conn_id!r} answered HTTP {status}: {said}"
        if status == 401:
            last = self._auth.last_token if self._auth else None
            roles = ", ".join(last.roles) if last else ""
            message += ". A fresh token was refused too: the credential likely lacks the permission for this call" + (
                f" (the token's roles: {roles})" if roles else ""
            )
        elif status == 403:
            message += ". The credential is not allowed this call: ask the vendor for the permission"
        transient = status in TRANSIENT_STATUSES
        raise self._api_error(
            message,
            status=status,
            body=response.text[:2000],
            # A 429 is a refusal: the server did nothing, so even a POST may be sent again.
            retryable=transient and (method in IDEMPOTENT_METHODS or unsafe_ok or status == 429),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def _request_retry_arguments(self) -> dict[str, Any]:
        def count() -> None:
            self.api_retries += 1

        return retry_arguments(
            self._policy(),
            retry_on=lambda exc: isinstance(exc, VendorApiError) and exc.retryable,
            logger=self.log,  # type: ignore[arg-type]
            what=f"{self.profile.display_name} API call",
            on_retry=count,
        )

    def _retrying(self, kind: str) -> Any:
        """One tenacity controller per hook and kind, reused by every call (its state is per thread)."""
        if kind not in self._retryings:
            factory = tenacity.AsyncRetrying if kind == "async" else tenacity.Retrying
            self._retryings[kind] = factory(**self._request_retry_arguments())
        return self._retryings[kind]

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_unsafe: bool = False,
    ) -> httpx.Response:
        """Send an authenticated request to ``endpoint`` (appended to the host's path) and return a 2xx
        response, or raise :class:`VendorApiError` with the status and the vendor's (redacted) words.

        ``retry_unsafe=True`` lets a POST/PATCH be retried after it may have reached the server.
        """
        method = method.upper()
        client = self.get_client()
        for attempt in self._retrying("sync"):
            with attempt:
                try:
                    response = client.request(method, endpoint, params=params, json=json, data=data, headers=headers)
                except httpx.TransportError as exc:
                    raise self._transport_failure(exc, method, endpoint, retry_unsafe) from None
                self._check(response, method, retry_unsafe)
        return response

    async def arequest(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_unsafe: bool = False,
    ) -> httpx.Response:
        """The async twin of :meth:`request`."""
        method = method.upper()
        client = await self.aget_client()
        # a copy per call: tenacity keeps its state per thread, and coroutines share the thread
        async for attempt in self._retrying("async").copy():
            with attempt:
                try:
                    response = await client.request(
                        method, endpoint, params=params, json=json, data=data, headers=headers
                    )
                except httpx.TransportError as exc:
                    raise self._transport_failure(exc, method, endpoint, retry_unsafe) from None
                self._check(response, method, retry_unsafe)
        return response

    def json_body(self, response: httpx.Response, field: str | None = None) -> Any:
        """The JSON body of a 2xx answer (or one field of it), or a VendorApiError that says what came
        instead: a proxy's HTML page at 200 must not reach the user as a JSONDecodeError."""
        from airflow_vendorauth.jsonlib import loads

        path = response.request.url.path
        try:
            body = loads(response.content)
        except ValueError:
            content_type = response.headers.get("content-type", "no content type")
            raise self._api_error(
                f"{response.request.method} {path} for connection {self.conn_id!r} answered HTTP "
                f"{response.status_code} with {content_type} that is not JSON ({excerpt(response.text, 100)!r})",
                status=response.status_code,
            ) from None
        if field is None:
            return body
        if not isinstance(body, dict) or field not in body:
            raise self._api_error(
                f"{response.request.method} {path} for connection {self.conn_id!r} answered without {field!r}",
                status=response.status_code,
            )
        return body[field]

    # ---- pagination ----------------------------------------------------------------------------------

    def default_pagination(self) -> Pagination:
        if self.profile.default_pagination is None:
            raise ValueError(f"{self.profile.display_name} has no default pagination; pass one")
        return self.profile.default_pagination()  # type: ignore[no-any-return]

    def _where(self, endpoint: str) -> str:
        return f"{self.profile.display_name} {endpoint} (connection {self.conn_id!r})"

    def paginate_pages(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        pagination: Pagination | None = None,
        max_pages: int | None = None,
        max_records: int | None = None,
        stats: PaginationStats | None = None,
        start: PageRequest | None = None,
        concurrency: int = 1,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield each page's records (a list), one page in memory at a time. ``start`` resumes a scan
        from a checkpointed :class:`PageRequest` (``stats.next_request`` after each page).
        ``concurrency`` fetches up to that many pages at once where the API announces a total."""
        from airflow_vendorauth.pagination import page_batches

        yield from page_batches(
            lambda p, url: self.request("GET", url or endpoint, params=None if url else p, headers=headers),
            pagination or self.default_pagination(),
            params=params,
            max_pages=max_pages,
            max_records=max_records,
            stats=stats,
            start=start,
            concurrency=concurrency,
            where=self._where(endpoint),
        )

    def paginate(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        pagination: Pagination | None = None,
        max_pages: int | None = None,
        max_records: int | None = None,
        stats: PaginationStats | None = None,
        concurrency: int = 1,
    ) -> Iterator[dict[str, Any]]:
        """Yield the records of every page of ``endpoint``, holding one page in memory at a time
        (``concurrency`` pages at most, when fetching ahead)."""
        for records in self.paginate_pages(
            endpoint,
            params=params,
            pagination=pagination,
            max_pages=max_pages,
            max_records=max_records,
            stats=stats,
            concurrency=concurrency,
        ):
            yield from records

    async def apaginate(
        self,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        pagination: Pagination | None = None,
        max_pages: int | None = None,
        max_records: int | None = None,
        stats: PaginationStats | None = None,
        concurrency: int = 1,
    ) -> AsyncIterator[dict[str, Any]]:
        """The async twin of :meth:`paginate`: the same records, in the same order."""
        from airflow_vendorauth.pagination import aiterate_pages

        async def fetch(p: dict[str, Any], url: str | None) -> httpx.Response:
            return await self.arequest("GET", url or endpoint, params=None if url else p)

        async for record in aiterate_pages(
            fetch,
            pagination or self.default_pagination(),
            params=params,
            max_pages=max_pages,
            max_records=max_records,
            stats=stats,
            concurrency=concurrency,
            where=self._where(endpoint),
        ):
            yield record

    # ---- the UI's Test button ---------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Obtain a fresh token: success with its lifetime, or the vendor's reason."""
        try:
            token = self.get_token(force_refresh=True)
        except VendorAuthError as error:
            return False, str(error)
        roles = f"; roles: {', '.join(token.roles)}" if token.roles else ""
        return True, f"{self.profile.display_name} token obtained, valid for {token.seconds_left()} s{roles}"


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _mask(secret: str) -> None:
    """Register a secret with Airflow's masker (task process and supervisor alike).

    Under ``dag.test()`` / ``airflow dags test`` the supervisor is this very process, and its in-process
    comms log every request at DEBUG, a MaskSecret's value included (Airflow 3.3): there the secret
    is registered locally only, which masks it for that single process all the same.
    """
    from airflow.sdk.execution_time import task_runner

    if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms":
        from airflow.sdk._shared.secrets_masker import mask_secret as mask_locally

        mask_locally(secret)
        return
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def hook_for_connection(conn_id: str, **kwargs: Any) -> VendorHook:
    """The vendor hook that fits a connection's type (the operators choose their hook this way)."""
    import importlib

    from airflow_vendorauth.vendors import VENDORS

    conn = BaseHook.get_connection(conn_id)
    conn_type = conn.conn_type
    profile = VENDORS.get(conn_type or "")
    if profile is None:
        raise ConnectionConfigError(
            conn_id,
            "conn_type",
            f"is {conn_type!r}, not a vendor this provider serves",
            f"use one of {', '.join(VENDORS)}",
        )
    module, _, name = profile.hook_class_name.rpartition(".")
    hook_class: type[VendorHook] = getattr(importlib.import_module(module), name)
    hook = hook_class(conn_id, **kwargs)
    hook._adopt(profile.resolve(hook._raw_connection(conn)))  # the connection is read once
    return hook
