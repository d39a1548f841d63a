"""Fake vendors for unit tests over ``httpx.MockTransport``, answering with the seed documents' bodies."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

SECRET = "client-secret-value-42"
USER_PASSWORD = "user-password-value-43"
SUBSCRIPTION_KEY = "subscription-key-value-44"
CALLER_ID = "etl-service@example.com"


def make_jwt(claims: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.c2lnbmF0dXJl"


def seed_token_body(vendor: str, token: str, lifetime: int = 3599) -> dict[str, Any]:
    """The token answer each vendor's seed document shows, field types included."""
    now = int(time.time())
    if vendor == "kazi":
        return {
            "token_type": "Bearer",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": "d00b610c-389f-4a05-97cc-f9a934488c8b",
            "access_token": token,
        }
    if vendor == "keyavi":
        return {
            "token_type": "Bearer",
            "scope": "api://keyavi/.default",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }
    if vendor == "kayzen":
        return {"access_token": token, "expires_in": str(lifetime), "scope": ""}
    if vendor == "smartrecruiters":
        return {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
    return {"access_token": token, "token_type": "bearer", "expires_in": lifetime}


CONNECTIONS: dict[str, dict[str, Any]] = {
    "kazi": {
        "conn_type": "kazi",
        "host": "https://api.kazi.example",
        "login": "kazi-client",
        "password": SECRET,
        "extra": {
            "tenant_id": "tenant-1",
            "resource": "d00b610c-389f-4a05-97cc-f9a934488c8b",
            "subscription_key": SUBSCRIPTION_KEY,
        },
    },
    "keyavi": {
        "conn_type": "keyavi",
        "host": "https://keyavi.example/api",
        "login": "keyavi-client",
        "password": SECRET,
        "extra": {
            "tenant_id": "tenant-2",
            "scope": "api://550e8400-e29b-41d4-a716-446655440000/.default",
            "subscription_key": SUBSCRIPTION_KEY,
            "caller_id": CALLER_ID,
        },
    },
    "keyavi_user": {
        "conn_type": "keyavi",
        "host": "https://keyavi.example/api",
        "login": "keyavi-client",
        "password": SECRET,
        "extra": {
            "tenant_id": "tenant-2",
            "grant_type": "password",
            "scope": "api://550e8400-e29b-41d4-a716-446655440000/access_as_user",
            "username": "ana@example.com",
            "user_password": USER_PASSWORD,
            "subscription_key": SUBSCRIPTION_KEY,
        },
    },
    "kayzen": {
        "conn_type": "kayzen",
        "login": "kayzen-api-key",
        "password": SECRET,
        "extra": {"username": "ana@example.com", "user_password": USER_PASSWORD},
    },
    "smartrecruiters": {"conn_type": "smartrecruiters", "login": "sr-client", "password": SECRET},
    "clazar": {"conn_type": "clazar", "login": "clazar-client", "password": SECRET},
}

VENDOR_OF = {name: conn["conn_type"] for name, conn in CONNECTIONS.items()}
ALL = list(CONNECTIONS)


def hook_for(name: str, **kwargs: Any) -> Any:
    from airflow_vendorauth.hooks.clazar import ClazarHook
    from airflow_vendorauth.hooks.kayzen import KayzenHook
    from airflow_vendorauth.hooks.kazi import KaziHook
    from airflow_vendorauth.hooks.keyavi import KeyaviHook
    from airflow_vendorauth.hooks.smartrecruiters import SmartRecruitersHook

    classes = {
        "kazi": KaziHook,
        "keyavi": KeyaviHook,
        "kayzen": KayzenHook,
        "smartrecruiters": SmartRecruitersHook,
        "clazar": ClazarHook,
    }
    return classes[VENDOR_OF[name]](name, **kwargs)


def set_connection(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> None:
    conn = json.loads(json.dumps(CONNECTIONS[name]))
    extra_changes = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"] = {**conn.get("extra", {}), **extra_changes}
    conn["extra"] = {k: v for k, v in conn["extra"].items() if v is not None}
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(conn))


def is_token_request(request: httpx.Request) -> bool:
    path = request.url.path
    return path.endswith("/token") or path.endswith("/authenticate/")


@dataclass
class FakeVendor:
    """Answers token requests with the seed bodies and API calls with ``api``; records everything."""

    vendor: str
    lifetime: int = 3599
    token_delay: float = 0.0
    token_responses: list[httpx.Response] = field(default_factory=list)
    api: Callable[[httpx.Request], httpx.Response] | None = None
    token_requests: list[httpx.Request] = field(default_factory=list)
    api_requests: list[httpx.Request] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_token(self) -> str:
        n = len(self.issued) + 1
        if self.vendor in ("kazi", "keyavi"):
            token = make_jwt({"exp": int(time.time()) + self.lifetime, "roles": ["read:expectations"], "n": n})
        else:
            token = f"DCRD10-token-{n}-{'x' * 12}"
        self.issued.append(token)
        return token

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if is_token_request(request):
            with self._lock:
                self.token_requests.append(request)
                if self.token_responses:
                    return self.token_responses.pop(0)
                token = self.new_token()
            if self.token_delay:
                time.sleep(self.token_delay)
            return httpx.Response(200, json=seed_token_body(self.vendor, token, self.lifetime))
        with self._lock:
            self.api_requests.append(request)
        if self.api is not None:
            return self.api(request)
        return httpx.Response(200, json={"ok": True})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def async_transport(self) -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return self(request)

        return httpx.MockTransport(handler)


def form_of(request: httpx.Request) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(request.content.decode()))


class ThrottlingApi:
    """A paged API (``?page=N``, 100 records per page, ``total`` in all, 10 ms per page) that answers 429
    (Retry-After: 1) while more than ``allowed`` requests are in flight, and records the peak."""

    def __init__(self, allowed: int, total: int = 10_000) -> None:
        self.allowed, self.total, self.in_flight, self.peak, self.throttled = allowed, total, 0, 0, 0
        self.guard = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":  # the token endpoint
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        with self.guard:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            refuse = self.in_flight > self.allowed
            self.throttled += refuse
        try:
            if refuse:
                return httpx.Response(429, headers={"Retry-After": "1"}, json={"error": "slow down"})
            time.sleep(0.01)
            page = int(request.url.params["page"])
            items = list(range((page - 1) * 100, min(page * 100, self.total)))
            return httpx.Response(200, json={"items": items, "total": self.total})
        finally:
            with self.guard:
                self.in_flight -= 1
