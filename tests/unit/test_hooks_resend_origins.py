"""The hooks keep credentials at home on every path, the 401 resend's redirects included: httpx runs the
client's request hook for every request it sends, the auth flow's resend and each redirect hop alike
(the bridge, which cannot, is tested in tests/integration/test_http_bridge_resend_origins.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.fakes import SUBSCRIPTION_KEY, FakeVendor, hook_for, set_connection


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_resend_after_401_redirected_to_another_origin_carries_nothing_of_ours(
    monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    set_connection(monkeypatch, "keyavi")
    fake = FakeVendor("keyavi")
    elsewhere: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.host == "cdn.example":
            elsewhere.append(request)
            return httpx.Response(200, json={"where": "cdn"})
        if len([r for r in fake.api_requests if r.url.host == "keyavi.example"]) == 1:
            return httpx.Response(401, json={"message": "token revoked"})
        return httpx.Response(status, headers={"Location": "https://cdn.example/files/1"})

    fake.api = api
    hook = hook_for("keyavi", transport=fake.transport())
    assert hook.request("POST", "/payloads", content=b"upload").json() == {"where": "cdn"}
    home = [r for r in fake.api_requests if r.url.host == "keyavi.example"]
    assert len(fake.token_requests) == 2 and len(home) == 2 and len(elsewhere) == 1
    assert [r.headers["Ocp-Apim-Subscription-Key"] for r in home] == [SUBSCRIPTION_KEY] * 2
    sent = {name.lower() for name in elsewhere[0].headers}
    assert sent.isdisjoint({"authorization", "ocp-apim-subscription-key", "x-api-caller-id", "dpop"})
    assert SUBSCRIPTION_KEY not in str(elsewhere[0].headers)
