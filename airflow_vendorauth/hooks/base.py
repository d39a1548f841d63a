"""VendorHook: the Airflow side of every vendor hook. A vendor's hook only names its profile.

The hook is the only place that reads an Airflow Connection. It turns it (once) into validated
settings, registers the secrets with Airflow's masker, wires a :class:`TokenProvider` (with the shared
cache the connection asks for) and an :class:`ApiClient`, and answers the UI's Test button. Every HTTP
call is the client's; the hook's methods of that kind only hand over to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from airflow.sdk import BaseHook

from airflow_vendorauth.auth.warn_once import warn_once
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.hooks.async_connections import read_connection
from airflow_vendorauth.hooks.masking import mask
from airflow_vendorauth.hooks.test_report import shown_on_the_cli
from airflow_vendorauth.hooks.wiring import credential_key
from airflow_vendorauth.retry import RetryPolicy
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.profile import ConnectionSettings, RawConnection, VendorProfile

__all__ = ["VendorHook", "credential_key", "hook_for_connection", "hook_for_connection_async"]

if TYPE_CHECKING:
    # The token machinery, the API client and the paging engine are imported where a task first uses
    # them (:attr:`VendorHook.client`, the paging methods), not when a DAG file imports the hook: the DAG
    # processor pays every module-level import on every parse (benchmarks/import_time.py measures it).
    from airflow.sdk import Connection
    from typing_extensions import Unpack

    from airflow_vendorauth.auth.token import AccessToken
    from airflow_vendorauth.client.api_client import ApiClient
    from airflow_vendorauth.pagination.walk import PageBatch, PagingKwargs, PagingOptions


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

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's relabelled standard fields for Airflow 3.1, which does not read ``ui-field-behaviour``
        from ``get_provider_info()`` (3.2 and later do, and then ignore this)."""
        from airflow_vendorauth.get_provider_info import ui_field_behaviour

        return ui_field_behaviour(cls.profile)

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
        self._transports = (transport, async_transport)
        self._settings: ConnectionSettings | None = None
        self._client: ApiClient | None = None
        self._redis_connection: Any = None  # the connection ``cache: redis_conn_id:<id>`` names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    # ---- the connection, read once ------------------------------------------------------------------

    def use_connection(self, conn: Connection) -> ConnectionSettings:
        """Validate an already-read connection and keep it (the operators read it once, to pick the hook)."""
        try:
            extra = conn.extra_dejson
        except Exception:  # noqa: BLE001 - Airflow raises several types for a malformed extra
            raise ConnectionConfigError(
                self.conn_id, "extra", "is not valid JSON", "write the extras as a JSON object"
            ) from None
        raw = RawConnection(self.conn_id, conn.conn_type, conn.host, conn.login, conn.password, conn.port, extra)
        settings = self.profile.resolve(raw)
        for secret in settings.secrets:
            mask(secret)
        if settings.unknown_extras:
            warn_once(
                self.log,  # type: ignore[arg-type]
                f"unknown-extras:{self.conn_id}:{settings.unknown_extras}",
                "Connection %r: %s",
                self.conn_id,
                settings.unknown_extras,
            )
        self._settings = settings
        return settings

    @property
    def settings(self) -> ConnectionSettings:
        """The validated connection (read once per hook)."""
        return self._settings or self.use_connection(self.get_connection(self.conn_id))

    async def asettings(self) -> ConnectionSettings:
        """The async twin of :attr:`settings`: triggers must read connections with the async API."""
        settings = self._settings or self.use_connection(await read_connection(self.conn_id))
        if (redis_conn_id := settings.token_cache.redis_conn_id) and self._redis_connection is None:
            try:
                self._redis_connection = await read_connection(redis_conn_id)
            except Exception:  # noqa: BLE001 - Airflow raises its own not-found exception
                raise self._unreadable_redis_connection(redis_conn_id) from None
        return settings

    def _redis_connection_of(self, settings: ConnectionSettings) -> Any:
        """The Airflow connection ``cache: redis_conn_id:<id>`` names (read once per hook)."""
        if (redis_conn_id := settings.token_cache.redis_conn_id) and self._redis_connection is None:
            try:
                self._redis_connection = self.get_connection(redis_conn_id)
            except Exception:  # noqa: BLE001 - Airflow raises its own not-found exception
                raise self._unreadable_redis_connection(redis_conn_id) from None
        return self._redis_connection

    def _unreadable_redis_connection(self, redis_conn_id: str) -> ConnectionConfigError:
        return ConnectionConfigError(
            self.conn_id,
            "cache",
            f"names the Airflow connection {redis_conn_id!r}, which cannot be read",
            f"create a connection {redis_conn_id!r} of type redis (host, port, password; extra db, ssl), or "
            "correct the id after redis_conn_id:",
            label="Token cache",
        )

    # ---- wiring: token provider and API client --------------------------------------------------------

    @property
    def client(self) -> ApiClient:
        """The API client of this hook (built on first use, after the connection was validated)."""
        if self._client is None:
            from airflow_vendorauth.hooks.wiring import build_client

            self._client = build_client(self, self.settings, self._redis_connection_of(self.settings))
        return self._client

    # ---- tokens ------------------------------------------------------------------------------------

    def get_token(self, force_refresh: bool = False) -> AccessToken:
        """A valid token: from a cache while it is fresh, else fetched (single flight per credential)."""
        return self.client.provider.get_token(force_refresh=force_refresh)

    async def aget_token(self, force_refresh: bool = False) -> AccessToken:
        await self.asettings()
        return await self.client.provider.aget_token(force_refresh=force_refresh)

    @property
    def token_requests(self) -> int:
        """Token requests this hook sent (0 when every token came from a cache)."""
        return self._client.provider.requests_sent if self._client else 0

    @property
    def api_retries(self) -> int:
        return self._client.retries if self._client else 0

    # ---- HTTP, handed to the client ---------------------------------------------------------------------

    def get_client(self) -> httpx.Client:
        """The hook's pooled ``httpx.Client``: base URL, auth, vendor headers, timeouts."""
        return self.client.get_client()

    get_conn = get_client

    async def aget_client(self) -> httpx.AsyncClient:
        await self.asettings()
        return self.client.aget_client()

    def request(self, method: str, endpoint: str, *, retry_unsafe: bool = False, **kwargs: Any) -> httpx.Response:
        """A 2xx response to ``endpoint`` (appended to the host's path) or a :class:`VendorApiError` with the
        status and the vendor's (redacted) words. ``kwargs``: ``params``, ``json``, ``data``, ``headers``.
        ``retry_unsafe=True`` lets a POST/PATCH be retried after it may have reached the server."""
        return self.client.request(method, endpoint, retry_unsafe=retry_unsafe, **kwargs)

    async def arequest(
        self, method: str, endpoint: str, *, retry_unsafe: bool = False, **kwargs: Any
    ) -> httpx.Response:
        await self.asettings()
        return await self.client.arequest(method, endpoint, retry_unsafe=retry_unsafe, **kwargs)

    def json_body(self, response: httpx.Response, field: str | None = None) -> Any:
        """The JSON body (or one field of it) of a 2xx answer, or a clear error for an HTML page at 200."""
        return self.client.json_body(response, field)

    def page_batches(self, endpoint: str, options: PagingOptions | None = None) -> Iterator[PageBatch]:
        """Each page's records and the request of the page after it (a checkpoint), one page at a time."""
        from airflow_vendorauth.pagination.walk import PagingOptions

        return self.client.page_batches(endpoint, options or PagingOptions())

    def paginate(self, endpoint: str, **options: Unpack[PagingKwargs]) -> Iterator[Any]:
        """Every record of every page of ``endpoint``, one page in memory at a time. ``options``: the
        fields of :class:`PagingOptions` (``params``, ``pagination``, ``max_records``, ``concurrency``...)."""
        from airflow_vendorauth.pagination.walk import PagingOptions

        for batch in self.client.page_batches(endpoint, PagingOptions(**options)):
            yield from batch.records

    async def apaginate(self, endpoint: str, **options: Unpack[PagingKwargs]) -> AsyncIterator[Any]:
        """The async twin of :meth:`paginate`: the same records, in the same order."""
        from airflow_vendorauth.pagination.walk import PagingOptions

        await self.asettings()
        async with contextlib.aclosing(self.client.apage_batches(endpoint, PagingOptions(**options))) as scan:
            async for batch in scan:  # closed early: the scan's pages have ended when this closes
                for record in batch.records:
                    yield record

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def __enter__(self) -> VendorHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the UI's Test button ---------------------------------------------------------------------------

    @shown_on_the_cli  # `airflow connections test` shows a success's message too
    def test_connection(self) -> tuple[bool, str]:
        """Prove the credential at the token endpoint (never a cache): its lifetime, or the vendor's reason.
        A rotating refresh token is spent only through Redis, where the workers find its successor
        (``hooks/connection_check.py``)."""
        from airflow_vendorauth.hooks.connection_check import check_connection

        return check_connection(self)


def hook_for_connection(conn_id: str) -> VendorHook:
    """The hook of a connection's type, chosen the way Airflow chooses it (``Connection.get_hook()``),
    with the connection read once. Operators take any connection of a type this provider serves."""
    return _hook_of(BaseHook.get_connection(conn_id), conn_id)


async def hook_for_connection_async(conn_id: str) -> VendorHook:
    """:func:`hook_for_connection` for triggers, which must read connections with the async API."""
    return _hook_of(await read_connection(conn_id), conn_id)


def _hook_of(conn: Connection, conn_id: str) -> VendorHook:
    try:
        hook = conn.get_hook()
    except Exception:  # noqa: BLE001 - Airflow raises its own exception for an unknown type
        hook = None
    if not isinstance(hook, VendorHook):
        raise ConnectionConfigError(
            conn_id, "conn_type", f"is {conn.conn_type!r}, not a type this provider serves", f"use one of {', '.join(VENDORS)}"
        )
    hook.use_connection(conn)
    return hook
