"""DPoP against the independent server (oidc-provider; tests/peers/server.mjs), not our own sandbox: its
token endpoint and its resource demand nonces (the resource rotates its own every 3 requests), refuse
replayed proofs, and check htm, htu, iat, ath and the bound key. Through real Airflow (dag.test() of the
example DAG) and through the hook, sync and async, with a client secret and with private_key_jwt."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
from airflow_vendorauth.sandbox.process_state import forget_process_state
from tests.integration.conftest import dagbag
from tests.peers.harness import SCOPE, SECRET, PeerServer

pytestmark = pytest.mark.integration

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
TOTAL = 250  # the peer's items; pages of 50, the scan stops at the empty sixth


def dpop_connection(peer: PeerServer, client_id: str = "dpop-client", **extra: Any) -> dict[str, Any]:
    pagination = {"style": "page_number", "page_param": "page", "size_param": "per_page", "page_size": 50,
                  "records_path": "items"}
    return {
        "conn_type": "oauth2",
        "host": f"{peer.issuer}/api",
        "login": client_id,
        "password": SECRET if "client_auth" not in extra else None,
        "extra": {"issuer": peer.issuer, "dpop": True, "scope": SCOPE, "pagination": pagination, **extra},
    }


@pytest.fixture
def fresh(peer: PeerServer) -> dict[str, Any]:
    forget_process_state()
    return peer.stats()


def grew(before: dict[str, Any], after: dict[str, Any], name: str) -> int:
    return int(after[name]) - int(before[name])


def test_example_dag_gets_through_the_peers_nonce_challenges_with_no_proof_reused(
    peer: PeerServer,
    fresh: dict[str, Any],
    airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import logging

    import pendulum

    caplog.set_level(logging.INFO)

    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DPOP", json.dumps(dpop_connection(peer)))
    monkeypatch.setenv("VENDORAUTH_DATA_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(DAGS_FOLDER))
    sys.modules.pop("_common", None)
    bag = dagbag(dag_folder=str(DAGS_FOLDER / "oauth2_dpop_items.py"))
    assert bag.import_errors == {}, bag.import_errors
    run = bag.dags["oauth2_dpop_items"].test(logical_date=pendulum.datetime(2026, 11, 24, tz="UTC"))
    assert run.state == "success"
    output = tmp_path / "2026-11-24" / "oauth2_dpop" / "items.jsonl"
    assert len({json.loads(line)["id"] for line in output.open()}) == TOTAL
    after = peer.stats()
    assert grew(fresh, after, "token_nonce_challenges") >= 1
    assert grew(fresh, after, "api_nonce_challenges") >= 1
    assert grew(fresh, after, "api_nonce_rotations") >= 1
    assert after["proofs_reused"] == 0
    assert grew(fresh, after, "token_requests") == 2  # a nonce demand and one token, whatever the API demanded
    assert grew(fresh, after, "proofs_seen") == grew(fresh, after, "token_requests") + grew(fresh, after, "api_requests")
    assert after["tokens_issued"]["DPoP"] >= 1
    refused = after["api_refused"][len(fresh["api_refused"]):]
    assert all(r.startswith("use_dpop_nonce") for r in refused), refused
    logs = caplog.text + "".join(capfd.readouterr())  # the task logs (structlog writes to the terminal)
    assert "from the token endpoint (fetched)" in logs  # (the hook's lines are there)
    assert "retrying in" not in logs  # nonce demands are answered at once, not by the retry policy
    assert "eyJ" not in logs  # no proof (nor any JWT) in the task logs


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrent_pages_sync_and_async(
    mode: str, peer: PeerServer, fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DPOP", json.dumps(dpop_connection(peer)))
    hook = OAuth2Hook("oauth2_dpop")
    if mode == "sync":
        records = list(hook.paginate("/items", concurrency=4))
    else:
        import asyncio

        async def scan() -> list[dict[str, Any]]:
            try:
                return [r async for r in hook.apaginate("/items", concurrency=4)]
            finally:
                await hook.aclose()

        records = asyncio.run(scan())
    assert len({r["id"] for r in records}) == TOTAL
    after = peer.stats()
    assert after["proofs_reused"] == 0
    assert grew(fresh, after, "api_nonce_rotations") >= 2
    assert grew(fresh, after, "token_requests") == 2  # a nonce challenge, then the token


def test_private_key_jwt_and_dpop_together(
    peer: PeerServer, fresh: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = dpop_connection(peer, "jwt-dpop-client", client_auth="private_key_jwt", private_key=peer.material.jwt_key_pem)
    monkeypatch.setenv("AIRFLOW_CONN_OAUTH2_DPOP", json.dumps(conn))
    hook = OAuth2Hook("oauth2_dpop")
    assert hook.request("GET", "/items").json()["client_id"] == "jwt-dpop-client"
    assert hook.get_token().token_type == "DPoP"
    after = peer.stats()
    assert grew({"n": fresh["client_auth_methods"].get("private_key_jwt", 0)},
                {"n": after["client_auth_methods"]["private_key_jwt"]}, "n") == 1
    assert after["proofs_reused"] == 0
