"""Secretless credentials, what they cost: a token request per client authentication style (Kazi against
the sandbox's Entra: a client secret, a signed certificate assertion, a federated assertion read from a
file), and API calls over mutual TLS against server-only TLS (the sandbox's mutual TLS mode), plus the
one-off cost of the TLS context that carries the client certificate. Runs interleaved; medians."""

from __future__ import annotations

import json
import os
import tempfile
import time

from harness import median, per_call_seconds, prepare_airflow_home, table

ROUNDS = 5
TOKEN_REQUESTS = 10
API_CALLS = 50


def token_requests() -> str:
    from airflow_vendorauth.hooks.kazi import KaziHook
    from airflow_vendorauth.sandbox.client import Sandbox

    with Sandbox() as sandbox, tempfile.TemporaryDirectory() as folder:
        os.environ.update(sandbox.environment())
        token_file = os.path.join(folder, "azure-identity-token")
        os.environ["AZURE_FEDERATED_TOKEN_FILE"] = token_file
        with open(token_file, "w") as out:
            out.write(sandbox.workload_token(lifetime=3600))
        hooks = {
            "client_secret_post": KaziHook("kazi_default"),
            "private_key_jwt (signs an RS256 assertion)": KaziHook("kazi_certificate"),
            "federated (reads and checks the file)": KaziHook("kazi_workload_identity"),
        }
        timings: dict[str, list[float]] = {name: [] for name in hooks}
        for _ in range(ROUNDS):
            for name, hook in hooks.items():
                timings[name].append(per_call_seconds(lambda h=hook: h.get_token(force_refresh=True), TOKEN_REQUESTS))
    base = median(timings["client_secret_post"])
    rows = [[n, f"{median(t) * 1e3:.2f}", f"{median(t) / base:.2f}x"] for n, t in timings.items()]
    return table(
        f"Kazi token request by client authentication ({ROUNDS} rounds x {TOKEN_REQUESTS}, median; the sandbox "
        "verifies the federated assertion against its issuer's JWKS, fetched per request)",
        ["client_auth", "ms per token request", "vs secret"],
        rows,
    )


def mutual_tls_calls() -> str:
    import ssl

    from airflow_vendorauth.auth.mtls import ClientCertificate, ssl_context
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.sandbox.client import Sandbox
    from airflow_vendorauth.sandbox.connections import mtls_connection
    from airflow_vendorauth.sandbox.mtls import SandboxPki

    with tempfile.TemporaryDirectory() as folder, Sandbox("--mtls-dir", folder) as sandbox:
        pki = SandboxPki(__import__("pathlib").Path(folder))
        os.environ["AIRFLOW_CONN_BENCH_MTLS"] = json.dumps(mtls_connection(sandbox.url, folder))
        # server-only TLS: the same server and CA, the secret-based client (its token is a plain bearer)
        plain = mtls_connection(sandbox.url, folder)
        plain["extra"] = {k: v for k, v in plain["extra"].items() if k not in ("client_certificate", "client_private_key")}
        plain |= {"login": sandbox.credentials.oauth2_basic_client_id, "password": sandbox.credentials.oauth2_client_secret}
        plain["extra"]["client_auth"] = "client_secret_basic"
        os.environ["AIRFLOW_CONN_BENCH_TLS"] = json.dumps(plain)
        hooks = {"server-only TLS, bearer token": OAuth2Hook("bench_tls"), "mutual TLS, bound token": OAuth2Hook("bench_mtls")}
        for hook in hooks.values():
            hook.request("GET", "/items")
        timings: dict[str, list[float]] = {name: [] for name in hooks}
        for _ in range(ROUNDS):
            for name, hook in hooks.items():
                timings[name].append(per_call_seconds(lambda h=hook: h.request("GET", "/items", params={"per_page": 1}), API_CALLS))
        builds = []
        for _ in range(20):
            ssl_context.cache_clear()
            started = time.perf_counter()
            context = ssl_context(ClientCertificate(pki.pem("client"), pki.key("client")), pki.ca_bundle)
            builds.append(time.perf_counter() - started)
            assert isinstance(context, ssl.SSLContext)
    base = median(timings["server-only TLS, bearer token"])
    rows = [[n, f"{median(t) * 1e6:.0f}", f"{median(t) / base:.2f}x"] for n, t in timings.items()]
    rows.append(["building the client-certificate TLS context (once per process)", f"{median(builds) * 1e6:.0f}", ""])
    return table(
        f"API calls over mutual TLS ({ROUNDS} rounds x {API_CALLS} calls on kept-alive connections, median)",
        ["variant", "us per call", "vs server-only TLS"],
        rows,
    )


def client_side_costs() -> str:
    """What the client itself spends per token request (no network): reading and checking the assertion
    file, against signing a private_key_jwt assertion."""
    import timeit

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from airflow_vendorauth.auth.assertions import signer_for
    from airflow_vendorauth.auth.federated import AssertionFile
    from airflow_vendorauth.sandbox.state import sandbox_key

    now = int(time.time())
    token = jwt.encode({"iss": "https://oidc.example", "sub": "system:serviceaccount:a:b", "iat": now, "exp": now + 3600},
                       ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    with tempfile.NamedTemporaryFile("w", suffix=".jwt", delete=False) as out:
        out.write(token)
    try:
        read = min(timeit.repeat(AssertionFile(out.name).read, number=500, repeat=ROUNDS)) / 500
    finally:
        os.unlink(out.name)
    signer = signer_for("client", *sandbox_key("rsa"))
    sign = min(timeit.repeat(lambda: signer.assertion("https://login.example/t/oauth2/token"), number=200, repeat=ROUNDS)) / 200
    return table(
        "Client-side cost per token request (best of rounds)",
        ["work", "us"],
        [["federated: read the file, decode its exp", f"{read * 1e6:.0f}"], ["private_key_jwt: sign RS256", f"{sign * 1e6:.0f}"]],
    )


def main() -> str:
    prepare_airflow_home()
    return client_side_costs() + "\n" + token_requests() + "\n" + mutual_tls_calls()


if __name__ == "__main__":
    main()
