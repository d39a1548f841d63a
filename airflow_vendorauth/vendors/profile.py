"""What a vendor is, declared once: its defaults, its grant, its fields and headers.

A :class:`VendorProfile` is read by the hook (to build requests), by ``get_provider_info`` (the
connection form), by the sandbox (what to expect) and by the README table. Resolving a connection
into :class:`ConnectionSettings` validates every field before any network call, with errors that name
the connection, the field and the fix. Nothing here imports Airflow: a connection arrives as a
:class:`RawConnection`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_vendorauth.auth.errors import ConnectionConfigError
from airflow_vendorauth.auth.grants import TokenRequest

FieldKind = Literal["string", "integer", "number", "boolean"]


@dataclass(frozen=True)
class ExtraField:
    """One connection extra: its form field (label, placeholder) and its rules."""

    name: str
    label: str
    description: str
    placeholder: str = ""
    kind: FieldKind = "string"
    secret: bool = False
    required: bool = False
    #: Required only when this returns True for the connection's extras (Keyavi's mode-dependent ones).
    required_when: Callable[[Mapping[str, Any]], bool] | None = None
    #: Why it is required when ``required_when`` applies, for the error message.
    required_reason: str = ""
    choices: tuple[str, ...] = ()
    default: Any = None

    def is_required(self, extras: Mapping[str, Any]) -> bool:
        return self.required or (self.required_when is not None and self.required_when(extras))


@dataclass(frozen=True)
class RawConnection:
    """The fields of an Airflow Connection, as plain values (the hook builds it)."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"RawConnection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r}, host={self.host!r})"


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    """A validated connection: everything a hook needs, nothing left to check."""

    conn_id: str
    vendor: str
    base_url: str
    token_url: str
    client_id: str
    client_secret: str
    extras: Mapping[str, Any]
    secret_extras: tuple[str, ...]
    timeout: float
    max_retries: int
    verify: bool
    token_cache: str

    def extra(self, name: str) -> Any:
        return self.extras.get(name)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value that must be masked: the client secret and the sensitive extras."""
        values = [self.client_secret] + [str(self.extras[n]) for n in self.secret_extras if self.extras.get(n)]
        return tuple(values)

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(conn_id={self.conn_id!r}, vendor={self.vendor!r}, base_url={self.base_url!r}, "
            f"token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret='***', "
            f"token_cache={self.token_cache!r})"
        )


COMMON_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "token_url",
        "Token URL",
        "Overrides the vendor's token endpoint (e.g. a sandbox or a proxy). Leave empty for the default.",
        placeholder="https://login.example.com/oauth2/token",
    ),
    ExtraField(
        "timeout", "Timeout (seconds)", "Per-request timeout for token and API calls.", "30", "number", default=30.0
    ),
    ExtraField(
        "max_retries",
        "Max retries",
        "Retries of a transient failure (connection error, timeout, 429, 5xx) before giving up.",
        "4",
        "integer",
        default=4,
    ),
    ExtraField(
        "verify",
        "Verify TLS",
        "TLS certificate verification. Turn off only for a private test host.",
        kind="boolean",
        default=True,
    ),
    ExtraField(
        "token_cache",
        "Token cache",
        "Where tokens are shared: memory (this process), file (this machine's tasks) or a Redis URL (every worker).",
        placeholder="memory | file | redis://127.0.0.1:6379/0",
        default="memory",
    ),
)

MAX_RETRIES_LIMIT = 20
MAX_TIMEOUT_SECONDS = 3600.0


def is_loopback(hostname: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost, judged on the parsed hostname, never on a prefix."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


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
            token_cache=str(extras["token_cache"]),
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
                value = _coerce(spec, value, fail)
            values[spec.name] = value
        for spec in self.all_fields:
            if values[spec.name] is None and spec.is_required(values):
                reason = f" {spec.required_reason}" if spec.required_when and not spec.required else ""
                raise fail(spec.name, f"is missing{reason}", f"set the extra {spec.name!r}: {spec.description}")
        _check_token_cache(values["token_cache"], fail)
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


def check_url(url: str, name: str, fail: Callable[..., ConnectionConfigError]) -> None:
    """An absolute http(s) URL, https unless its parsed host is loopback."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise fail(name, f"is not a valid URL ({exc})", "write a URL such as https://api.example.com") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise fail(name, f"is not an http(s) URL ({url!r})", "write a URL such as https://api.example.com")
    if parts.scheme == "http" and not is_loopback(hostname):
        raise fail(
            name,
            f"uses plain http for {hostname!r}",
            "use https (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)",
        )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _coerce(spec: ExtraField, value: Any, fail: Callable[..., ConnectionConfigError]) -> Any:
    """Values from the UI arrive as strings, from JSON as their types: accept both, refuse the rest."""
    if spec.kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise fail(spec.name, f"is {value!r}, not a boolean", "use true or false")
    if spec.kind in ("integer", "number"):
        if isinstance(value, bool):
            raise fail(spec.name, f"is {value!r}, not a number", f"give a number, e.g. {spec.default}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise fail(spec.name, f"is {value!r}, not a number", f"give a number, e.g. {spec.default}") from None
        if spec.kind == "integer":
            if number != int(number):
                raise fail(spec.name, f"is {value!r}, not a whole number", f"give a whole number, e.g. {spec.default}")
            if not 0 <= number <= MAX_RETRIES_LIMIT:
                raise fail(spec.name, f"is {value!r}, out of range", f"give 0 to {MAX_RETRIES_LIMIT}")
            return int(number)
        if not 0 < number <= MAX_TIMEOUT_SECONDS:
            raise fail(
                spec.name,
                f"is {value!r}, out of range",
                f"give a number of seconds above 0, up to {MAX_TIMEOUT_SECONDS:.0f}",
            )
        return number
    if not isinstance(value, str):
        raise fail(spec.name, f"is a {type(value).__name__}, not text", "give it as a string")
    if spec.choices and value not in spec.choices:
        raise fail(spec.name, f"is {value!r}", f"use one of {', '.join(spec.choices)}")
    return value


def _check_token_cache(value: str, fail: Callable[..., ConnectionConfigError]) -> None:
    if value in ("memory", "file"):
        return
    parts = urlsplit(value)
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return
    raise fail(
        "token_cache",
        f"is {value!r}",
        "use memory, file, or a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)",
    )
