"""The provider registers with Airflow: connection types, hooks, declarative form fields, config."""

from __future__ import annotations

import inspect

import pytest

from airflow_vendorauth.get_provider_info import get_provider_info
from airflow_vendorauth.vendors import VENDORS
from tests.unit.fakes import hook_for

CONN_TYPES = ["kazi", "keyavi", "kayzen", "smartrecruiters", "clazar"]


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
        assert manager.field_behaviours[conn_type]["hidden_fields"] == ["schema", "port"]
    widgets = manager.connection_form_widgets
    assert widgets["extra__kazi__resource"].field["schema"]["title"] == "Resource"
    assert widgets["extra__kazi__subscription_key"].is_sensitive
    assert widgets["extra__keyavi__grant_type"].field["schema"]["enum"][:2] == ["client_credentials", "password"]
    assert widgets["extra__kayzen__user_password"].is_sensitive
    assert manager.field_behaviours["kayzen"]["relabeling"]["login"] == "API key"


@pytest.mark.parametrize("conn_type", CONN_TYPES)
def test_hook_follows_airflow_naming_conventions(conn_type: str) -> None:
    from airflow_vendorauth.hooks.base import VendorHook

    hook_cls = type(hook_for({"keyavi": "keyavi"}.get(conn_type, conn_type)))
    assert issubclass(hook_cls, VendorHook)
    assert hook_cls.conn_type == conn_type
    assert hook_cls.conn_name_attr == f"{conn_type}_conn_id"
    params = inspect.signature(hook_cls.__init__).parameters
    assert list(params)[1] == hook_cls.conn_name_attr
    assert params[hook_cls.conn_name_attr].default == f"{conn_type}_default" == hook_cls.default_conn_name
    assert VENDORS[conn_type].hook_class_name == f"{hook_cls.__module__}.{hook_cls.__name__}"
