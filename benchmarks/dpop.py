"""DPoP's cost per call: an oauth2 connection with bearer tokens vs the same with ``dpop: true`` (a fresh
ES256 proof per call, checked by the sandbox, which also rotates its nonce), against the same sandbox
route, runs interleaved; and the proof alone (signing, no I/O).

    cd benchmarks && ../.venv/bin/python dpop.py
"""

from __future__ import annotations

import os

from harness import median, per_call_seconds, prepare_airflow_home, table

ROUNDS = 7
CALLS = 200


def main() -> str:
    prepare_airflow_home()
    from airflow_vendorauth.auth.dpop import ProofKey
    from airflow_vendorauth.sandbox.client import Sandbox

    key = ProofKey.generate()
    url, token = "https://api.example.com/v1/items", "t" * 40
    proof_alone = [per_call_seconds(lambda: key.proof("GET", url, nonce="n", access_token=token), 2000) for _ in range(ROUNDS)]
    with Sandbox() as sandbox:
        os.environ.update(sandbox.environment())
        from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

        bearer, bound = OAuth2Hook("oauth2_default"), OAuth2Hook("oauth2_dpop")
        params = {"per_page": 1}
        for hook in (bearer, bound):
            hook.request("GET", "/items", params=params)  # tokens and nonces in place
        variants = {
            "oauth2, bearer token": lambda: bearer.request("GET", "/items", params=params),
            "oauth2, dpop: true": lambda: bound.request("GET", "/items", params=params),
        }
        timings: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, call in variants.items():
                timings[name].append(per_call_seconds(call, CALLS))
        stats = sandbox.stats()["oauth2"]
    base = median(timings["oauth2, bearer token"])
    rows = [[name, f"{median(t) * 1e6:.0f}", f"{median(t) / base:.2f}x"] for name, t in timings.items()]
    rows.append(["a proof alone (ES256 sign, no I/O)", f"{median(proof_alone) * 1e6:.0f}", ""])
    note = (
        f"\nSandbox: {stats.get('dpop_proofs', 0)} proofs checked, {stats.get('dpop_nonce_challenges_api', 0)} API nonce "
        f"demands, {stats.get('dpop_proof_reuse', 0)} reused."
    )
    text = table(f"DPoP per-call cost ({ROUNDS} interleaved rounds x {CALLS} calls, median)",
                 ["variant", "us per call", "vs bearer"], rows)
    print(note)
    return text + note


if __name__ == "__main__":
    main()
