"""Connection extras: how one is declared (its form field and rules), how its value is read, and the
extras several vendors share, declared once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_vendorauth.exceptions import ConnectionConfigError

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


MAX_RETRIES_LIMIT = 20
MAX_TIMEOUT_SECONDS = 3600.0
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(spec: ExtraField, value: Any, fail: Callable[..., ConnectionConfigError]) -> Any:
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

TENANT_ID = ExtraField(
    "tenant_id",
    "Tenant ID",
    "Microsoft Entra tenant of the application; builds the default token URL (not needed when token_url is set).",
    placeholder="00000000-0000-0000-0000-000000000000",
)
SUBSCRIPTION_KEY = ExtraField(
    "subscription_key",
    "Subscription key",
    "API Management subscription key, sent as Ocp-Apim-Subscription-Key on every API call.",
    secret=True,
    required=True,
)


def username_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("username", "Username", description, "user@example.com", required=required, **rules)  # type: ignore[arg-type]


def user_password_field(description: str, *, required: bool = False, **rules: object) -> ExtraField:
    return ExtraField("user_password", "User password", description, secret=True, required=required, **rules)  # type: ignore[arg-type]
