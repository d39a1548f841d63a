"""Connection extras: how one is declared (its form field and rules), how its value is read, and the
extras several connection types share, declared once.

Names matter to Airflow: it hides (``***``) every extra whose name contains a sensitive word (``token``,
``secret``, ``password``, ``api_key``, ``private_key``...) in its UI and REST API, and shows the others. So
a secret's name carries such a word (``subscription_api_key``, ``user_password``) and a plain field's name
never does (``auth_url``, ``cache``), while the names earlier releases and the documentation use
(``token_url``, ``token_cache``, ``subscription_key``...) stay accepted as ``aliases`` in JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_vendorauth.auth.grants import MTLS_CLIENT_AUTH
from airflow_vendorauth.exceptions import ConnectionConfigError

FieldKind = Literal["string", "integer", "number", "boolean", "json", "verify", "rate_limit"]


@dataclass(frozen=True)
class ExtraField:
    """One connection extra: its form field (label, help text with an example) and its rules."""

    name: str
    label: str
    description: str
    kind: FieldKind = "string"
    secret: bool = False
    required: bool = False
    #: Required only when this returns True for the connection's extras (mode-dependent ones).
    required_when: Callable[[Mapping[str, Any]], bool] | None = None
    #: Why it is required when ``required_when`` applies, for the error message.
    required_reason: str = ""
    choices: tuple[str, ...] = ()
    default: Any = None
    #: Other names accepted for this extra in JSON (``AIRFLOW_CONN_*``, the CLI, the REST API).
    aliases: tuple[str, ...] = ()
    #: Text for a long value (a PEM key): a text area in the form.
    multiline: bool = False
    #: The range an ``integer`` accepts (0 to :data:`MAX_RETRIES_LIMIT` unless given).
    bounds: tuple[int, int] | None = None
    #: It decides how credentials are sent or kept (where, as what, for whom, bound to what, cached where):
    #: a misspelt name of it is refused, not ignored (:mod:`.unknown_extras`). Secrets count without it.
    credential: bool = False

    @property
    def guards_credentials(self) -> bool:
        """Whether running without this field (its name misspelt) could send or keep credentials otherwise."""
        return self.credential or self.secret

    def is_required(self, extras: Mapping[str, Any]) -> bool:
        return self.required or (self.required_when is not None and self.required_when(extras))

    def read(self, extra: Mapping[str, Any], conn_type: str) -> Any:
        """This field's raw value from a connection's extras, under any of its names."""
        for name in (self.name, *self.aliases, f"extra__{conn_type}__{self.name}"):
            if extra.get(name) not in (None, ""):
                return extra[name]
        return None


MAX_RETRIES_LIMIT = 20
MAX_TIMEOUT_SECONDS = 3600.0
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(spec: ExtraField, value: Any, fail: Callable[..., ConnectionConfigError]) -> Any:
    """Values from the UI arrive as strings, from JSON as their types: accept both, refuse the rest."""
    if spec.kind == "verify" and isinstance(value, str) and value.lower() not in _TRUE | _FALSE:
        if not os.path.isfile(value):
            raise fail(
                spec.name,
                f"is {value!r}, neither true/false nor a CA bundle file that exists here",
                "give true, false, or the path of a PEM CA bundle on every worker, e.g. /etc/ssl/private-ca.pem",
            )
        return value
    if spec.kind in ("boolean", "verify"):
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
            low, high = spec.bounds or (0, MAX_RETRIES_LIMIT)
            if not low <= number <= high:
                raise fail(spec.name, f"is {value!r}, out of range", f"give {low} to {high}")
            return int(number)
        if not 0 < number <= MAX_TIMEOUT_SECONDS:
            raise fail(
                spec.name,
                f"is {value!r}, out of range",
                f"give a number of seconds above 0, up to {MAX_TIMEOUT_SECONDS:.0f}",
            )
        return number
    if spec.kind == "json":
        return _json_object(spec, value, fail)
    if spec.kind == "rate_limit":
        from airflow_vendorauth.quota.spec import RateLimitInvalid, parse_rate_limit

        try:
            return [rate.name for rate in parse_rate_limit(value)]
        except RateLimitInvalid as exc:
            raise fail(spec.name, exc.problem, exc.fix) from None
    if not isinstance(value, str):
        raise fail(spec.name, f"is a {type(value).__name__}, not text", "give it as a string")
    if spec.choices and value not in spec.choices:
        raise fail(spec.name, f"is {value!r}", f"use one of {', '.join(spec.choices)}")
    return value


def _json_object(spec: ExtraField, value: Any, fail: Callable[..., ConnectionConfigError]) -> dict[str, Any]:
    """A JSON object, given as one (JSON connections) or as its text (the form's text field)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise fail(spec.name, f"is not valid JSON ({exc.args[0]})", 'write a JSON object, e.g. {"a": "b"}') from None
    if not isinstance(value, dict):
        raise fail(spec.name, f"is a JSON {type(value).__name__}, not an object", 'write a JSON object, e.g. {"a": "b"}')
    return value


COMMON_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "auth_url",
        "Token URL",
        "Overrides the token endpoint (a sandbox, a proxy). Leave empty for the default. "
        "E.g. https://login.example.com/oauth2/token",
        aliases=("token_url",),
        credential=True,
    ),
    ExtraField("timeout", "Timeout (seconds)", "Per-request timeout of token and API calls.", "number", default=30.0),
    ExtraField(
        "max_retries",
        "Max retries",
        "Retries of a transient failure (connection error, timeout, 429, 5xx) before giving up.",
        "integer",
        default=4,
    ),
    ExtraField(
        "verify",
        "Verify TLS",
        "TLS certificate verification: true, false (only for a private test host), or the path of a CA bundle "
        "(PEM) for servers of a private PKI, e.g. /etc/ssl/certs/corp-ca.pem",
        "verify",
        default=True,
    ),
    ExtraField(
        "cache",
        "Token cache",
        "Where tokens are shared: memory (this process), file (this machine's tasks) or a Redis URL for every "
        "worker, e.g. redis://redis:6379/0",
        default="memory",
        aliases=("token_cache",),
        credential=True,
    ),
    ExtraField(
        "rate_limit",
        "Rate limit",
        "The vendor's rate limit for this client, shared by every worker where the tokens are (Token cache): one "
        'window or a JSON list, all enforced; units second, minute, hour, day. E.g. 25/second or ["25/second", '
        '"5000/hour"]',
        "rate_limit",
    ),
    ExtraField(
        "max_in_flight",
        "Max requests at once (cluster)",
        "The most requests of this client at once across every worker (the vendor's concurrency limit), e.g. 8",
        "integer",
        bounds=(1, 10_000),
    ),
    ExtraField(
        "quota_max_wait",
        "Quota max wait (seconds)",
        "A request whose quota frees later than this fails its task at once, naming the quota and when it "
        "resets (a daily quota spent), instead of waiting in the task.",
        "number",
        default=60.0,
    ),
    ExtraField(
        "quota_auth_requests",
        "Token requests count in the quota",
        "true when the vendor counts token requests against the client's rate limit: they then take a permit too.",
        "boolean",
        default=False,
    ),
)

