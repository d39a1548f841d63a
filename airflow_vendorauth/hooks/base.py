"""VendorHook: the Airflow side of every vendor hook. A vendor's hook only names its profile.

The hook is the only place that reads an Airflow Connection. It turns it (once) into validated
settings, registers the secrets with Airflow's masker, wires a :class:`TokenProvider` (with the shared
cache the connection asks for) and an :class:`ApiClient`, and answers the UI's Test button. Every HTTP
call is the client's; the hook's methods of that kind only hand over to it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from airflow.sdk import BaseHook

from airflow_vendorauth.auth.cache import cache_key
from airflow_vendorauth.auth.grants import MTLS_CLIENT_AUTH
from airflow_vendorauth.auth.warn_once import warn_once
from airflow_vendorauth.exceptions import ConnectionConfigError, VendorAuthError
from airflow_vendorauth.hooks.async_connections import read_connection
from airflow_vendorauth.hooks.masking import mask
from airflow_vendorauth.retry import RetryPolicy
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.profile import ConnectionSettings, RawConnection, VendorProfile

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
            from airflow_vendorauth.auth import dpop
            from airflow_vendorauth.auth.provider import TokenProvider
            from airflow_vendorauth.auth.token_endpoint import TokenEndpoint
            from airflow_vendorauth.client.api_client import ApiClient
            from airflow_vendorauth.hooks.shared_cache import shared_cache_for

            s, profile = self.settings, self.profile
            policy = self._retry_policy or RetryPolicy.from_max_retries(s.max_retries)
            key = credential_key(profile, s)
            endpoint = TokenEndpoint(
                vendor=profile.display_name,
                conn_id=self.conn_id,
                build=lambda attempt: profile.build_token_request(s, attempt),
                token_url=s.token_url,
                issuer=s.issuer,
                policy=policy,
                timeout=s.timeout,
                verify=s.tls(),
                logger=self.log,  # type: ignore[arg-type]
                expect_jwt=profile.issues_jwt,
                labels={"login": profile.login_label, "password": _credential_label(profile, s)},
                transport=self._transports[0],
                proof_key=dpop.key_for(key) if s.extras.get("dpop") else None,
                mtls=s.client_certificate is not None,
            )
            provider = TokenProvider(
                endpoint,
                key=key,
                shared=shared_cache_for(  # type: ignore[arg-type]
                    s.token_cache, logger=self.log, redis_connection=self._redis_connection_of(s)  # type: ignore[arg-type]
                ),
                refresh_seed=profile.refresh_seed(s),
                on_new_token=lambda token: mask(token.access_token),
                logger=self.log,  # type: ignore[arg-type]
            )
            default_pagination = profile.default_pagination
            self._client = ApiClient(
                s,
                provider,
                api_headers=profile.api_headers(s),
                sensitive_headers=profile.header_names(s),
                policy=policy,
                default_pagination=(lambda: default_pagination(s)) if default_pagination else None,
                logger=self.log,  # type: ignore[arg-type]
                max_concurrency=s.extra("max_concurrency") or profile.max_concurrency,
                transport=self._transports[0],
                async_transport=self._transports[1],
            )
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
        async for batch in self.client.apage_batches(endpoint, PagingOptions(**options)):
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

    def test_connection(self) -> tuple[bool, str]:
        """Prove the credential at the token endpoint (never a cache): its lifetime, or the vendor's reason.

        A rotating refresh token is never spent where the workers could not see the next one: with a
        shared cache (file, Redis) Test refreshes under the cache's lock and stores the next token there,
        as a worker would; with ``cache: memory`` (the api-server's memory is no worker's) it checks the
        token endpoint and the client credentials with a refresh token that cannot exist, and says that
        the refresh token itself was not spent.
        """
        try:
            provider = self.client.provider
            if provider.rotating and provider.shared is None:
                checked = provider.check_refresh_client()
                return True, (
                    f"{self.profile.display_name}: {checked}. The refresh token was not spent: with Token cache "
                    "memory the next one would stay in this process, out of the workers' reach. Set Token cache "
                    "to Redis (or file) to have Test refresh it under the workers' lock"
                )
            token = self.get_token(force_refresh=True)
        except VendorAuthError as error:
            self.log.info("Test of connection %r failed: %s", self.conn_id, error)
            return False, error.summary + self._unknown_note()
        roles = f"; roles: {', '.join(token.roles)}" if token.roles else ""
        message = f"{self.profile.display_name} token obtained, valid for {token.seconds_left()} s{roles}"
        return True, message + self._unknown_note()

    def _unknown_note(self) -> str:
        """Test's word on extras the type does not know (empty when there are none or none were read)."""
        unknown = self._settings.unknown_extras if self._settings else None
        return f". Note: {unknown}" if unknown else ""


def _credential_label(profile: VendorProfile, s: ConnectionSettings) -> str:
    """What proves the client, in the form's words, for the fix of a refusal."""
    method = s.extra("client_auth")
    if method == "private_key_jwt":
        return "Private key and Certificate (as registered with the identity provider)"
    if method == "federated":
        return "Assertion file (its token's issuer and subject must match a federated credential of the client)"
    if method in MTLS_CLIENT_AUTH:
        return "Client certificate (as registered for the client, or issued by the CA the server trusts)"
    return "Client ID alone (a public client)" if method == "none" else profile.password_label


def credential_key(profile: VendorProfile, s: ConnectionSettings) -> str:
    """The credential's fingerprint: everything that makes another token (never a secret in clear)."""
    identity = [s.extra(name) for name in profile.identity_extras]
    return cache_key(profile.conn_type, s.token_url or s.issuer, s.client_id, s.client_secret, *map(_text, identity))


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return None if value is None else str(value)


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
