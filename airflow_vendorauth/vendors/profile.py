"""What a vendor is, declared once: its defaults, its grant, its fields and headers.

A :class:`VendorProfile` is read by the hook (to build requests), by ``get_provider_info`` (the
connection form), by the sandbox (what to expect) and by the README table. Resolving a connection
into :class:`ConnectionSettings` validates every field before any network call, with errors that name
the connection, the field and the fix. Nothing here imports Airflow: a connection arrives as a
:class:`RawConnection`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_vendorauth.auth.grants import TokenRequest
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import COMMON_FIELDS, ExtraField, coerce
from airflow_vendorauth.vendors.settings import (
    ConnectionSettings,
    RawConnection,
    TokenCacheSetting,
    check_url,
)

__all__ = ["ConnectionSettings", "ExtraField", "RawConnection", "VendorProfile"]


@dataclass(frozen=True)
class VendorProfile:
    """A vendor, described once."""

    conn_type: str
    display_name: str
    hook_class_name: str
    default_host: str | None
    #: May use ``{host}`` and any extra by name (``{tenant_id}``).
    token_url_template: str
    build_token_request: Callable[[ConnectionSettings], TokenRequest]
    fields: tuple[ExtraField, ...] = ()
    api_headers: Callable[[ConnectionSettings], dict[str, str]] = lambda settings: {}
    #: Extra, vendor-specific rules, run after the generic ones (Keyavi's scope endings).
    validate: Callable[[ConnectionSettings], None] = lambda settings: None
    #: Extras that identify the credential (besides token URL and client id) for the token cache key.
    identity_extras: tuple[str, ...] = ()
    login_label: str = "Client ID"
    password_label: str = "Client secret"
    host_placeholder: str = ""
    #: The vendor's tokens are JWTs: one that does not decode is an error, not a mystery.
    issues_jwt: bool = False
    #: Builds the vendor's default pagination strategy (a factory, so pagination is imported lazily).
    default_pagination: Callable[[], Any] | None = None
    #: Vendor headers that must never follow a request to another origin.
    header_names: tuple[str, ...] = ()

    @property
    def conn_name_attr(self) -> str:
        return f"{self.conn_type}_conn_id"

    @property
    def default_conn_name(self) -> str:
        return f"{self.conn_type}_default"

    @property
    def all_fields(self) -> tuple[ExtraField, ...]:
        return self.fields + COMMON_FIELDS

    @property
    def secret_extras(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.all_fields if f.secret)

    # ---- resolution and validation ---------------------------------------------------------------

    def resolve(self, raw: RawConnection) -> ConnectionSettings:
        """Validate a connection and return its settings, or raise ConnectionConfigError."""
        conn_id = raw.conn_id

        def fail(name: str, problem: str, fix: str) -> ConnectionConfigError:
            return ConnectionConfigError(conn_id, name, problem, fix)

        if raw.conn_type and raw.conn_type != self.conn_type:
            raise fail(
                "conn_type",
                f"is {raw.conn_type!r} but this hook is for {self.conn_type!r}",
                f"set conn_type to {self.conn_type!r} or use the hook for {raw.conn_type!r}",
            )
        extras = self._read_extras(raw, fail)
        base_url = self._base_url(raw, fail)
        client_id = _text(raw.login)
        if not client_id:
            raise fail("login", "is empty", f"set login to the {self.login_label}")
        client_secret = _text(raw.password)
        if not client_secret:
            raise fail("password", "is empty", f"set password to the {self.password_label}")
        token_url = self._token_url(base_url, extras, fail)
        settings = ConnectionSettings(
            conn_id=conn_id,
            vendor=self.display_name,
            base_url=base_url,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            extras=extras,
            secret_extras=self.secret_extras,
            timeout=float(extras["timeout"]),
            max_retries=int(extras["max_retries"]),
            verify=bool(extras["verify"]),
            token_cache=TokenCacheSetting.parse(str(extras["token_cache"]), fail),
        )
        self.validate(settings)
        return settings

    def _read_extras(self, raw: RawConnection, fail: Callable[..., ConnectionConfigError]) -> dict[str, Any]:
        if not isinstance(raw.extra, Mapping):
            raise fail("extra", "is not a JSON object", 'write the extras as a JSON object, e.g. {"timeout": 30}')
        values: dict[str, Any] = {}
        for spec in self.all_fields:
            # Forms of older Airflow versions stored extras as extra__<conn_type>__<name>.
            value = raw.extra.get(spec.name, raw.extra.get(f"extra__{self.conn_type}__{spec.name}"))
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                value = spec.default
            if value is not None:
                value = coerce(spec, value, fail)
            values[spec.name] = value
        for spec in self.all_fields:
            if values[spec.name] is None and spec.is_required(values):
                reason = f" {spec.required_reason}" if spec.required_when and not spec.required else ""
                raise fail(spec.name, f"is missing{reason}", f"set the extra {spec.name!r}: {spec.description}")
        return values

    def _base_url(self, raw: RawConnection, fail: Callable[..., ConnectionConfigError]) -> str:
        host = _text(raw.host) or self.default_host
        if not host:
            raise fail("host", "is empty", f"set host to the API base URL, e.g. {self.host_placeholder}")
        if "://" not in host:
            raise fail("host", f"has no scheme ({host!r})", f"write the full URL, e.g. https://{host}")
        parts = urlsplit(host)
        if raw.port and not parts.port:
            host = f"{parts.scheme}://{parts.hostname}:{raw.port}{parts.path}"
        check_url(host, "host", fail)
        return host.rstrip("/")

    def _token_url(self, base_url: str, extras: Mapping[str, Any], fail: Callable[..., ConnectionConfigError]) -> str:
        url = extras.get("token_url")
        if not url:
            needed = [n for n in ("tenant_id",) if "{" + n + "}" in self.token_url_template]
            for name in needed:
                if not extras.get(name):
                    raise fail(name, "is missing", f"set the extra {name!r} or give the full token_url")
            url = self.token_url_template.format(host=base_url, **{n: extras[n] for n in needed})
        check_url(str(url), "token_url", fail)
        return str(url)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


