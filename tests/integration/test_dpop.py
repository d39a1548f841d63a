"""DPoP (RFC 9449) against the sandbox: the example DAG through real Airflow, concurrent pages sync and
async, the shared caches, and what the sandbox refuses. The sandbox demands a nonce at its token
endpoint and its API and rotates both every 5 proofs; it refuses and counts any reused proof."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.integration.conftest import dagbag
from tests.services import require_redis

pytestmark = pytest.mark.integration

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
TOTAL = 230  # the sandbox's oauth2 items: 5 pages of 50


def _dpop_stats(sandbox: Sandbox) -> dict[str, int]:
    return sandbox.stats().get("oauth2", {})


def _no_token_or_proof_in(text: str, sandbox: Sandbox) -> None:
    for token in sandbox.issued_tokens():
        assert token not in text
    assert "eyJ" not in text, "a JWT (token or DPoP proof) reached the log"


def run_example_dag(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> tuple[object, Path]:
    """dag.test() of dags_examples/oauth2_dpop_items.py; returns the run and the output file."""
    import pendulum

    monkeypatch.setenv("VENDORAUTH_DATA_DIR", str(data_dir))
    monkeypatch.syspath_prepend(str(DAGS_FOLDER))
    sys.modules.pop("_common", None)  # another test may have imported it with another data folder
    bag = dagbag(dag_folder=str(DAGS_FOLDER / "oauth2_dpop_items.py"))
    assert bag.import_errors == {}, bag.import_errors
    run = bag.dags["oauth2_dpop_items"].test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
    return run, data_dir / "2026-11-24" / "oauth2_dpop" / "items.jsonl"


def test_example_dag_gets_through_nonce_challenges_with_no_proof_reused(
    vendor_sandbox: Sandbox,
    sandbox_connections: dict,
    airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    run, output = run_example_dag(monkeypatch, tmp_path)
    assert run.state == "success"  # type: ignore[attr-defined]
    records = [json.loads(line) for line in output.open()]
    assert len(records) == TOTAL and len({r["id"] for r in records}) == TOTAL
    stats = _dpop_stats(vendor_sandbox)
    assert stats["dpop_nonce_challenges_token"] >= 1  # the token endpoint demanded its nonce
    assert stats["dpop_nonce_challenges_api"] >= 1  # the API demanded its own
    assert stats.get("dpop_nonce_rotations_api", 0) >= 1  # and changed it while the scan ran
    assert stats.get("dpop_proof_reuse", 0) == 0
    assert stats["token_requests"] == 2  # a nonce demand and one token: no API nonce demand cost a token
    # every proof was checked: one per token request and API request (none came without one)
    assert stats["dpop_proofs"] == stats["token_requests"] + stats["api_requests"]
    logs = caplog.text + "".join(capfd.readouterr())  # the task logs (structlog writes to the terminal)
    assert "from the token endpoint (fetched)" in logs  # (the hook's lines are there)
    _no_token_or_proof_in(logs, vendor_sandbox)
    assert "retrying in" not in logs  # nonce demands are answered at once, not by the retry policy


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrent_pages_each_carry_their_own_proof(
    mode: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor_sandbox.configure(sizes={"oauth2.items": 1000})  # 20 pages
    hook = OAuth2Hook("oauth2_dpop")
    if mode == "sync":
        records = list(hook.paginate("/items", concurrency=4))
    else:
        import asyncio

        async def scan() -> list[dict]:
            try:
                return [r async for r in hook.apaginate("/items", concurrency=4)]
            finally:
                await hook.aclose()

        records = asyncio.run(scan())
    assert len({r["id"] for r in records}) == 1000
    assert hook.get_token().token_type == "DPoP"
    stats = _dpop_stats(vendor_sandbox)
    assert stats["token_requests"] == 2  # the first one challenged for the nonce, the second one served
    assert stats.get("dpop_proof_reuse", 0) == 0
    assert stats.get("dpop_nonce_rotations_api", 0) >= 3


def test_a_bound_token_without_its_proof_is_refused(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    import httpx

    token = OAuth2Hook("oauth2_dpop").get_token()
    for header in (f"DPoP {token.access_token}", f"Bearer {token.access_token}"):
        answer = httpx.get(f"{vendor_sandbox.url}/oauth2-api/items", headers={"Authorization": header})
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("DPoP ")


ANOTHER_PROCESS = """
import json
from airflow_vendorauth.hooks.oauth2 import OAuth2Hook

