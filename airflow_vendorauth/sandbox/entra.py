"""Microsoft Entra ID as the sandbox plays it for Kazi (v1) and Keyavi (v2.0): the checks every token request
passes first (tenant, grant, application, client secret or certificate assertion), Entra's AADSTS error
bodies, and each tenant's OpenID configuration (so Microsoft's own client library can be pointed here).
The grant-specific checks stay with the token endpoints in :mod:`.identity`."""

from __future__ import annotations

import hmac
import time
import uuid

import jwt
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from airflow_vendorauth.sandbox.assertions import RegisteredCertificate
from airflow_vendorauth.sandbox.federation import check_federated
from airflow_vendorauth.sandbox.state import SandboxState, sandbox_key

#: A Kazi client registered without any role: its tokens get 401 from the API (Kazi's trap).
KAZI_NO_ROLE_CLIENT = "kazi-sandbox-client-without-roles"


def entra_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description}\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: "
            f"{uuid.uuid4()}\r\nTimestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime())}",
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status_code=status,
    )


#: How Entra ID words each way a client assertion fails (AADSTS codes; a replayed jti is the sandbox's
#: choice of code, as Entra's public list names none for it).
_ASSERTION_REFUSALS = {
    "unknown_key": (700027, "The certificate with identifier used to sign the client assertion is not registered on application."),
    "signature": (700027, "Client assertion failed signature validation."),
    "audience": (700023, "Client assertion audience claim does not match Realm issuer."),
    "issuer": (700021, "Client assertion application identifier doesn't match 'client_id' parameter."),
    "time": (700024, "Client assertion is not within its valid time range."),
    "replayed": (50013, "Assertion failed signature validation. [Reason - The assertion was already used.]"),
    "malformed": (50027, "Invalid JWT token. The client assertion is not a well-formed JWT."),
}
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def client_auth(
    state: SandboxState, form: dict[str, str], client_secret: str, audience: str, base_url: str
) -> Response | None:
    """A client secret, a client assertion signed with the certificate registered for the app, or a token of
    an external issuer the app trusts (a federated identity credential: workload identity)."""
    if "client_assertion" not in form:
        if not hmac.compare_digest(form.get("client_secret", ""), client_secret):
            return entra_error(
                401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent is correct."
            )
        return None
    if "client_secret" in form:
        return entra_error(400, "invalid_request", 700025, "Send either a client_secret or a client_assertion, not both.")
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        return entra_error(400, "invalid_request", 7000216, "'client_assertion_type' is missing or malformed.")
    if _issuer_of(form["client_assertion"]) not in (None, form.get("client_id")):
        federated = await check_federated(form["client_assertion"], state.federated_credentials, base_url)
        if federated is not None:
            # Entra answers an unmatched federated credential with invalid_request, a bad assertion with invalid_client
            error = "invalid_request" if federated.code in (70021, 700213) else "invalid_client"
            return entra_error(400 if error == "invalid_request" else 401, error, federated.code, federated.description)
        state.federated_accepted(form["client_assertion"])
        return None
    registered = [RegisteredCertificate(sandbox_key("rsa")[1])]
    refusal = state.assertions.verify(
        form["client_assertion"], client_id=form.get("client_id", ""), audience=audience, certificates=registered
    )
    if refusal is not None:
        code, words = _ASSERTION_REFUSALS[refusal.problem]
        return entra_error(401, "invalid_client", code, words)
    return None


def _issuer_of(assertion: str) -> str | None:
    try:
        return jwt.decode(assertion, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return None


async def check_token_request(
    state: SandboxState, form: dict[str, str] | None, tenant: str, vendor: str, audience: str, base_url: str
) -> Response | None:
    c = state.credentials
    known_tenant = c.kazi_tenant if vendor == "kazi" else c.keyavi_tenant
    client_id = c.kazi_client_id if vendor == "kazi" else c.keyavi_client_id
    client_secret = c.kazi_client_secret if vendor == "kazi" else c.keyavi_client_secret
    if form is None:
        return entra_error(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."
        )
    if tenant != known_tenant:
        return entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
    if "grant_type" not in form:
        return entra_error(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."
        )
    allowed_clients = (client_id, KAZI_NO_ROLE_CLIENT) if vendor == "kazi" else (client_id,)
    if form.get("client_id") not in allowed_clients:
        return entra_error(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{form.get('client_id')}' was not found in the directory.",
        )
    return await client_auth(state, form, client_secret, audience, base_url)


def openid_configuration(state: SandboxState, request: Request, tenant: str, version: str) -> Response:
    c = state.credentials
    if tenant not in (c.kazi_tenant, c.keyavi_tenant):
        return entra_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
    # The document names the endpoints the way it was asked for: under /login/ or, as Entra's own login
    # host does (and as MSAL requires: https://host/{tenant}), at the root.
    prefix = "/login" if request.url.path.startswith("/login/") else ""
    base = f"{str(request.base_url).rstrip('/')}{prefix}/{tenant}"
    path = "/oauth2/v2.0" if version == "v2.0" else "/oauth2"
    return JSONResponse(
        {
            "issuer": f"{base}/v2.0" if version == "v2.0" else f"{base}/",
            "token_endpoint": f"{base}{path}/token",
            "authorization_endpoint": f"{base}{path}/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }
    )
