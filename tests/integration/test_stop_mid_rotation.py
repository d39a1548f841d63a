"""Airflow's SIGTERM while a page thread is in the middle of a refresh token's rotation (issue 31, case 1).

A real task process (``dag.test()`` of tests/dags/stopped_scan.py, as tests/integration/test_sigterm_commit.py
runs it) scans the sandbox's generic API through an ``oauth2`` connection whose refresh token rotates
(``grant_type`` refresh_token, the sandbox refusing and counting as ``refresh_reuse`` any spent one sent
again), with a file cache, four page threads and 4-second access tokens: the refreshes happen in the page
threads. The token endpoint answers the second refresh slowly (ROTATION_MS); the test sends SIGTERM once that
refresh reached the server. The stopped try must let the rotation finish before it closes the hook (and the
token endpoint's client with it), and must not resend the spent refresh token: the server then sees no
reuse, the retry finishes the scan, and the chain left in the cache is the newest (a fresh hook refreshes
with it). Before the fix the hook was closed first: the refresh in flight failed (``Bad file descriptor``)
and, the stop no longer reading as asked, was retried with the refresh token the server had just rotated."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import oauth2_connection
from tests.integration.test_sigterm_commit import ROOT, scan_state, task_process, wait_for

pytestmark = pytest.mark.integration

CONN_ID = "oauth2_rotating"
#: Access tokens live LIFETIME seconds: refreshed (rotated) after about half of it, in a page thread.
LIFETIME = 4
#: The token endpoint's answer to every refresh after the first takes this long (within the stopped try's
#: grace for held work, stopping.HOLD_GRACE_SECONDS).
ROTATION_MS = 1800
PAGE_SIZE, PAGES, PAGE_MS = 50, 300, 40


def test_a_stop_while_a_page_thread_rotates_the_refresh_token_keeps_the_chain(
    vendor_sandbox: Sandbox, sandbox_connections: dict, airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vendor_sandbox.configure(lifetimes={"oauth2": LIFETIME}, sizes={"oauth2.items": PAGES * PAGE_SIZE})
    vendor_sandbox.add_fault(vendor="oauth2", route="/items", latency_ms=PAGE_MS)
    vendor_sandbox.add_fault(vendor="oauth2", route="token", latency_ms=ROTATION_MS, after=1)
    conn = oauth2_connection(vendor_sandbox.url, grant_type="refresh_token", token_cache="file")
    conn["extra"]["refresh_token"] = vendor_sandbox.seed_refresh_token(conn["login"])
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR", str(tmp_path / "tokens"))
    output, log = tmp_path / "items.jsonl", tmp_path / "task-process.log"
    env = {
        **os.environ,
        "STOP_OUTPUT": str(output),
        "STOP_RETRY_DELAY": "1",
        "STOP_CONCURRENCY": "4",
        "STOP_CONN_ID": CONN_ID,
        "STOP_ENDPOINT": "/items",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def slow_refresh_reached() -> bool:
        (token_rule,) = [rule for rule in vendor_sandbox.faults() if rule["route"] == "token"]
        return int(token_rule["served"]) >= 2  # the first refresh was answered at once, the second is slow

    with task_process(env, log) as child:
        wait_for("a page thread's slow refresh at the server", slow_refresh_reached, child, log, 120)
        child.send_signal(signal.SIGTERM)  # mid-rotation: the server holds the refresh token, not yet rotated
        child.wait(timeout=180)
    said = log.read_text(errors="replace")
    stats = vendor_sandbox.stats()["oauth2"]
    assert stats.get("refresh_reuse", 0) == 0, f"a spent refresh token was sent again ({stats}):\n{said[-6000:]}"
    assert "in _on_term" in said and "ScanStopped: the task was told to stop" in said, said[-6000:]
    assert child.returncode == 0 and "dag.test() ended: success" in said, said[-6000:]
    assert scan_state()[1] == "success"
    # the rotation in flight at the stop finished, and was stored, between the stopped try and its retry
    stopped_try = said[said.index("/items stopped after") : said.index("Resuming /items")]
    assert "from the token endpoint (fetched, stored in the file cache)" in stopped_try, said[-6000:]
    ids = [json.loads(line)["id"] for line in output.open()]
    assert len(ids) == len(set(ids)) == PAGES * PAGE_SIZE  # the retry finished the scan, every record once

    # the chain the cache kept is the newest: a fresh process's hook refreshes with it, no reuse
    from airflow_vendorauth.hooks.oauth2 import OAuth2Hook
    from airflow_vendorauth.sandbox.process_state import forget_process_state

    forget_process_state()
    with OAuth2Hook(CONN_ID) as hook:
        assert hook.get_token(force_refresh=True).access_token
    assert vendor_sandbox.stats()["oauth2"].get("refresh_reuse", 0) == 0