hook = OAuth2Hook("oauth2_dpop")
answer = hook.request("GET", "/items", params={"page": 2})
token = hook.get_token()
print(json.dumps({"status": answer.status_code, "source": token.source, "type": token.token_type,
                  "requests": hook.client.provider.requests_sent}))
"""


@pytest.mark.parametrize("cache", ["file", "redis"])
def test_another_process_uses_the_shared_token_with_the_key_stored_beside_it(
    cache: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import subprocess
    import uuid

    from cryptography.fernet import Fernet

    if cache == "redis":
        require_redis()
    setting = "redis://127.0.0.1:6379/13" if cache == "redis" else "file"
    monkeypatch.setenv("AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    # a credential of its own (auth_params is part of the fingerprint): no other test shares its entry
    conn = oauth2_connection(vendor_sandbox.url, dpop=True, token_cache=setting, auth_params={"run": uuid.uuid4().hex})
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DPOP", json.dumps(conn))
    first = OAuth2Hook("oauth2_dpop")
    assert first.request("GET", "/items").status_code == 200
    token = first.get_token()
    assert token.token_type == "DPoP" and token.proof_key

    done = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    other = json.loads(done.stdout.strip().splitlines()[-1])
    assert other == {"status": 200, "source": cache, "type": "DPoP", "requests": 0}
    assert vendor_sandbox.token_requests("oauth2") == 2  # a nonce challenge and one token, for both processes
    assert _dpop_stats(vendor_sandbox).get("dpop_proof_reuse", 0) == 0
    _no_token_or_proof_in(done.stderr + done.stdout, vendor_sandbox)
    if cache == "file":  # the key rests encrypted with the token, never in clear
        private = json.loads(token.proof_key)["d"].encode()
        assert not any(private in p.read_bytes() or b"proof_key" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    first.close()


def test_the_api_refuses_a_replayed_proof_and_counts_it(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    import httpx

    from airflow_vendorauth.auth.dpop import NONCES, ProofKey

    hook = OAuth2Hook("oauth2_dpop")
    hook.request("GET", "/items")  # learn the API's nonce
    token = hook.get_token()
    key = ProofKey.from_jwk(token.proof_key or "")

    url = f"{vendor_sandbox.url}/oauth2-api/items"
    proof = key.proof("GET", url, nonce=NONCES.get(httpx.URL(url)), access_token=token.access_token)
    headers = {"Authorization": f"DPoP {token.access_token}", "DPoP": proof}
    assert httpx.get(url, headers=headers).status_code == 200
    again = httpx.get(url, headers=headers)
    assert again.status_code == 401 and "replay" in again.json()["error_description"]
    assert _dpop_stats(vendor_sandbox)["dpop_proof_reuse"] == 1


def test_without_dpop_the_generic_type_is_unchanged(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    hook = OAuth2Hook("oauth2_default")
    assert len(list(hook.paginate("/items"))) == TOTAL
    assert hook.get_token().token_type == "Bearer" and hook.get_token().proof_key is None
    assert "dpop_proofs" not in _dpop_stats(vendor_sandbox)


@pytest.mark.parametrize("style", ["client_secret_post", "client_secret_json", "private_key_jwt", "none"])
def test_every_client_authentication_gets_a_bound_token_through_the_nonce_challenge(
    style: str, vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The challenged token request is built anew: a client assertion is never sent twice (the sandbox
    refuses a replayed one, as it refuses a replayed proof)."""
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DPOP", json.dumps(oauth2_connection(vendor_sandbox.url, client_auth=style, dpop=True)))
    hook = OAuth2Hook("oauth2_dpop")
    assert hook.request("GET", "/items").status_code == 200
    assert hook.get_token().token_type == "DPoP"
    stats = _dpop_stats(vendor_sandbox)
    assert stats["token_requests"] == 2 and stats["dpop_nonce_challenges_token"] == 1


