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

from airflow_vendorauth.auth.assertions import KeyMaterialError, signer_for
from airflow_vendorauth.auth.federated import AssertionFile, AssertionFileError
from airflow_vendorauth.auth.grants import MTLS_CLIENT_AUTH, Attempt, ClientAuthMethod, ClientCredentials, TokenRequest
from airflow_vendorauth.auth.mtls import ClientCertificate
from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import COMMON_FIELDS, ExtraField, coerce
from airflow_vendorauth.vendors.settings import (
    ConnectionSettings,
    RawConnection,
    TokenCacheSetting,
    check_url,
    is_loopback,
)
from airflow_vendorauth.vendors.unknown_extras import UnknownExtra, describe, find_unknown, refuse_misleading

__all__ = ["ConnectionSettings", "ExtraField", "RawConnection", "VendorProfile"]


#: Client authentication styles that need no client secret.
SECRETLESS_CLIENT_AUTH = ("private_key_jwt", "federated", *MTLS_CLIENT_AUTH, "none")


@dataclass(frozen=True)
class VendorProfile:
    """A vendor (or the generic ``oauth2`` type), described once."""

    conn_type: str
    display_name: str
    hook_class_name: str
    default_host: str | None
    #: May use ``{host}`` and any extra by name (``{tenant_id}``); None: the connection gives the token URL
    #: (``auth_url``) or an ``issuer`` whose discovery document names it.
    token_url_template: str | None
    build_token_request: Callable[[ConnectionSettings, Attempt], TokenRequest]
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
    #: The default pagination strategy of this connection (a factory: pagination is imported lazily).
    default_pagination: Callable[[ConnectionSettings], Any] | None = None
    #: Headers that must never follow a request to another origin (besides Authorization).
    header_names: Callable[[ConnectionSettings], tuple[str, ...]] = lambda settings: ()
    #: The most pages ``concurrency="auto"`` fetches at once: what the vendor tolerates per credential.
    max_concurrency: int = 4
    #: The grant's refresh token seed extra, for ``grant_type=refresh_token`` (the oauth2 type).
    refresh_seed: Callable[[ConnectionSettings], str | None] = lambda settings: None
    #: Fills what the connection leaves empty from the platform's environment (AKS workload identity).
    environment_defaults: Callable[[RawConnection], RawConnection] = lambda raw: raw

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

    def label_of(self, name: str) -> str:
        """The connection form's word for a field."""
        standard = {"host": "API base URL", "login": self.login_label, "password": self.password_label}
        return standard.get(name) or next((f.label for f in self.all_fields if f.name == name), name)

    # ---- resolution and validation ---------------------------------------------------------------

    def resolve(self, raw: RawConnection) -> ConnectionSettings:
        """Validate a connection and return its settings, or raise ConnectionConfigError."""
        conn_id = raw.conn_id

        def fail(name: str, problem: str, fix: str) -> ConnectionConfigError:
            return ConnectionConfigError(conn_id, name, problem, fix, label=self.label_of(name))

        if raw.conn_type and raw.conn_type != self.conn_type:
            raise fail(
                "conn_type",
                f"is {raw.conn_type!r} but this hook is for {self.conn_type!r}",
                f"set conn_type to {self.conn_type!r} or use the hook for {raw.conn_type!r}",
            )
        raw = self.environment_defaults(raw)
        extras, unknown, given = self._read_extras(raw, fail)
        base_url = self._base_url(raw, fail)
        client_id = _text(raw.login)
        if not client_id:
            raise fail("login", "is empty", f"fill in {self.login_label}")
        client_secret = _text(raw.password)
        if not client_secret and extras.get("client_auth") not in SECRETLESS_CLIENT_AUTH:
            raise fail("password", "is empty", f"fill in {self.password_label}")
        token_url, issuer = self._token_url(base_url, extras, fail)
        settings = ConnectionSettings(
            conn_id=conn_id,
            vendor=self.display_name,
            base_url=base_url,
            token_url=token_url,
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            extras=extras,
            secret_extras=self.secret_extras,
            timeout=float(extras["timeout"]),
            max_retries=int(extras["max_retries"]),
            verify=extras["verify"],
            token_cache=TokenCacheSetting.parse(str(extras["cache"]), fail),
            unknown_extras=describe(unknown, self.display_name) if unknown else None,
            client_certificate=client_certificate(extras, fail),
        )
        if extras.get("client_auth") == "private_key_jwt":
            check_key_material(settings, fail)
        if self.refresh_seed(settings) is not None and "cache" not in given:
            raise fail(
                "cache",
                "is not set, and this connection spends a rotating refresh token: with the default (memory) its "
                "successor would die with the task's process, and the next run would present a spent one (the "
                "chain lost; a server following RFC 9700 may revoke the grant)",
                "set Token cache to a Redis every worker reaches (a redis:// URL or redis_conn_id:<id>); file if "
                "every task runs on this one machine; or write memory to accept a chain that lives as long as one process",
            )
        self.validate(settings)
        return settings

    def _read_extras(
        self, raw: RawConnection, fail: Callable[..., ConnectionConfigError]
    ) -> tuple[dict[str, Any], tuple[UnknownExtra, ...], set[str]]:
        """The value of every declared extra (defaults filled in), the keys no field reads, and the fields
        the connection gave (not defaulted)."""
        if not isinstance(raw.extra, Mapping):
            raise fail("extra", "is not a JSON object", 'write the extras as a JSON object, e.g. {"timeout": 30}')
        values: dict[str, Any] = {}
        given: set[str] = set()
        for spec in self.all_fields:
            value = spec.read(raw.extra, self.conn_type)
            if value is not None:
                given.add(spec.name)
            if isinstance(value, str):
                value = value.strip()
            if value is None or value == "":
                value = spec.default
            if value is not None:
                value = coerce(spec, value, fail)
            values[spec.name] = value
        unknown = find_unknown(self.all_fields, self.conn_type, raw.extra)
        refuse_misleading(unknown, self.all_fields, values, given, self.display_name, self.conn_type, fail)
        for spec in self.all_fields:
            if values[spec.name] is None and spec.is_required(values):
                reason = f" {spec.required_reason}" if spec.required_when and not spec.required else ""
                raise fail(spec.name, f"is missing{reason}", f"fill in {spec.label}: {spec.description}")
        return values, unknown, given

    def _base_url(self, raw: RawConnection, fail: Callable[..., ConnectionConfigError]) -> str:
        host = _text(raw.host) or self.default_host
        if not host:
            raise fail("host", "is empty", f"fill in the API base URL, e.g. {self.host_placeholder}")
        if "://" not in host:
            raise fail("host", f"has no scheme ({host!r})", f"write the full URL, e.g. {suggest_scheme(host)}")
        parts = urlsplit(host)
        if raw.port and not parts.port:
            host = f"{parts.scheme}://{parts.hostname}:{raw.port}{parts.path}"
        check_url(host, "host", fail)
        return host.rstrip("/")

    def _token_url(
        self, base_url: str, extras: Mapping[str, Any], fail: Callable[..., ConnectionConfigError]
    ) -> tuple[str | None, str | None]:
        """The token URL, or (for discovery) the issuer whose metadata names it."""
        url = extras.get("auth_url")
        if not url and self.token_url_template is None:
            issuer = extras.get("issuer")
            if not issuer:
                raise fail("auth_url", "is missing", "fill in Token URL, or Issuer to discover it")
            check_url(str(issuer), "issuer", fail)
            return None, str(issuer).rstrip("/")
        if not url:
            assert self.token_url_template is not None
            needed = [n for n in ("tenant_id",) if "{" + n + "}" in self.token_url_template]
            for name in needed:
                if not extras.get(name):
                    raise fail(name, "is missing", f"fill in {self.label_of(name)}, or give the full Token URL")
            url = self.token_url_template.format(host=base_url, **{n: extras[n] for n in needed})
        check_url(str(url), "auth_url", fail)
        return str(url), None


