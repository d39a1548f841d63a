"""A workload identity issuer, as a Kubernetes cluster's OIDC issuer (AKS ``--enable-oidc-issuer``) is one:
a discovery document and a JWKS, and projected service account tokens minted for tests.

Issuer ``{base}/workload-issuer``; ``{issuer}/.well-known/openid-configuration`` names ``jwks_uri``
``{issuer}/openid/v1/jwks`` (the paths AKS uses). Tokens are ES256 JWTs with ``kid``, ``iss``, ``sub``
(``system:serviceaccount:<namespace>:<name>``), ``aud`` (``api://AzureADTokenExchange`` for Entra), ``iat``,
``nbf`` and ``exp``; ``POST /_admin/workload_identity/token`` mints one (what the kubelet writes to the pod).
The signing key is made when the sandbox starts: nothing to leak, nothing that outlives the process.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Request

PATH = "/workload-issuer"
ENTRA_AUDIENCE = "api://AzureADTokenExchange"
#: The service account the sandbox's Entra apps trust (their federated identity credential's subject).
DEFAULT_SUBJECT = "system:serviceaccount:airflow:airflow-worker"


def issuer_url(base_url: str) -> str:
    return base_url.rstrip("/") + PATH


@dataclass
class WorkloadIssuer:
    """The issuer's signing key (ES256, made at start) and its key id."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def mint(
        self,
        issuer: str,
        *,
        subject: str = DEFAULT_SUBJECT,
        audience: str = ENTRA_AUDIENCE,
        lifetime: int = 3600,
        not_before_in: int = 0,
        now: float | None = None,
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": issuer,
            "sub": subject,
            "aud": [audience],
            "iat": issued,
            "nbf": issued + not_before_in,
            "exp": issued + lifetime,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {"namespace": subject.split(":")[2] if subject.count(":") >= 3 else "default"},
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})


def router(issuer: WorkloadIssuer) -> APIRouter:
    api = APIRouter()

    @api.get(PATH + "/.well-known/openid-configuration")
    async def discovery(request: Request) -> dict[str, Any]:
        url = issuer_url(str(request.base_url))
        return {
            "issuer": url,
            "jwks_uri": f"{url}/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }

    @api.get(PATH + "/openid/v1/jwks")
    async def jwks() -> dict[str, Any]:
        return issuer.jwks()

    @api.post("/_admin/workload_identity/token")
    async def mint(request: Request) -> dict[str, str]:
        """A projected service account token, as the kubelet writes it into the pod."""
        body = await request.json() if (await request.body()) else {}
        token = issuer.mint(
            issuer_url(str(request.base_url)),
            subject=body.get("subject", DEFAULT_SUBJECT),
            audience=body.get("audience", ENTRA_AUDIENCE),
            lifetime=int(body.get("lifetime", 3600)),
            not_before_in=int(body.get("not_before_in", 0)),
            now=body.get("now"),
        )
        return {"token": token}

    return api
