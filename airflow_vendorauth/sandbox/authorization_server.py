"""A standards-conformant OAuth 2.0 authorization server and API, for the generic ``oauth2`` type.

Issuer ``{base}/oauth2``, metadata at ``{issuer}/.well-known/openid-configuration`` and (RFC 8414)
``{base}/.well-known/oauth-authorization-server/oauth2``, token endpoint ``{issuer}/token``. Three grants
(client_credentials, password, refresh_token with rotation: each refresh token works once, and reuse
is counted as ``refresh_reuse``), and five clients, each registered for one client authentication
method (RFC 6749 2.3.1 Basic with form-encoded id and secret, post, JSON, RFC 7523 private_key_jwt with
an RSA and an EC key, none). Errors are RFC 6749 5.2's: ``invalid_client`` (401, with
``WWW-Authenticate`` for Basic), ``invalid_grant``, ``invalid_scope``, ``unsupported_grant_type``,
``invalid_target`` (RFC 8707). The API at ``{base}/oauth2-api`` answers ``insufficient_scope`` (403).

DPoP (RFC 9449): a token request with a ``DPoP`` proof gets a token bound to the proof's key
(``token_type: DPoP``, ``cnf.jkt``), and the client ``oauth2-dpop-client`` gets only such tokens; the
API takes a bound token only as ``Authorization: DPoP`` with a proof of that key. Proofs and nonces are
checked by :mod:`.dpop` (both places demand and rotate nonces; a reused proof is refused and counted).
In mutual TLS mode (``--mtls-dir``, RFC 8705) two more clients authenticate by their TLS certificate:
``oauth2-mtls-client`` (``tls_client_auth``: any certificate the test CA issued with its name as subject)
and ``oauth2-selfsigned-client`` (``self_signed_tls_client_auth``: its registered certificate). Whenever a
token request comes over a client certificate, the token is bound to it (``cnf.x5t#S256``), and the API
refuses a bound token over any other certificate (401 ``invalid_token``).
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
from airflow_vendorauth.sandbox.dpop import Refusal
from airflow_vendorauth.sandbox.federation import FederatedCredential, check_federated
from airflow_vendorauth.sandbox.identity import make_jwt
from airflow_vendorauth.sandbox.mtls import MTLS_CLIENT, SELF_SIGNED_CLIENT, peer_certificate, thumbprint
from airflow_vendorauth.sandbox.paging_edges import generic_page
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
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
        "dpop_signing_alg_values_supported": ["ES256"],
        "tls_client_certificate_bound_access_tokens": True,
        "mtls_endpoint_aliases": {"token_endpoint": f"{issuer}/mtls/token"},
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
    clients = {**c.oauth2_clients(), MTLS_CLIENT: "tls_client_auth", SELF_SIGNED_CLIENT: "self_signed_tls_client_auth"}
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
        elif clients.get(client_id, "").endswith("tls_client_auth"):
            method = clients[client_id]
        else:
            method = "none"
    registered = clients.get(client_id)
    if registered is None:
        return None, _error(401, "invalid_client", f"Unknown client {client_id!r}")
    if registered != method:
        return None, _error(401, "invalid_client", f"Client {client_id!r} must authenticate with {registered}, not {method}")
    if method.startswith("client_secret") and not hmac.compare_digest(secret, c.oauth2_client_secret):
        return None, _error(401, "invalid_client", "Client authentication failed: wrong client secret")
    if method.endswith("tls_client_auth"):
        if (wrong := _check_certificate(state, request, client_id, method)) is not None:
            return None, wrong
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


def _url_of(request: Request) -> str:
    """The request's URL as a DPoP proof's ``htu`` names it: no query, no fragment."""
    return str(request.url.replace(query="", fragment=""))


def _dpop_token_refusal(refusal: Refusal) -> JSONResponse:
    headers = {"DPoP-Nonce": refusal.nonce} if refusal.nonce else {}
    return _error(400, refusal.error, refusal.description, **headers)


def _dpop_api_refusal(error: str, description: str, nonce: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": f'DPoP error="{error}", error_description="{description}", algs="ES256"'}
    return _error(401, error, description, **headers, **({"DPoP-Nonce": nonce} if nonce else {}))
async def _authenticate_federated(request: Request, body: _Body, audience: str) -> tuple[str | None, Response | None]:
    """RFC 7523 2.2 with an assertion another issuer signed (workload identity): the client trusts the
    sandbox's workload issuer for its airflow-worker service account, with the token endpoint as audience."""
    client_id = body.params.get("client_id", "")
    if body.params.get("client_assertion_type") != ASSERTION_TYPE or not body.params.get("client_assertion"):
        return None, _error(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}, with a client_assertion")
    trusted = [FederatedCredential(audience=audience)]
    refusal = await check_federated(body.params["client_assertion"], trusted, str(request.base_url))
    if refusal is not None:
        return None, _error(401, "invalid_client", f"Client assertion refused: {refusal.description}")
    return client_id, None


