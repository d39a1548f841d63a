"""The sandbox as the kubelet: it writes the workload identity token file and keeps it fresh.

On AKS the kubelet writes the pod's projected service account token to the file named by
``AZURE_FEDERATED_TOKEN_FILE`` and rewrites it before it expires (at 80 % of its lifetime); the provider
reads the file again at every token request. ``airflow-vendorauth-sandbox --workload-token-file PATH``
does the same with tokens of its own cluster issuer (``/workload-issuer``), so ``kazi_workload_identity``
works with nothing written by hand. Each write is atomic (a new file renamed over the old one), as a
projected volume's update is: a reader never sees half a token.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from airflow_vendorauth.sandbox.workload_issuer import WorkloadIssuer, issuer_url

#: A projected token's lifetime (AKS's default ``expirationSeconds``) and when the kubelet rewrites it.
LIFETIME = 3600
REWRITE_AT = 0.8
#: ... but never later than this before it expires (clients refuse a token about to expire: short test
#: lifetimes would otherwise leave the file stale for the last fifth of each token's life).
REWRITE_BEFORE_EXPIRY = 10


def write_token(path: Path, token: str) -> None:
    """Replace ``path`` with ``token`` at once (owner-only: it is a credential)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_name(f".{path.name}.new")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    os.replace(fresh, path)


def keep_fresh(issuer: WorkloadIssuer, base_url: str, path: Path, lifetime: int = LIFETIME) -> threading.Event:
    """Write a token now and again at ``REWRITE_AT`` of each one's lifetime (at the latest
    ``REWRITE_BEFORE_EXPIRY`` seconds before it expires), until the returned event is set or the process
    ends (the thread is a daemon)."""
    stop = threading.Event()
    write_token(path, issuer.mint(issuer_url(base_url), lifetime=lifetime))

    every = max(1.0, min(lifetime * REWRITE_AT, lifetime - REWRITE_BEFORE_EXPIRY))

    def rotate() -> None:
        while not stop.wait(every):
            write_token(path, issuer.mint(issuer_url(base_url), lifetime=lifetime))

    threading.Thread(target=rotate, name="sandbox-projected-token", daemon=True).start()
    return stop


def azure_environment(path: Path, base_url: str) -> dict[str, str]:
    """What the AKS webhook injects into a pod whose service account names the sandbox's Kazi app."""
    from airflow_vendorauth.sandbox.state import SandboxCredentials

    c = SandboxCredentials()
    return {
        "AZURE_FEDERATED_TOKEN_FILE": str(path),
        "AZURE_CLIENT_ID": c.kazi_client_id,
        "AZURE_TENANT_ID": c.kazi_tenant,
        "AZURE_AUTHORITY_HOST": f"{base_url.rstrip('/')}/login/",
    }