def test_the_trigger_waits_with_dpop_and_holds_no_key(vendor_sandbox: Sandbox, sandbox_connections: dict) -> None:
    """The deferred wait: its kwargs name the connection only; in the triggerer it makes its own key,
    answers the nonce demands and polls until the list fills."""
    import asyncio
    import threading
    import time

    import pendulum

    from airflow_vendorauth.triggers.api import VendorApiTrigger

    vendor_sandbox.configure(sizes={"oauth2.items": 0})
    trigger = VendorApiTrigger(
        conn_id="oauth2_dpop", endpoint="/items", params={"page": 1}, check={"json_path": "total", "expected": TOTAL},
        poke_interval=0.2, deadline=pendulum.now("UTC").add(seconds=60).isoformat(),
    )
    _, kwargs = trigger.serialize()
    assert set(kwargs) == {"conn_id", "endpoint", "params", "check", "poke_interval", "deadline"}
    assert "proof" not in json.dumps(kwargs) and "jwk" not in json.dumps(kwargs)

    def refill_after_two_polls() -> None:
        deadline = time.monotonic() + 60
        while vendor_sandbox.api_requests("oauth2") < 3 and time.monotonic() < deadline:  # 1 nonce demand + 2 polls
            time.sleep(0.05)
        vendor_sandbox.configure(sizes={"oauth2.items": TOTAL})

    threading.Thread(target=refill_after_two_polls, daemon=True).start()

    async def wait() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    event = asyncio.run(wait())
    assert event["status"] == "success" and event["pokes"] >= 3
    stats = _dpop_stats(vendor_sandbox)
    assert stats["dpop_nonce_challenges_api"] >= 1 and stats.get("dpop_proof_reuse", 0) == 0
    assert stats["token_requests"] == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_redirect_at_home_is_followed_with_a_fresh_proof(
    mode: str, method: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    """The API answers 307 (or 303 to a POST) to a moved path on its own origin: httpx follows it by
    copying the request's headers, outside the auth flow. The proof must be signed anew for the URL and
    method it goes to now, never sent twice; a stale proof is refused, the token dropped, another fetched."""
    import asyncio

    hook = OAuth2Hook("oauth2_dpop")
    path, params = "/moved/items", {"page": 2, "per_page": 10, **({"see_other": 1} if method == "POST" else {})}
    if mode == "sync":
        answer = hook.request(method, path, params=params)
    else:

        async def call() -> Any:
            try:
                return await hook.arequest(method, path, params=params)
            finally:
                await hook.aclose()

        answer = asyncio.run(call())
    assert answer.status_code == 200, answer.text
    assert answer.json()["page"] == 2 and len(answer.json()["items"]) == 10  # the query went along
    assert str(answer.request.url).startswith(f"{vendor_sandbox.url}/oauth2-api/items?")
    assert answer.request.method == "GET"
    stats = _dpop_stats(vendor_sandbox)
    assert stats["redirects"] == 2  # the first went on to the API's nonce demand, then once more with it
    assert stats.get("dpop_proof_reuse", 0) == 0
    assert stats["token_requests"] == 2  # the nonce demand and one token: no token was dropped for a bad proof
    assert stats["dpop_proofs"] >= stats["token_requests"] + 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_redirect_to_another_origin_carries_no_token_nor_proof_and_its_way_home_drops_no_token(
    mode: str, vendor_sandbox: Sandbox, sandbox_connections: dict
) -> None:
    """307 to another origin (the sandbox as ``localhost``), which sends the request back home: nothing of
    ours goes there (neither ``Authorization: DPoP`` nor a proof), and the 401 the request then meets at
    home (it comes back bare) is about the missing token, not the token: it is not dropped for another."""
    import asyncio

    from airflow_vendorauth.exceptions import VendorApiError

    hook = OAuth2Hook("oauth2_dpop")
    assert hook.request("GET", "/items").status_code == 200  # a token, and the API's nonce learnt
    before = _dpop_stats(vendor_sandbox)["token_requests"]
    with pytest.raises(VendorApiError, match="401"):
        if mode == "sync":
            hook.request("GET", "/away/items")
        else:

            async def call() -> Any:
                try:
                    return await hook.arequest("GET", "/away/items")
                finally:
                    await hook.aclose()

            asyncio.run(call())
    stats = _dpop_stats(vendor_sandbox)
    assert stats["foreign_hops"] >= 1
    assert stats.get("credentials_sent_to_another_origin", 0) == 0
    assert stats["token_requests"] == before  # the good token was kept
    assert stats.get("dpop_proof_reuse", 0) == 0
