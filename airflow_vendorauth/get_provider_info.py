"""Provider metadata for Airflow, built from the vendor profiles (a vendor is described once)."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth import __version__
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.fields import ExtraField
from airflow_vendorauth.vendors.profile import VendorProfile

#: JSON objects (headers, paging) are typed in the form as their JSON text.
_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "json": "string",
               # true, false or a CA bundle's path: text (a checkbox could not name a file)
               "verify": "string",
               # one rate ("25/second") or a JSON list of them, as text
               "rate_limit": "string"}


def _conn_field(spec: ExtraField) -> dict[str, Any]:
    """A form field: required ones are typed without null (the form marks them and refuses to save
    without them); secrets are password fields; long values (PEM) are text areas."""
    kind = _JSON_TYPES[spec.kind]
    schema: dict[str, Any] = {"type": kind if spec.required else [kind, "null"]}
    if spec.secret:
        schema["format"] = "password"
    elif spec.multiline or spec.kind == "json":
        schema["format"] = "multiline"
    if spec.choices:
        schema["enum"] = list(spec.choices) if spec.required or spec.default is not None else [*spec.choices, None]
    if spec.default is not None:
        schema["default"] = str(spec.default).lower() if spec.kind == "verify" else spec.default
    if spec.bounds:
        schema["minimum"], schema["maximum"] = spec.bounds
    return {"label": spec.label, "description": spec.description, "schema": schema}


def ui_field_behaviour(profile: VendorProfile) -> dict[str, Any]:
    host_example = profile.default_host or profile.host_placeholder
    return {
        "hidden_fields": ["schema"],
        "relabeling": {"host": "API base URL", "login": profile.login_label, "password": profile.password_label},
        "placeholders": {"host": host_example, "login": profile.login_label, "password": profile.password_label},
    }


def _connection_type(profile: VendorProfile) -> dict[str, Any]:
    behaviour = ui_field_behaviour(profile)
    return {
        "hook-class-name": profile.hook_class_name,
        "hook-name": profile.display_name,
        "connection-type": profile.conn_type,
        "ui-field-behaviour": {"hidden-fields": behaviour.pop("hidden_fields"), **behaviour},
        "conn-fields": {f.name: _conn_field(f) for f in profile.all_fields},
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-vendorauth",
        "name": "Vendor OAuth APIs (Kazi, Keyavi, Kayzen, SmartRecruiters, Clazar, any OAuth 2.0 API)",
        "description": "Connections, hooks and operators for OAuth-protected SaaS APIs: "
        "cached, shared and auto-refreshed bearer tokens, retries, pagination.",
        "versions": [__version__],
        "hooks": [
            {
                "integration-name": p.display_name,
                "python-modules": [p.hook_class_name.rsplit(".", 1)[0]],
            }
            for p in VENDORS.values()
        ],
        "operators": [
            {
                "integration-name": p.display_name,
                "python-modules": ["airflow_vendorauth.operators.api"]
                + (["airflow_vendorauth.operators.kazi_scan"] if p.conn_type == "kazi" else []),
            }
            for p in VENDORS.values()
        ],
        "sensors": [
            {"integration-name": p.display_name, "python-modules": ["airflow_vendorauth.sensors.api"]}
            for p in VENDORS.values()
        ],
        "triggers": [
            {
                "integration-name": p.display_name,
                "python-modules": ["airflow_vendorauth.triggers.api"]
                + (["airflow_vendorauth.triggers.kazi_scan"] if p.conn_type == "kazi" else []),
            }
            for p in VENDORS.values()
        ],
        "integrations": [{"integration-name": p.display_name, "tags": ["service"]} for p in VENDORS.values()],
        "connection-types": [_connection_type(p) for p in VENDORS.values()],
        "config": {
            "vendorauth": {
                "description": "Settings of the airflow-vendorauth provider.",
                "options": {
                    "token_cache_dir": {
                        "description": "Directory of the file token cache (token_cache=file). Created 0700.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/var/lib/airflow/vendorauth-tokens",
                        "default": "{AIRFLOW_HOME}/vendorauth/token-cache",
                    },
                },
            }
        },
    }
