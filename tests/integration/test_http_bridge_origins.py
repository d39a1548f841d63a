"""The bridge keeps credentials at home (airflow_vendorauth/http.py), tested with two real origins on
127.0.0.1 (two ports) and Airflow's own HttpHook: the Kazi token comes from the sandbox, the HTTP
connection points at origin "home", which redirects to origin "other". The other origin must receive no
Authorization and no vendor header, and its 401 is never answered with a token. The 401 resend replays a
file body byte for byte, and a body it cannot replay is not sent empty."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from airflow_vendorauth.sandbox.client import Sandbox

pytestmark = pytest.mark.integration


class Origin:
    """A real HTTP server on 127.0.0.1:<free port> that records every request it receives."""

    def __init__(self, respond: Any) -> None:
        self.seen: list[dict[str, Any]] = []
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                body = self._body()
                origin.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
                status, headers, payload = respond(self.path, len(origin.seen), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins(
    vendor_sandbox: Sandbox, sandbox_connections: dict, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Origin, Origin]]:
    def other(path: str, count: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b'{"error": "who are you"}'

    other_origin = Origin(other)

    def home(path: str, count: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/hop"):
            return 302, {"Location": f"{other_origin.url}/landing"}, b""
        if path.startswith("/upload"):
            first = sum(1 for r in home_origin.seen if r["path"].startswith("/upload")) == 1
            return (401, {}, b"{}") if first else (200, {}, json.dumps({"received": len(body)}).encode())
        return 200, {}, b'{"ok": true}'

    home_origin = Origin(home)
    monkeypatch.setenv("AIRFLOW_CONN_HTTP_HOME", json.dumps({"conn_type": "http", "host": home_origin.url}))
    yield home_origin, other_origin
    home_origin.close()
    other_origin.close()


def vendor_header_names() -> list[str]:
    from airflow_vendorauth.hooks.kazi import KaziHook

    names = ["authorization", *(n.lower() for n in KaziHook("kazi_default").client.api_headers)]
    assert "ocp-apim-subscription-key" in names
    return names


def kazi_bridge() -> Any:
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.http import vendor_auth

    return HttpHook(method="GET", http_conn_id="http_home", auth_type=vendor_auth("kazi_default"))


def test_a_redirect_to_another_origin_carries_no_credentials_and_its_401_gets_no_token(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin]
) -> None:
    home, other = origins
    answer = kazi_bridge().run("hop", extra_options={"check_response": False, "timeout": 10})
    assert answer.status_code == 401 and answer.url.startswith(other.url)  # returned as is
    assert [r["path"] for r in home.seen] == ["/hop"]
    assert "Authorization" in home.seen[0]["headers"] and "Ocp-Apim-Subscription-Key" in home.seen[0]["headers"]
    assert len(other.seen) == 1  # never resent with a token
    leaked = [name for name in other.seen[0]["headers"] if name.lower() in vendor_header_names()]
    assert leaked == []
    assert vendor_sandbox.token_requests("kazi") == 1  # the other origin's 401 fetched no token


def test_an_absolute_url_to_another_origin_carries_no_credentials(origins: tuple[Origin, Origin]) -> None:
    from airflow_vendorauth.http import vendor_auth

    home, other = origins
    auth = vendor_auth("kazi_default")()
    with requests.Session() as session:
        assert session.get(f"{home.url}/items", auth=auth, timeout=10).status_code == 200  # home: the first request
        assert session.get(f"{other.url}/elsewhere", auth=auth, timeout=10).status_code == 401
    assert "Authorization" in home.seen[0]["headers"]
    assert [n for n in other.seen[0]["headers"] if n.lower() in vendor_header_names()] == []
    assert len(other.seen) == 1


def test_the_401_resend_replays_a_file_body_byte_for_byte(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin]
) -> None:
    home, _ = origins
    payload = b"line of a file\n" * 5000
    hook = kazi_bridge()
    hook.method = "POST"
    answer = hook.run("upload", data=io.BytesIO(payload), extra_options={"timeout": 10})
    assert answer.status_code == 200 and answer.json() == {"received": len(payload)}
    uploads = [r for r in home.seen if r["path"] == "/upload"]
    assert [r["body"] == payload for r in uploads] == [True, True]
    assert uploads[0]["headers"]["Authorization"] != uploads[1]["headers"]["Authorization"]  # a new token
    assert vendor_sandbox.token_requests("kazi") == 2


def test_a_body_that_cannot_be_replayed_returns_the_401_with_the_reason(
    origins: tuple[Origin, Origin]
) -> None:
    home, _ = origins
    hook = kazi_bridge()
    hook.method = "POST"
    answer = hook.run("upload", data=(chunk for chunk in [b"a", b"b"]), extra_options={"check_response": False, "timeout": 10})
    assert answer.status_code == 401
    assert "cannot be read twice" in answer.reason and "kazi_default" in answer.reason
    assert [r["body"] for r in home.seen if r["path"] == "/upload"] == [b"ab"]  # sent once, never empty


def test_a_dpop_bound_token_is_never_sent_as_a_bearer_token(
    vendor_sandbox: Sandbox, origins: tuple[Origin, Origin]
) -> None:
    """The bridge has no DPoP proof to send: a bound token must not go out as ``Bearer`` (a downgrade,
    RFC 9449 section 7.1), nor be forgotten and fetched again on the 401 that follows. Refused up front,
    naming the connection, the field and the fix."""
    from airflow.providers.http.hooks.http import HttpHook

    from airflow_vendorauth.exceptions import ConnectionConfigError
    from airflow_vendorauth.http import vendor_auth

    home, _ = origins
    hook = HttpHook(method="GET", http_conn_id="http_home", auth_type=vendor_auth("oauth2_dpop"))
    with pytest.raises(ConnectionConfigError) as refused:
        hook.run("items", extra_options={"check_response": False, "timeout": 10})
    said = str(refused.value)
    assert "oauth2_dpop" in said and "dpop" in said and "VendorApiOperator" in said
    assert [r["headers"].get("Authorization") for r in home.seen] == []  # nothing sent, no bound token as Bearer
