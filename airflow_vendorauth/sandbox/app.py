"""The sandbox application: identity endpoints, vendor APIs, admin endpoints, and the fault layer.

All five vendors are served by one server, told apart by path prefix:

==================  =========================================================
``/login/...``      Microsoft identity (Kazi v1 ``/oauth2/token``, Keyavi v2.0)
``/kazi/...``       Kazi Tagging API v2 (expectations, job and talent scans)
``/keyavi/api/...`` Keyavi
``/kayzen/...``     Kayzen (token and API)
``/smartrecruiters`` SmartRecruiters (token and API)
``/clazar/...``     Clazar (token and API)
``/_admin/...``     counters, faults, quotas, revocation, malformed answers, sizes
==================  =========================================================
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from airflow_vendorauth.sandbox import apis, authorization_server, identity, workload_issuer
from airflow_vendorauth.sandbox.quotas import QuotaRule
from airflow_vendorauth.sandbox.state import VENDOR_NAMES, FaultRule, SandboxState

TOKEN_PATHS = {
    "kayzen": "/kayzen/v1/authentication/token",
    "smartrecruiters": "/smartrecruiters/identity/oauth/token",
    "clazar": "/clazar/authenticate/",
    "oauth2": "/oauth2/token",
}
_MICROSOFT_TOKEN = re.compile(r"^(/login)?/[^/]+/oauth2/(v2\.0/)?token$")
_MICROSOFT_METADATA = re.compile(r"^(/login)?/[^/]+(/v2\.0)?/\.well-known/openid-configuration$")


def classify(path: str) -> tuple[str, str, bool]:
    """(vendor, route, is_token_request) of a request path; metadata documents are not token requests.
    Entra's endpoints are served under /login/{tenant}/ and, as Entra's login host has them, /{tenant}/."""
    if _MICROSOFT_TOKEN.match(path) or _MICROSOFT_METADATA.match(path) or path.startswith("/login/"):
        vendor = "keyavi" if "/v2.0/" in path else "kazi"
        return (vendor, "token", True) if _MICROSOFT_TOKEN.match(path) else (vendor, "metadata", False)
    for vendor, token_path in TOKEN_PATHS.items():
        if path == token_path:
            return vendor, "token", True
    if path == "/oauth2/mtls/token":  # RFC 8705's mtls_endpoint_aliases
        return "oauth2", "token", True
    if path.startswith(("/oauth2/", "/.well-known/")):
        return "oauth2", "metadata", False
    head, _, rest = path.lstrip("/").partition("/")
    head = "oauth2" if head == "oauth2-api" else head
    vendor = head if head in VENDOR_NAMES else "other"
    return vendor, "/" + rest, False


class FaultsAndCounters:
    """ASGI middleware: counts every request and answer, and misbehaves as the fault rules say."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_admin"):
            await self.app(scope, receive, send)
            return
        state = self.state
        vendor, route, is_token = classify(scope["path"])
        state.count(vendor, "token_requests" if is_token else "metadata_requests" if route == "metadata" else "api_requests")
        state.seen_from(vendor, scope.get("client"))
        with state.lock:  # requests being answered at once, and the most seen (``peak_in_flight``)
            counters = state.counters[vendor]
            counters["in_flight"] += 1
            counters["peak_in_flight"] = max(counters["peak_in_flight"], counters["in_flight"])
        try:
            await self._within_quota(scope, receive, send, vendor, route, is_token)
        finally:
            with state.lock:
                state.counters[vendor]["in_flight"] -= 1

    async def _within_quota(
        self, scope: Scope, receive: Receive, send: Send, vendor: str, route: str, is_token: bool
    ) -> None:
        """Each quota rule of the request admits it (and its answer carries the rule's headers), or refuses it
        with a 429 and ``Retry-After`` (see :mod:`.quotas`)."""
        state = self.state
        rules = [r for r in state.quotas if r.matches(vendor, route, is_token)]
        if not rules:
            await self._serve(scope, receive, send, vendor, route)
            return
        credential = state.credential_of(vendor, scope)
        held: list[QuotaRule] = []
        extra: list[tuple[bytes, bytes]] = []
        for rule in rules:
            admitted, why, wait, headers = rule.admit(credential)
            extra += headers
            if not admitted:
                for done in held:
                    done.done(credential)
                state.count(vendor, "quota_429")
                state.count(vendor, f"quota_429_{why}")
                state.count(vendor, "status_429")
                await _answer(send, 429, max(1, math.ceil(wait)), extra)
                return
            held.append(rule)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self._serve(scope, receive, with_headers, vendor, route)
        finally:
            for rule in held:
                rule.done(credential)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, vendor: str, route: str) -> None:
        state = self.state

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.count(vendor, f"status_{message['status']}")
            await send(message)

        with state.lock:
            rules = [r for r in state.faults if r.matches(vendor, route)]
            for rule in rules:
                rule.served += 1
            rules = [r for r in rules if r.served > r.after]
            full = next((r for r in rules if r.max_in_flight is not None and r.in_flight >= r.max_in_flight), None)
            holding = [] if full else [r for r in rules if r.max_in_flight is not None]
            for rule in holding:
                rule.in_flight += 1
                rule.peak_in_flight = max(rule.peak_in_flight, rule.in_flight)
        if full is not None:
            state.count(vendor, f"fault_{full.throttle_status}")
            await _answer(counting_send, full.throttle_status, full.retry_after)
            return
        try:
            await self._misbehave(rules, vendor, scope, receive, send, counting_send)
        finally:
            if holding:
                with state.lock:
                    for rule in holding:
                        rule.in_flight -= 1

    async def _misbehave(
        self, rules: list[FaultRule], vendor: str, scope: Scope, receive: Receive, send: Send, counting_send: Send
    ) -> None:
        state = self.state
        for rule in rules:
            if rule.latency_ms:
                await asyncio.sleep(rule.latency_ms / 1000)
            draw = state.draw()
            if draw < rule.rate_429:
                state.count(vendor, f"fault_{rule.throttle_status}")
                await _answer(counting_send, rule.throttle_status, rule.retry_after)
                return
            draw -= rule.rate_429
            if draw < rule.rate_5xx:
                status = (500, 502, 503)[int(draw / rule.rate_5xx * 3) % 3]
                state.count(vendor, f"fault_{status}")
                await _answer(counting_send, status, None)
                return
            draw -= rule.rate_5xx
            if draw < rule.rate_drop:
                state.count(vendor, "fault_drop")
                await _drop(send)
                return
            draw -= rule.rate_drop
            if draw < rule.rate_html:
                state.count(vendor, "fault_html")
                await _answer(counting_send, 200, None)
                return
            draw -= rule.rate_html
            if draw < rule.rate_lost:
                state.count(vendor, f"fault_lost_{rule.lost_as}")
                await _serve_and_lose(self.app, scope, receive, send, counting_send, rule)
                return
            draw -= rule.rate_lost
            if draw < rule.rate_slow:
                state.count(vendor, "fault_slow")
                await asyncio.sleep(rule.slow_seconds)
        await self.app(scope, receive, counting_send)


