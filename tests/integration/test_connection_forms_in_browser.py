"""Every connection form in a real browser (Debian's Chromium, driven by Playwright) on a real Airflow
api-server: its fields and labels, defaults shown (never ``***``), secrets as password fields, required
extras marked; Save stores the right extra keys; Test succeeds against the sandbox, and a wrong secret
shows the vendor's reason and no secret; the REST API answers no secret value.

Airflow 3.3.2's Test button posts port 0 for a connection without a port and is then refused
(apache/airflow issue 73298), so the forms here fill in Port, as the README tells users to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import sandbox_connections
from airflow_vendorauth.vendors import VENDORS
from tests.harness.deployment import Deployment
from tests.services import missing_service

# the first test also starts the module's deployment (db migrate up to 5 min, the api-server up to 2)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The sandbox connection whose values each form is filled with.
SOURCE = {
    "kazi": "kazi_default",
    "keyavi": "keyavi_default",
    "kayzen": "kayzen_default",
    "smartrecruiters": "smartrecruiters_default",
    "clazar": "clazar_default",
    "oauth2": "oauth2_default",
}


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        missing_service("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright is not installed (pip install playwright)")
    root = tmp_path_factory.mktemp("ui")
    with (
        Sandbox() as sandbox,
        Deployment(root, extra_env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}) as deployment,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield {
                "api": f"http://127.0.0.1:{deployment.api_port}",
                "sandbox": sandbox,
                "deployment": deployment,
                "browser": browser,
            }
        finally:
            browser.close()


def open_add_form(page: Any, api: str, conn_type: str, conn_id: str) -> None:
    page.goto(f"{api}/connections")
    page.get_by_role("button", name="Add Connection").click()
    page.locator("input[name=connection_id]").fill(conn_id)
    page.get_by_role("combobox").first.click()
    page.keyboard.type(VENDORS[conn_type].display_name)
    page.keyboard.press("Enter")
    page.locator("input[name=host]").wait_for()


def fill_standard(page: Any, conn: dict[str, Any], port: int) -> None:
    page.locator("input[name=host]").fill(conn["host"])
    page.locator("input[name=login]").fill(conn["login"])
    page.locator("input[name=password]").fill(conn["password"] or "")
    page.locator("input[name=port]").fill(str(port))


def open_extra_fields(page: Any) -> None:
    page.get_by_text("Extra Fields", exact=True).click()  # the form's sections are an accordion
    page.locator("[name=element_cache]").wait_for()


def fill_extras(page: Any, conn: dict[str, Any]) -> None:
    for name, value in conn["extra"].items():
        if name in ("cache", "grant_type", "client_auth"):
            continue  # defaults kept (the form's selects already hold them)
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        page.locator(f"[name=element_{name}]").fill(text)


def toast_after(page: Any, click: Any, title: str) -> str:
    """The text of the notification titled ``title`` that ``click`` brings up."""
    click()
    toast = page.locator("[data-part=root]").filter(has_text=title).last
    toast.wait_for(timeout=30_000)
    return str(toast.inner_text())


READ_CONNECTION = """
import json, sys
from airflow.models import Connection
conn = Connection.get_connection_from_secrets(sys.argv[1])
print(json.dumps({"extra": conn.extra_dejson, "password": conn.password}))
"""


def stored(deployment: Deployment, conn_id: str) -> dict[str, Any]:
    """The connection as Airflow stored it in its database (decrypted), read as Airflow reads it."""
    out = subprocess.run(
        [sys.executable, "-c", READ_CONNECTION, conn_id], env=deployment.env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("conn_type", list(SOURCE))
def test_the_connection_form_saves_tests_and_hides_secrets(conn_type: str, ui: dict[str, Any]) -> None:
    api, sandbox, deployment = ui["api"], ui["sandbox"], ui["deployment"]
    profile = VENDORS[conn_type]
    conn = sandbox_connections(sandbox.url)[SOURCE[conn_type]]
    port = int(sandbox.url.rsplit(":", 1)[1])
    conn_id = f"ui_{conn_type}"
    page = ui["browser"].new_page(viewport={"width": 1400, "height": 1300})
    try:
        open_add_form(page, api, conn_type, conn_id)
        dialog = page.locator("[role=dialog]")
        for label in ("API base URL", profile.login_label, profile.password_label):
            assert label in dialog.inner_text()
        assert dialog.locator("input[name=password]").get_attribute("type") == "password"
        fill_standard(page, conn, port)
        open_extra_fields(page)
        text = dialog.inner_text()
        for spec in profile.all_fields:
            assert spec.label in text, spec.label
            field = dialog.locator(f"[name=element_{spec.name}]")
            if spec.choices:
                continue
            kind = field.get_attribute("type")
            assert (kind == "password") == spec.secret, (spec.name, kind)
            if spec.required:
                assert field.get_attribute("required") is not None, spec.name
        assert dialog.locator("[name=element_cache]").input_value() == "memory"  # a default, not ***
        assert dialog.locator("[name=element_timeout]").input_value() == "30"
        fill_extras(page, conn)
        if os.environ.get("VENDORAUTH_SCREENSHOTS"):  # the README's pictures: the whole dialog, filled in
            page.set_viewport_size({"width": 1200, "height": 3600})
            dialog.screenshot(path=f"{os.environ['VENDORAUTH_SCREENSHOTS']}/form-{conn_type}.png")
            page.set_viewport_size({"width": 1400, "height": 1300})
        page.get_by_role("button", name="Save").click()
        row = page.get_by_role("row").filter(has_text=conn_id)
        row.wait_for()

        saved = stored(deployment, conn_id)
        extras = saved["extra"]
        assert saved["password"] == conn["password"]
        for name, value in conn["extra"].items():
            if name not in ("cache", "grant_type", "client_auth"):
                kept = json.loads(extras[name]) if isinstance(value, dict) else extras[name]  # JSON: as its text
                assert kept == value, name  # Save stored the value under the extra's own key
        assert extras["cache"] == "memory"

        message = toast_after(
            page, lambda: row.get_by_role("button", name="Test Connection").click(), "Test Connection Successful"
        )
        assert "token obtained" in message, message

        answered = httpx.get(f"{api}/api/v2/connections/{conn_id}").text + httpx.get(f"{api}/api/v2/connections").text
        for secret in sandbox.credentials.secrets():
            assert secret not in answered  # the REST API hides every secret extra
        answer = httpx.get(f"{api}/api/v2/connections/{conn_id}").json()
        shown = json.loads(answer["extra"])
        for spec in profile.all_fields:
            if extras.get(spec.name) not in (None, ""):
                assert (shown[spec.name] == "***") == spec.secret, spec.name

        row.get_by_role("button", name="Edit Connection").click()
        page.locator("input[name=password]").fill("a-wrong-secret-value")
        page.get_by_role("button", name="Save").click()
        page.locator("[role=dialog]").wait_for(state="detached")
        row = page.get_by_role("row").filter(has_text=conn_id)
        message = toast_after(
            page, lambda: row.get_by_role("button", name="Test Connection").click(), "Test Connection Failed"
        )
        assert "refused the credentials" in message and "Fix:" in message, message
        assert conn_id not in message and "Trace ID" not in message
        content = page.content()
        for secret in [*sandbox.credentials.secrets(), "a-wrong-secret-value"]:
            assert secret not in content
        assert stored(deployment, conn_id)["extra"] == extras  # the edit kept the extras (none turned into ***)
    finally:
        page.close()
