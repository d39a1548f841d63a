"""A standards-conformant OAuth 2.0 authorization server and API, for the generic ``oauth2`` type.

Issuer ``{base}/oauth2``, metadata at ``{issuer}/.well-known/openid-configuration`` and (RFC 8414)
``{base}/.well-known/oauth-authorization-server/oauth2``, token endpoint ``{issuer}/token``. Three grants
(client_credentials, password, refresh_token with rotation: each refresh token works once, and reuse
is counted as ``refresh_reuse``), and five clients, each registered for one client authentication
method (RFC 6749 2.3.1 Basic with form-encoded id and secret, post, JSON, RFC 7523 private_key_jwt with
an RSA and an EC key, none). Errors are RFC 6749 5.2's: ``invalid_client`` (401, with
``WWW-Authenticate`` for Basic), ``invalid_grant``, ``invalid_scope``, ``unsupported_grant_type``,
``invalid_target`` (RFC 8707). The API at ``{base}/oauth2-api`` answers ``insufficient_scope`` (403).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_vendorauth.sandbox.assertions import RegisteredCertificate
from airflow_vendorauth.sandbox.data import DATASETS
from airflow_vendorauth.sandbox.identity import make_jwt
from airflow_vendorauth.sandbox.paging_edges import announced, next_link, served
from airflow_vendorauth.sandbox.state import SandboxState, sandbox_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPES = ("items.read", "items.write")
DEFAULT_SCOPE = "items.read"


def issuer_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/oauth2"


def api_url_of(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/oauth2-api"


def _error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def metadata(request: Request) -> dict[str, Any]:
    issuer = issuer_of(request)
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_json",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["token"],
    }


class _Body:
    """The token request's parameters, from a form or (client_secret_json) a JSON body."""

    def __init__(self, params: dict[str, str], as_json: bool) -> None:
        self.params, self.as_json = params, as_json

    @classmethod
    async def read(cls, request: Request) -> _Body | None:
        content_type = request.headers.get("content-type", "")
        raw = await request.body()
        if content_type.startswith("application/x-www-form-urlencoded"):
            return cls(dict(parse_qsl(raw.decode())), False)
        if content_type.startswith("application/json"):
            try:
                body = json.loads(raw)
            except ValueError:
                return None
            return cls({k: str(v) for k, v in body.items()}, True) if isinstance(body, dict) else None
        return None