async def _answer(
    send: Send, status: int, retry_after: int | None, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    if retry_after is not None:
        body = (
            f'{{"statusCode":{status},"message":"Rate limit is exceeded. Try again in {retry_after} seconds."}}'
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", str(retry_after).encode())]
    else:
        body = b"<html><body><h1>%d</h1>The upstream server says hello.</body></html>" % status
        headers = [(b"content-type", b"text/html")]
    headers.append((b"content-length", str(len(body)).encode()))
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _serve_and_lose(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, counting_send: Send, rule: FaultRule
) -> None:
    """Serve the request in full (a refresh token is rotated), then lose its answer as ``rule.lost_as`` says."""

    async def swallow(message: Message) -> None:
        return None

    await app(scope, receive, swallow)
    if rule.lost_as == "502":
        await _answer(counting_send, 502, None)
        return
    if rule.lost_as == "timeout":
        await asyncio.sleep(rule.slow_seconds)
    await _drop(send)


async def _drop(send: Send) -> None:
    """Start an answer and hang up half-way: the client sees the connection drop mid-body."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"data": [', "more_body": True})


def create_app(state: SandboxState | None = None) -> FastAPI:
    state = state or SandboxState()
    app = FastAPI(title="airflow-vendorauth sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.sandbox = state
    app.include_router(workload_issuer.router(state.workload_issuer))  # before /{tenant}/.well-known/...
    app.include_router(identity.router(state))
    app.include_router(apis.router(state))
    app.include_router(authorization_server.router(state))

    @app.get("/_admin/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_admin/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/_admin/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"status": "reset"}

    @app.get("/_admin/faults")
    async def faults() -> list[dict[str, Any]]:
        return [asdict(rule) for rule in state.faults]

    @app.post("/_admin/faults")
    async def add_fault(request: Request) -> dict[str, Any]:
        rule = FaultRule(**(await request.json()))
        state.faults.append(rule)
        return asdict(rule)

    @app.delete("/_admin/faults")
    async def clear_faults() -> dict[str, int]:
        count = len(state.faults)
        state.faults.clear()
        return {"cleared": count}

    @app.get("/_admin/quotas")
    async def quotas() -> list[dict[str, Any]]:
        return [rule.public() for rule in state.quotas]

    @app.post("/_admin/quotas")
    async def add_quota(request: Request) -> dict[str, Any]:
        rule = QuotaRule(**(await request.json()))
        state.quotas.append(rule)
        return rule.public()

    @app.delete("/_admin/quotas")
    async def clear_quotas() -> dict[str, int]:
        count = len(state.quotas)
        state.quotas.clear()
        return {"cleared": count}

    @app.get("/_admin/issued_tokens")
    async def issued_tokens() -> list[str]:
        return state.issued_tokens()

    @app.post("/_admin/rotate_secret")
    async def rotate_secret(vendor: str) -> dict[str, str]:
        state.rotate_secret(vendor)
        return {"rotated": vendor}

    @app.post("/_admin/revoke")
    async def revoke(vendor: str | None = None) -> dict[str, int]:
        return {"revoked": state.revoke(vendor)}

    @app.post("/_admin/malformed")
    async def malformed(request: Request) -> dict[str, Any]:
        body = await request.json()
        with state.lock:
            state.malformed_tokens[body["vendor"]].extend([body["mode"]] * int(body.get("count", 1)))
        return body

    @app.post("/_admin/config")
    async def configure(request: Request) -> dict[str, Any]:
        body = await request.json()
        with state.lock:
            state.lifetimes.update(body.get("lifetimes", {}))
            state.sizes.update(body.get("sizes", {}))
            if "scan_seconds" in body:
                state.scan_seconds = float(body["scan_seconds"])
            state.work_ms.update(body.get("work_ms", {}))
            for vendor, edges in body.get("paging", {}).items():
                state.paging[vendor] = {k: v for k, v in {**state.paging.get(vendor, {}), **edges}.items() if v is not None}
            if "assertion_audience" in body:
                state.assertion_audience = body["assertion_audience"]
            if "refresh_reuse_seconds" in body:
                state.refresh_reuse_seconds = float(body["refresh_reuse_seconds"])
        return {"lifetimes": state.lifetimes, "sizes": state.sizes, "scan_seconds": state.scan_seconds, "paging": state.paging}

    return FaultsAndCounters(app, state)  # type: ignore[return-value]
