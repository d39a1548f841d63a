"""The vendors' token endpoints, strict as the real ones: they refuse what the vendor would refuse.

The sandbox is an oracle for the hooks, so these checks are written from the seed documents, not
from the hooks' code: a lenient fake would prove nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_vendorauth.sandbox.entra import KAZI_NO_ROLE_CLIENT, check_token_request, entra_error, openid_configuration
from airflow_vendorauth.sandbox.state import SandboxState

__all__ = ["KAZI_NO_ROLE_CLIENT", "KAZI_ROLES", "make_jwt", "router"]

SIGNING_KEY = b"vendorauth-sandbox-signing-key"
KAZI_ROLES = ["read:expectations", "scan:jobs", "scan:talent"]


def make_jwt(claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(SIGNING_KEY, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


async def _form(request: Request) -> dict[str, str] | None:
    """The form body, or None when the request is not form-encoded (as the IdPs require)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return None
    return dict(parse_qsl((await request.body()).decode()))


def _malformed(state: SandboxState, vendor: str, good: dict[str, Any]) -> Response | None:
    """Serve the next queued malformed answer for this vendor, if one was asked for."""
    with state.lock:
        queue = state.malformed_tokens.get(vendor)
        mode = queue.pop(0) if queue else None
    if mode is None:
        return None
    if mode == "html":
        return Response("<html><body><h1>Gateway maintenance</h1></body></html>", 200, media_type="text/html")
    if mode == "empty":
        return Response(b"", 200, media_type="application/json")
    if mode == "no_access_token":
        return JSONResponse({k: v for k, v in good.items() if k != "access_token"})
    if mode == "negative_lifetime":
        return JSONResponse({**good, "expires_in": -60})
    if mode == "huge_lifetime":
        return JSONResponse({**good, "expires_in": 10**12})
    if mode == "string_lifetime":
        return JSONResponse({**good, "expires_in": "one hour"})
    if mode == "bad_jwt":
        return JSONResponse({**good, "access_token": "eyJub3QtYS1qd3Q.x"})
    raise ValueError(f"unknown malformed token mode {mode!r}")