TENANT_ID = ExtraField(
    "tenant_id",
    "Tenant ID",
    "Microsoft Entra tenant (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47); builds the token URL.",
    required_when=lambda extras: not extras.get("auth_url"),
    required_reason="(it builds the token URL, unless Token URL is given)",
    credential=True,
)
SUBSCRIPTION_KEY = ExtraField(
    "subscription_api_key",
    "Subscription key",
    "API Management subscription key, sent as Ocp-Apim-Subscription-Key on every API call.",
    secret=True,
    required=True,
    aliases=("subscription_key",),
)


def _uses_certificate(extras: Mapping[str, Any]) -> bool:
    return extras.get("client_auth") == "private_key_jwt"


def client_auth_field(choices: tuple[str, ...], default: str, description: str) -> ExtraField:
    return ExtraField(
        "client_auth", "Client authentication", description, choices=choices, default=default, credential=True
    )


def certificate_fields(*, certificate_required: bool) -> tuple[ExtraField, ...]:
    """The private key (and certificate) of ``client_auth: private_key_jwt``, instead of a client secret."""
    reason = "(client_auth private_key_jwt signs with it)"
    return (
        ExtraField(
            "private_key",
            "Private key (PEM)",
            "The certificate's private key, unencrypted PEM (-----BEGIN PRIVATE KEY-----...), RSA or EC P-256.",
            secret=True,
            required_when=_uses_certificate,
            required_reason=reason,
            multiline=True,
        ),
        ExtraField(
            "certificate",
            "Certificate (PEM)",
            "The public certificate registered with the identity provider (-----BEGIN CERTIFICATE-----...); "
            "its thumbprints go in the assertion's x5t and x5t#S256.",
            required_when=_uses_certificate if certificate_required else None,
            required_reason="(Entra ID finds the registered certificate by its thumbprint)",
            multiline=True,
            credential=True,
        ),
        ExtraField(
            "key_id", "Key ID", "The key's id, sent as kid (optional).", aliases=("private_key_id",), credential=True
        ),
    )


def username_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("username", "Username", description, required=required, credential=True, **rules)  # type: ignore[arg-type]


def user_password_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("user_password", "User password", description, secret=True, required=required, **rules)  # type: ignore[arg-type]


def _federated(extras: Mapping[str, Any]) -> bool:
    return extras.get("client_auth") == "federated"


def _mutual_tls(extras: Mapping[str, Any]) -> bool:
    return extras.get("client_auth") in MTLS_CLIENT_AUTH


def federation_field(*, default_env: str | None = None) -> ExtraField:
    """``client_auth: federated``: the file the platform writes the workload's token to (RFC 7523)."""
    where = f" Empty: ${default_env}, as AKS workload identity sets it." if default_env else ""
    return ExtraField(
        "assertion_file",
        "Assertion file",
        "client_auth federated: the file holding the workload's signed token (re-read for every token request, "
        f"as the platform rotates it), e.g. /var/run/secrets/azure/tokens/azure-identity-token.{where}",
        required_when=_federated,
        required_reason="(client_auth federated sends its content)",
        aliases=("federated_token_file",),
        credential=True,
    )


#: Mutual TLS (RFC 8705): the client certificate and its key, presented by token requests and API calls.
MTLS_FIELDS: tuple[ExtraField, ...] = (
    ExtraField(
        "client_certificate",
        "Client certificate (PEM)",
        "Mutual TLS: the client certificate (-----BEGIN CERTIFICATE-----...), presented on token requests and "
        "API calls; with tls_client_auth issued by the CA the server trusts, with self_signed_tls_client_auth "
        "the one registered for the client. Bound tokens (cnf.x5t#S256) are only ever sent with it.",
        required_when=_mutual_tls,
        required_reason="(tls_client_auth and self_signed_tls_client_auth present it)",
        multiline=True,
        credential=True,
    ),
    ExtraField(
        "client_private_key",
        "Client certificate key (PEM)",
        "Mutual TLS: the client certificate's private key, unencrypted PEM (-----BEGIN PRIVATE KEY-----...); "
        "kept in memory, never written to disk in clear.",
        secret=True,
        required_when=_mutual_tls,
        required_reason="(tls_client_auth and self_signed_tls_client_auth present the certificate with it)",
        multiline=True,
    ),
)