def _authenticate(state: SandboxState, request: Request, body: _Body, token_url: str) -> tuple[str | None, Response | None]:
    """The authenticated client id, or the refusal, per the method the client is registered for."""
    c = state.credentials
    clients = c.oauth2_clients()
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            user, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, _error(401, "invalid_client", "Malformed Basic credentials", **{"WWW-Authenticate": "Basic"})
        client_id, secret = unquote_plus(user), unquote_plus(secret)  # RFC 6749 2.3.1: form-encoded first
        method = "client_secret_basic"
    else:
        client_id = body.params.get("client_id", "")
        secret = body.params.get("client_secret", "")
        if "client_assertion" in body.params:
            method = "private_key_jwt"
        elif secret:
            method = "client_secret_json" if body.as_json else "client_secret_post"
        else:
            method = "none"
    registered = clients.get(client_id)
    if registered is None:
        return None, _error(401, "invalid_client", f"Unknown client {client_id!r}")
    if registered != method:
        return None, _error(401, "invalid_client", f"Client {client_id!r} must authenticate with {registered}, not {method}")
    if method.startswith("client_secret") and not hmac.compare_digest(secret, c.oauth2_client_secret):
        return None, _error(401, "invalid_client", "Client authentication failed: wrong client secret")
    if method == "private_key_jwt":
        if body.params.get("client_assertion_type") != ASSERTION_TYPE:
            return None, _error(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
        keys = [RegisteredCertificate(sandbox_key("rsa")[1], "rsa-1"), RegisteredCertificate(sandbox_key("ec")[1], "ec-1")]
        refusal = state.assertions.verify(
            body.params["client_assertion"], client_id=client_id, audience=token_url, certificates=keys
        )
        if refusal is not None:
            return None, _error(401, "invalid_client", f"Client assertion refused ({refusal.problem}): {refusal.detail}")
    return client_id, None


def _granted_scope(requested: str | None, allowed: str) -> str | None:
    wanted = (requested or DEFAULT_SCOPE).split()
    return " ".join(wanted) if all(s in allowed.split() for s in wanted) else None


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()

    @api.get("/oauth2/.well-known/openid-configuration")
    @api.get("/.well-known/oauth-authorization-server/oauth2")
    async def discovery(request: Request) -> dict[str, Any]:
        return metadata(request)

    @api.post("/oauth2/token")
    async def token(request: Request) -> Response:
        body = await _Body.read(request)
        if body is None:
            return _error(400, "invalid_request", "Send a form (or, for client_secret_json, a JSON object)")
        audience = state.assertion_audience or f"{issuer_of(request)}/token"
        client_id, refusal = _authenticate(state, request, body, audience)
        if refusal is not None or client_id is None:
            return refusal or _error(401, "invalid_client", "Client authentication failed")
        c, grant, params = state.credentials, body.params.get("grant_type"), body.params
        refresh_scope: str | None = None
        if grant == "password":
            if params.get("username") != c.oauth2_username or not hmac.compare_digest(
                params.get("password", ""), c.oauth2_password
            ):
                return _error(400, "invalid_grant", "The resource owner's credentials are invalid")
        elif grant == "refresh_token":
            refresh_scope, why = state.spend_refresh_token(params.get("refresh_token", ""), client_id)
            if refresh_scope is None:
                said = "was already used (rotated): reuse detected" if why == "reused" else "is unknown or revoked"
                return _error(400, "invalid_grant", f"The refresh token {said}")
        elif grant != "client_credentials":
            return _error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
        scope = _granted_scope(params.get("scope") or refresh_scope, refresh_scope or " ".join(SCOPES))
        if scope is None:
            return _error(400, "invalid_scope", f"The requested scope {params.get('scope')!r} is not allowed")
        for name in ("resource", "audience"):
            if params.get(name) and params[name].rstrip("/") != api_url_of(request):
                return _error(400, "invalid_target", f"The {name} {params[name]!r} is not served here")
        lifetime = state.lifetimes["oauth2"]
        now = int(time.time())
        claims = {"iss": issuer_of(request), "sub": params.get("username") or client_id, "client_id": client_id}
        access = make_jwt({**claims, "scope": scope, "exp": now + lifetime, "iat": now, "jti": uuid.uuid4().hex})
        state.issue("oauth2", {"scope": scope.split()}, access)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
        if grant in ("password", "refresh_token"):
            answer["refresh_token"] = state.mint_refresh_token(client_id, scope)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @api.get("/oauth2-api/{resource}")
    async def resource(resource: str, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        issued = state.check_token("oauth2", header[7:].strip()) if header.startswith("Bearer ") else None
        if issued is None:
            return _error(401, "invalid_token", "The access token is missing, expired or revoked",
                          **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
        needed = {"items": "items.read", "admin": "items.write"}.get(resource)
        if needed is None:
            return JSONResponse({"error": "not_found"}, 404)
        if needed not in issued.claims.get("scope", []):
            return _error(403, "insufficient_scope", f"This call needs the scope {needed}",
                          **{"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'})
        total, q = state.sizes["oauth2.items"], request.query_params
        make = DATASETS["oauth2.items"][0]
        if "offset" in q:  # offset paging (offset/limit) besides page numbers (page/per_page)
            size = served(state, "oauth2", int(q.get("limit", 20)))
            start, page = int(q["offset"]), None
            following = {"offset": start + size}
        else:
            page, size = int(q.get("page", 1)), served(state, "oauth2", int(q.get("per_page", 20)))
            start, following = (page - 1) * size, {"page": page + 1}
        indices = range(min(start, total), min(start + size, total))
        body: dict[str, Any] = {"items": [make(state.seed, i) for i in indices], "total": announced(state, "oauth2", total)}
        if page is not None:
            body["page"] = page
        if "next_links" in state.paging.get("oauth2", {}):
            body["next"] = next_link(state, "oauth2", request, **following) if start + size < total else None
        return JSONResponse(body)

    @api.post("/_admin/oauth2/refresh_token")
    async def seed_refresh_token(client_id: str, scope: str = DEFAULT_SCOPE) -> dict[str, str]:
        """A refresh token as a user would get once, interactively: the seed of a connection."""
        return {"refresh_token": state.mint_refresh_token(client_id, scope)}

    return api