def check_key_material(settings: ConnectionSettings, fail: Callable[..., ConnectionConfigError]) -> None:
    """A private key (and certificate) that can sign client assertions, checked before any request."""
    s = settings
    try:
        signer_for(s.client_id, s.extra("private_key"), s.extra("certificate"), s.extra("key_id"))
    except KeyMaterialError as exc:
        field = "certificate" if "certificate" in str(exc) and "belong" not in str(exc) else "private_key"
        raise fail(field, str(exc), "paste the PEM text of the key (and certificate) registered for this client") from None


def client_certificate(
    extras: Mapping[str, Any], fail: Callable[..., ConnectionConfigError]
) -> ClientCertificate | None:
    """The mutual TLS certificate and key, when given, checked before any request (they must pair)."""
    certificate, key = extras.get("client_certificate"), extras.get("client_private_key")
    if not certificate and not key:
        return None
    if not certificate or not key:
        missing = "client_certificate" if not certificate else "client_private_key"
        raise fail(missing, "is missing (mutual TLS needs the certificate and its key)", "fill in both, or neither")
    pair = ClientCertificate(str(certificate), str(key))
    try:
        pair.check()
    except KeyMaterialError as exc:
        field = "client_certificate" if "certificate (" in str(exc) else "client_private_key"
        raise fail(field, str(exc), "paste the PEM text of the client certificate and of its own key") from None
    return pair


def assertion_reader(settings: ConnectionSettings) -> Callable[[], str]:
    """``client_auth: federated``: reads the assertion file at each call; a file that cannot work raises
    ConnectionConfigError naming the connection, the file and the fix (before any request is sent)."""
    source = AssertionFile(str(settings.extra("assertion_file")))

    def read() -> str:
        try:
            return source.read()
        except AssertionFileError as exc:
            raise ConnectionConfigError(
                settings.conn_id, "assertion_file", f"({exc.path}) {exc.problem}", exc.fix, label="Assertion file"
            ) from None

    return read


def client_credentials(settings: ConnectionSettings, default: ClientAuthMethod) -> ClientCredentials:
    """How the connection's client authenticates: its ``client_auth`` extra, else the type's default."""
    s = settings
    method = s.extra("client_auth") or default
    signer = (
        signer_for(s.client_id, s.extra("private_key"), s.extra("certificate"), s.extra("key_id"))
        if method == "private_key_jwt"
        else None
    )
    assertion = assertion_reader(s) if method == "federated" else None
    return ClientCredentials(s.client_id, method, s.client_secret, signer, assertion)


def suggest_scheme(host: str) -> str:
    """``host`` with the scheme that will work: http on loopback (where the sandbox serves plain http and
    https would fail its TLS handshake), https everywhere else (plain http is refused there)."""
    try:
        hostname = urlsplit(f"//{host}").hostname
    except ValueError:
        hostname = None
    return f"{'http' if is_loopback(hostname) else 'https'}://{host}"


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
