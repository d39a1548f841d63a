"""The provider registers with Airflow: connection types, hooks, declarative form fields, config."""

from __future__ import annotations

import inspect

import pytest

from airflow_vendorauth.get_provider_info import get_provider_info
from airflow_vendorauth.vendors import VENDORS
from tests.unit.fakes import hook_for

CONN_TYPES = ["kazi", "keyavi", "kayzen", "smartrecruiters", "clazar", "oauth2"]
AIRFLOW_VERSION = tuple(int(p) for p in __import__("airflow").__version__.split(".")[:2])


def test_provider_info_matches_the_distribution_and_lists_every_connection_type() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-vendorauth"
    assert [c["connection-type"] for c in info["connection-types"]] == CONN_TYPES
    assert "token_cache_dir" in info["config"]["vendorauth"]["options"]


def test_airflow_providers_manager_sees_hooks_and_form_fields() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "airflow-vendorauth" in manager.providers
    for conn_type in CONN_TYPES:
        assert manager.hooks[conn_type] is not None
    if AIRFLOW_VERSION < (3, 2):
        # Airflow 3.1 reads no declarative conn-fields: its forms come from the hooks, through wtforms (the
        # FAB provider); get_ui_field_behaviour() serves the relabelling there.
        from airflow_vendorauth.hooks.kayzen import KayzenHook

        assert KayzenHook.get_ui_field_behaviour()["relabeling"]["login"] == "API key"
        return
    for conn_type in CONN_TYPES:
        assert manager.field_behaviours[conn_type]["hidden_fields"] == ["schema"]
    assert manager.field_behaviours["kayzen"]["relabeling"]["login"] == "API key"
    widgets = manager.connection_form_widgets
    assert widgets["extra__kazi__resource"].field["schema"]["title"] == "Resource"
    assert widgets["extra__kazi__subscription_api_key"].is_sensitive
    assert widgets["extra__keyavi__grant_type"].field["schema"]["enum"][:2] == ["client_credentials", "password"]
    assert widgets["extra__kayzen__user_password"].is_sensitive


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_hook_follows_airflow_naming_conventions(conn_type: str) -> None:
    from airflow_vendorauth.hooks.base import VendorHook

    if conn_type == "oauth2":
        from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

        hook_cls: type = OAuth2Hook
    else:
        hook_cls = type(hook_for(conn_type))
    assert issubclass(hook_cls, VendorHook)
    assert hook_cls.conn_type == conn_type
    assert hook_cls.conn_name_attr == f"{conn_type}_conn_id"
    params = inspect.signature(hook_cls.__init__).parameters
    assert list(params)[1] == hook_cls.conn_name_attr
    assert params[hook_cls.conn_name_attr].default == f"{conn_type}_default" == hook_cls.default_conn_name
    assert VENDORS[conn_type].hook_class_name == f"{hook_cls.__module__}.{hook_cls.__name__}"


def test_airflow_hides_every_secret_field_and_no_other() -> None:
    """Airflow hides (***) an extra whose name contains a sensitive word, in the UI and the REST API, with
    its default settings: each secret field's name must be hidden, and no other field's name may be
    (a default such as "memory" shown as *** is saved as ***)."""
    from airflow.sdk._shared.secrets_masker import SecretsMasker

    masker = SecretsMasker()
    masker.hide_sensitive_var_conn_fields = True
    from airflow.sdk._shared.secrets_masker.secrets_masker import DEFAULT_SENSITIVE_FIELDS

    masker.sensitive_variables_fields = list(DEFAULT_SENSITIVE_FIELDS)
    for profile in VENDORS.values():
        for spec in profile.all_fields:
            for stored_as in (spec.name, f"extra__{profile.conn_type}__{spec.name}"):
                assert masker.should_hide_value_for_key(stored_as) == spec.secret, (profile.conn_type, stored_as)


def test_required_extras_are_marked_required_in_the_form() -> None:
    fields = {c["connection-type"]: c["conn-fields"] for c in get_provider_info()["connection-types"]}
    assert fields["kazi"]["resource"]["schema"]["type"] == "string"  # no null: the form marks and requires it
    assert fields["kazi"]["subscription_api_key"]["schema"] == {"type": "string", "format": "password"}
    assert fields["kazi"]["tenant_id"]["schema"]["type"] == ["string", "null"]
    assert fields["oauth2"]["private_key"]["schema"]["format"] == "password"
    assert fields["oauth2"]["certificate"]["schema"]["format"] == "multiline"


def test_workload_identity_and_mutual_tls_fields_are_in_the_forms_and_the_key_is_hidden() -> None:
    from airflow.providers_manager import ProvidersManager

    if AIRFLOW_VERSION < (3, 2):
        pytest.skip("Airflow 3.1 reads no declarative conn-fields")
    from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key

    widgets = ProvidersManager().connection_form_widgets
    for conn_type in ("oauth2", "kazi", "keyavi"):
        assert "federated" in widgets[f"extra__{conn_type}__client_auth"].field["schema"]["enum"]
        assert "AZURE" in widgets[f"extra__{conn_type}__assertion_file"].field["description"] or conn_type == "oauth2"
    oauth2_methods = widgets["extra__oauth2__client_auth"].field["schema"]["enum"]
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(oauth2_methods)
    key = widgets["extra__oauth2__client_private_key"]
    assert key.is_sensitive and key.field["schema"]["format"] == "password"
    assert not widgets["extra__oauth2__client_certificate"].is_sensitive
    assert "CA bundle" in widgets["extra__oauth2__verify"].field["description"]
    # The UI and the REST API hide extras by name: the key's name carries a sensitive word, the file's does not.
    assert should_hide_value_for_key("client_private_key") and not should_hide_value_for_key("assertion_file")