def _check_certificate(state: SandboxState, request: Request, client_id: str, method: str) -> Response | None:
    """RFC 8705 2.1: tls_client_auth wants a certificate of the trusted CA naming the client as subject;
    self_signed_tls_client_auth the very certificate registered for the client."""
    certificate = peer_certificate(request.scope)
    if certificate is None:
        return _error(401, "invalid_client", f"Client {client_id!r} authenticates with {method}: present its TLS certificate")
    subject = certificate.subject.rfc4514_string()
    if method == "tls_client_auth":
        if certificate.issuer == certificate.subject or subject != f"CN={client_id}":
            return _error(401, "invalid_client", f"The certificate's subject {subject!r} is not registered for {client_id!r}")
    elif thumbprint(certificate) not in state.self_signed_certificates.get(client_id, ()):
        return _error(401, "invalid_client", f"The certificate is not the one registered for {client_id!r}")
    return None


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
    @api.post("/oauth2/mtls/token")  # RFC 8705 5: the alias clients with certificates use (the same endpoint here)
    async def token(request: Request) -> Response:
        if request.url.path.endswith("/mtls/token"):
            state.count("oauth2", "mtls_alias_token_requests")
        body = await _Body.read(request)
        if body is None:
            return _error(400, "invalid_request", "Send a form (or, for client_secret_json, a JSON object)")
        audience = state.assertion_audience or f"{issuer_of(request)}/token"
        if state.credentials.oauth2_clients().get(body.params.get("client_id", "")) == "federated":
            client_id, refusal = await _authenticate_federated(request, body, audience)
        else:
            client_id, refusal = _authenticate(state, request, body, audience)
        if refusal is not None or client_id is None:
            return refusal or _error(401, "invalid_client", "Client authentication failed")
        c, grant, params = state.credentials, body.params.get("grant_type"), body.params
        jkt: str | None = None
        if request.headers.get("dpop") or client_id == c.oauth2_dpop_client_id:
            jkt, dpop_refusal = state.dpop.check(request.headers.get("dpop"), "POST", _url_of(request), where="token")
            if dpop_refusal is not None:
                return _dpop_token_refusal(dpop_refusal)
        refresh_scope: str | None = None
        successor: str | None = None
        if grant == "password":
            if params.get("username") != c.oauth2_username or not hmac.compare_digest(
                params.get("password", ""), c.oauth2_password
            ):
                return _error(400, "invalid_grant", "The resource owner's credentials are invalid")
        elif grant == "refresh_token":
            refresh_scope, why, successor = state.spend_refresh_token(params.get("refresh_token", ""), client_id)
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
        claims: dict[str, Any] = {"iss": issuer_of(request), "sub": params.get("username") or client_id, "client_id": client_id}
        if (certificate := peer_certificate(request.scope)) is not None:  # RFC 8705 3: bound to the certificate
            claims["cnf"] = {"x5t#S256": thumbprint(certificate)}
            state.count("oauth2", "bound_tokens")
        if jkt:  # RFC 9449 6: bound to the DPoP proof's key
            claims["cnf"] = {**claims.get("cnf", {}), "jkt": jkt}
        access = make_jwt({**claims, "scope": scope, "exp": now + lifetime, "iat": now, "jti": uuid.uuid4().hex})
        state.issue("oauth2", {"scope": scope.split(), "client_id": client_id, **({"cnf": claims["cnf"]} if "cnf" in claims else {})}, access)
        token_type = "DPoP" if jkt else "Bearer"
        answer: dict[str, Any] = {"access_token": access, "token_type": token_type, "expires_in": lifetime, "scope": scope}
        if grant in ("password", "refresh_token"):
            parent = params.get("refresh_token") if grant == "refresh_token" else None
            answer["refresh_token"] = successor or state.mint_refresh_token(client_id, scope, parent=parent)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @api.api_route("/oauth2-api/moved/{resource}", methods=["GET", "POST"])
    async def moved(resource: str, request: Request) -> Response:
        """A resource that moved: 307 to its new path (the query kept), as a gateway answers before any
        check of the token; a POST with ``see_other`` gets 303, which the client follows with a GET."""
        status = 303 if request.method == "POST" and "see_other" in request.query_params else 307
        target = request.url.replace(path=f"/oauth2-api/{resource}")
        state.count("oauth2", "redirects")
        return Response(status_code=status, headers={"Location": str(target)})

    @api.get("/oauth2-api/away/{resource}")
    async def away(resource: str, request: Request) -> Response:
        """307 to another origin (this server as ``localhost``: a CDN, a storage bucket), which sends the
        request back home (``/back``): the credentials must not go there, nor come back by themselves."""
        state.count("oauth2", "redirects")
        target = request.url.replace(hostname="localhost", path=f"/oauth2-api/back/{resource}")
        return Response(status_code=307, headers={"Location": str(target)})

    @api.get("/oauth2-api/back/{resource}")
    async def back(resource: str, request: Request) -> Response:
        carried = [name for name in ("authorization", "dpop") if name in request.headers]
        state.count("oauth2", "foreign_hops")
        if carried:
            state.count("oauth2", "credentials_sent_to_another_origin")
        target = request.url.replace(hostname="127.0.0.1", path=f"/oauth2-api/{resource}")
        return Response(status_code=307, headers={"Location": str(target)})

    @api.get("/oauth2-api/{resource}")
    async def resource(resource: str, request: Request) -> Response:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        issued = state.check_token("oauth2", value.strip()) if scheme in ("Bearer", "DPoP") else None
        if issued is None:
            return _error(401, "invalid_token", "The access token is missing, expired or revoked",
                          **{"WWW-Authenticate": f'{scheme if scheme == "DPoP" else "Bearer"} error="invalid_token"'})
        bound = issued.claims.get("cnf", {}).get("x5t#S256")
        presented = peer_certificate(request.scope)
        if bound and (presented is None or thumbprint(presented) != bound):
            state.count("oauth2", "bound_token_refused")
            return _error(401, "invalid_token", "The access token is bound to another certificate than the one presented",
                          **{"WWW-Authenticate": 'Bearer error="invalid_token"'})
        jkt = issued.claims.get("cnf", {}).get("jkt")
        served_headers: dict[str, str] = {}
        if jkt is not None or scheme == "DPoP":
            if jkt is None or scheme != "DPoP":
                return _dpop_api_refusal("invalid_token", "A DPoP-bound token goes with the DPoP scheme, a bearer token with Bearer")
            _, refusal = state.dpop.check(
                request.headers.get("dpop"), request.method, _url_of(request), where="api",
                access_token=value.strip(), bound_to=jkt,
            )
            if refusal is not None:
                return _dpop_api_refusal(refusal.error, refusal.description, refusal.nonce)
            served_headers = {"DPoP-Nonce": state.dpop.nonce("api")}  # RFC 9449 9: a new nonce in any answer
        needed = {"items": "items.read", "admin": "items.write"}.get(resource)
        if needed is None:
            return JSONResponse({"error": "not_found"}, 404)
        if needed not in issued.claims.get("scope", []):
            return _error(403, "insufficient_scope", f"This call needs the scope {needed}",
                          **{"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'})
        since = int(request.query_params.get("since", 0))  # a filter: only the items from this index on
        make = DATASETS["oauth2.items"][0]
        body, paging_headers = generic_page(
            state, request, max(0, state.sizes["oauth2.items"] - since), lambda r: [make(state.seed, i + since) for i in r]
        )
        return JSONResponse(body, headers={**served_headers, **paging_headers})

    @api.post("/_admin/oauth2/refresh_token")
    async def seed_refresh_token(client_id: str, scope: str = DEFAULT_SCOPE) -> dict[str, str]:
        """A refresh token as a user would get once, interactively: the seed of a connection."""
        return {"refresh_token": state.mint_refresh_token(client_id, scope)}

    @api.get("/_admin/oauth2/refresh_log")
    async def refresh_log() -> list[dict[str, Any]]:
        """Every refresh token presented since the last reset, in order, with its outcome."""
        with state.lock:
            return list(state.refresh_log)

    return api
