"""Provider metadata for Airflow, built from the vendor profiles (a vendor is described once)."""

from __future__ import annotations

from typing import Any

from airflow_vendorauth import __version__
from airflow_vendorauth.vendors import VENDORS
from airflow_vendorauth.vendors.fields import ExtraField
from airflow_vendorauth.vendors.profile import VendorProfile

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def _conn_field(spec: ExtraField) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": [_JSON_TYPES[spec.kind], "null"]}
    if spec.secret:
        schema["format"] = "password"
    if spec.choices:
        schema["enum"] = [*spec.choices, None]
    if spec.default is not None:
        schema["default"] = spec.default
    required = " Required." if spec.required else ""
    return {"label": spec.label, "description": spec.description + required, "schema": schema}


def _connection_type(profile: VendorProfile) -> dict[str, Any]:
    host_label = "API base URL" + ("" if profile.default_host is None else f" (default {profile.default_host})")
    return {
        "hook-class-name": profile.hook_class_name,
        "hook-name": profile.display_name,
        "connection-type": profile.conn_type,
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": host_label, "login": profile.login_label, "password": profile.password_label},
            "placeholders": {
                "host": profile.host_placeholder,
                "login": profile.login_label,
                "password": profile.password_label,
                **{f.name: f.placeholder for f in profile.all_fields if f.placeholder},
            },
        },
        "conn-fields": {f.name: _conn_field(f) for f in profile.all_fields},
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-vendorauth",
        "name": "Vendor OAuth APIs (Kazi, Keyavi, Kayzen, SmartRecruiters, Clazar)",
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
            {"integration-name": p.display_name, "python-modules": ["airflow_vendorauth.operators.api"]}
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