def _token_url(state: SandboxState, request: Request) -> str:
    """The URL this token request was sent to (or the one set as the server's own): what a client
    assertion's ``aud`` must name."""
    return state.assertion_audience or str(request.url).split("?")[0]


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()

    @api.get("/{tenant}/v2.0/.well-known/openid-configuration")
    @api.get("/login/{tenant}/v2.0/.well-known/openid-configuration")
    async def openid_configuration_v2(tenant: str, request: Request) -> Response:
        """Entra's tenant metadata (v2.0), so MSAL and other OIDC clients can be pointed at the sandbox."""
        return openid_configuration(state, request, tenant, "v2.0")

    @api.get("/{tenant}/.well-known/openid-configuration")
    @api.get("/login/{tenant}/.well-known/openid-configuration")
    async def openid_configuration_v1(tenant: str, request: Request) -> Response:
        return openid_configuration(state, request, tenant, "v1")

    @api.post("/{tenant}/oauth2/token")
    @api.post("/login/{tenant}/oauth2/token")
    async def azure_v1_token(tenant: str, request: Request) -> Response:
        """Kazi: Azure AD v1 client credentials with ``resource``; lifetimes as strings."""
        form = await _form(request)
        if (refusal := await check_token_request(
            state, form, tenant, "kazi", _token_url(state, request), str(request.base_url)
        )) is not None:
            return refusal
        assert form is not None
        if form["grant_type"] != "client_credentials":
            return entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if not form.get("resource"):
            return entra_error(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'resource'."
            )
        if form["resource"] != state.credentials.kazi_resource:
            return entra_error(
                400, "invalid_resource", 500011, f"The resource principal named {form['resource']} was not found."
            )
        now = int(time.time())
        lifetime = state.lifetimes["kazi"]
        roles = [] if form["client_id"] == KAZI_NO_ROLE_CLIENT else KAZI_ROLES
        claims = {"aud": form["resource"], "appid": form["client_id"], "roles": roles, "exp": now + lifetime}
        token = make_jwt({**claims, "iat": now, "nbf": now, "jti": uuid.uuid4().hex})
        good = {
            "token_type": "Bearer",
            "expires_in": str(lifetime),
            "ext_expires_in": str(lifetime),
            "expires_on": str(now + lifetime),
            "not_before": str(now),
            "resource": form["resource"],
            "access_token": token,
        }
        if (bad := _malformed(state, "kazi", good)) is not None:
            return bad
        state.issue("kazi", claims, token)
        return JSONResponse(good)

    @api.post("/{tenant}/oauth2/v2.0/token")
    @api.post("/login/{tenant}/oauth2/v2.0/token")
    async def microsoft_v2_token(tenant: str, request: Request) -> Response:
        """Keyavi: Microsoft identity v2.0, password or client credentials, with its scope rules."""
        form = await _form(request)
        if (refusal := await check_token_request(
            state, form, tenant, "keyavi", _token_url(state, request), str(request.base_url)
        )) is not None:
            return refusal
        assert form is not None
        c = state.credentials
        grant, scope = form["grant_type"], form.get("scope", "")
        if grant not in ("client_credentials", "password"):
            return entra_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if not scope:
            return entra_error(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
        now = int(time.time())
        lifetime = state.lifetimes["keyavi"]
        if grant == "client_credentials":
            if not scope.endswith("/.default"):
                return entra_error(
                    400,
                    "invalid_scope",
                    1002012,
                    f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                    "scope value with /.default suffixed to the resource identifier (application ID URI).",
                )
            claims: dict[str, Any] = {"idtyp": "app", "roles": ["Payloads.Read"], "appid": form["client_id"]}
        else:
            if not scope.endswith("/access_as_user"):
                return entra_error(
                    400, "invalid_scope", 70011, f"The provided value for scope {scope} is not valid."
                )
            if not form.get("username") or not form.get("password"):
                return entra_error(
                    400, "invalid_request", 900144, "The request body must contain 'username' and 'password'."
                )
            if form["username"] != c.keyavi_username or not hmac.compare_digest(form["password"], c.keyavi_password):
                return entra_error(
                    400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password."
                )
            claims = {"idtyp": "user", "upn": form["username"], "scp": "access_as_user"}
        # Entra names an API by its application ID URI or by its application (client) ID alone: the seed's
        # own example scope is "550e8400-.../access_as_user", its curl uses "api://550e8400-.../...".
        resource = scope.rsplit("/", 1)[0]
        if resource not in (c.keyavi_app_id_uri, c.keyavi_app_id_uri.removeprefix("api://")):
            return entra_error(400, "invalid_scope", 70011, f"The provided value for scope {scope} is not valid.")
        claims = {**claims, "aud": c.keyavi_app_id_uri, "exp": now + lifetime}
        token = make_jwt({**claims, "iat": now, "jti": uuid.uuid4().hex})
        good = {
            "token_type": "Bearer",
            "scope": scope,
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }
        if (bad := _malformed(state, "keyavi", good)) is not None:
            return bad
        state.issue("keyavi", claims, token)
        return JSONResponse(good)

    def kayzen_error(message: str) -> JSONResponse:
        return JSONResponse({"error": "Authentication error", "message": message}, status_code=401)

    @api.post("/kayzen/v1/authentication/token")
    async def kayzen_token(request: Request) -> Response:
        """Kayzen: password grant in a form, behind Basic base64(api_key:api_secret)."""
        c = state.credentials
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return kayzen_error("Invalid API Key")
        try:
            key, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return kayzen_error("Invalid API Key")
        if key != c.kayzen_api_key or not hmac.compare_digest(secret, c.kayzen_api_secret):
            return kayzen_error("Invalid API Key")
        form = await _form(request)
        if form is None:
            return JSONResponse({"error": "invalid_request", "message": "Send a form-encoded body"}, status_code=400)
        if form.get("grant_type") != "password":
            return JSONResponse(
                {"error": "unsupported_grant_type", "message": "grant_type must be password"}, status_code=400
            )
        if form.get("username") != c.kayzen_username or not hmac.compare_digest(
            form.get("password", ""), c.kayzen_password
        ):
            return kayzen_error("Invalid login credentials")
        token, lifetime = state.issue("kayzen")
        good = {"access_token": token, "expires_in": str(lifetime), "scope": ""}
        return _malformed(state, "kayzen", good) or JSONResponse(good)

    @api.post("/smartrecruiters/identity/oauth/token")
    async def smartrecruiters_token(request: Request) -> Response:
        """SmartRecruiters: form client credentials; ``token_type`` in lower case."""
        c = state.credentials
        form = await _form(request)
        if form is None or form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "invalid_request", "error_description": "Missing grant type"}, status_code=400
            )
        if form.get("client_id") != c.smartrecruiters_client_id or not hmac.compare_digest(
            form.get("client_secret", ""), c.smartrecruiters_client_secret
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Bad client credentials"}, status_code=401
            )
        token, lifetime = state.issue("smartrecruiters", token=f"DCRD10-{uuid.uuid4().hex}")
        good = {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
        return _malformed(state, "smartrecruiters", good) or JSONResponse(good)

    @api.post("/clazar/authenticate/")
    async def clazar_token(request: Request) -> Response:
        """Clazar: client id and secret in a JSON body; anything else is refused."""
        c = state.credentials
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            return JSONResponse({"detail": f'Unsupported media type "{content_type}" in request.'}, status_code=415)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"detail": "JSON parse error"}, status_code=400)
        if not isinstance(body, dict) or not body.get("client_id") or not body.get("client_secret"):
            return JSONResponse({"detail": "client_id and client_secret are required."}, status_code=400)
        if body["client_id"] != c.clazar_client_id or not hmac.compare_digest(
            str(body["client_secret"]), c.clazar_client_secret
        ):
            return JSONResponse({"error": "invalid_client", "detail": "Invalid client credentials."}, status_code=401)
        token, lifetime = state.issue("clazar")
        good = {"access_token": token, "token_type": "bearer", "expires_in": lifetime}
        return _malformed(state, "clazar", good) or JSONResponse(good)

    return api
