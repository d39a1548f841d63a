"""client/lean.py: the shortcuts give exactly httpx's answers (merged URLs, cookies that are set)."""

from __future__ import annotations

import httpx
import pytest

from airflow_vendorauth.client.lean import MAX_RESOLVED, CookiesWhenSet, ResolvedUrls, lean_cookies


@pytest.mark.parametrize("base", ["https://api.kazi.be", "https://api.kazi.be/", "https://h.example/v1", "https://h.example/v1/"])
@pytest.mark.parametrize("endpoint", ["/tagging/v2/expectations", "jobs", "/a b/ü?x=1", "", "https://other.example/next?page=2"])
def test_a_resolved_endpoint_is_the_url_httpx_would_send_to(base: str, endpoint: str) -> None:
    client = httpx.Client(base_url=base)
    resolved = ResolvedUrls()
    for _ in range(2):  # resolved, then remembered
        url = resolved(client, endpoint)
        sent = client.build_request("GET", url, params={"page": 3, "q": "a&b"}).url
        assert sent == client.build_request("GET", endpoint, params={"page": 3, "q": "a&b"}).url


def test_the_resolved_endpoints_are_bounded() -> None:
    client, resolved = httpx.Client(base_url="https://h.example/v1"), ResolvedUrls()
    for n in range(MAX_RESOLVED * 3):
        assert str(resolved(client, f"/jobs/{n}")) == f"https://h.example/v1/jobs/{n}"
    assert len(resolved._known) <= MAX_RESOLVED


def test_cookies_a_vendor_sets_are_still_kept_and_sent() -> None:
    seen: list[str | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        if request.url.path == "/login":
            return httpx.Response(200, headers={"Set-Cookie": "ARRAffinity=abc; Path=/"})
        return httpx.Response(200)

    client = httpx.Client(base_url="https://api.example", transport=httpx.MockTransport(api))
    lean_cookies(client)
    assert isinstance(client.cookies, CookiesWhenSet)
    client.get("/items")
    client.get("/login")
    client.get("/items")
    assert seen == [None, None, "ARRAffinity=abc"]
    assert client.cookies.get("ARRAffinity") == "abc"
