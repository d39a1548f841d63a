"""The sandbox's state: its credentials, the tokens it issued, its counters, faults and scans.

Everything lives in one process (the sandbox's), so its counters are the truth about how many token
requests a whole cluster of Airflow workers made.
"""

from __future__ import annotations

import fnmatch
import random
import secrets
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from airflow_vendorauth.sandbox.assertions import AssertionVerifier
from airflow_vendorauth.sandbox.data import DATASETS
from airflow_vendorauth.sandbox.dpop import DPoPVerifier
from airflow_vendorauth.sandbox.federation import FederatedCredential
from airflow_vendorauth.sandbox.workload_issuer import WorkloadIssuer

VENDOR_NAMES = ("kazi", "keyavi", "kayzen", "smartrecruiters", "clazar", "oauth2")

#: The vendors' real token lifetimes (seconds), overridable so tests can use seconds.
DEFAULT_LIFETIMES = {
    "kazi": 3599,
    "keyavi": 3599,
    "kayzen": 1799,
    "smartrecruiters": 1799,
    "clazar": 86400,
    "oauth2": 3600,
}
KEYS = Path(__file__).with_name("keys")


def sandbox_key(kind: str) -> tuple[str, str]:
    """(private key PEM, certificate PEM) of the sandbox's test key ``rsa`` or ``ec``: public test values."""
    return (KEYS / f"{kind}.key.pem").read_text(), (KEYS / f"{kind}.cert.pem").read_text()


@dataclass(frozen=True)
class SandboxCredentials:
    """The credentials the sandbox accepts. Test values, but treated as secrets all the same."""

    kazi_tenant: str = "kazi-sandbox-tenant"
    kazi_client_id: str = "kazi-sandbox-client"
    kazi_client_secret: str = "kazi-sandbox-secret-7Qx2"
    kazi_resource: str = "d00b610c-389f-4a05-97cc-f9a934488c8b"
    kazi_subscription_key: str = "kazi-sandbox-subkey-91ab"
    keyavi_tenant: str = "keyavi-sandbox-tenant"
    keyavi_client_id: str = "keyavi-sandbox-client"
    keyavi_client_secret: str = "keyavi-sandbox-secret-3Zr8"
    keyavi_app_id_uri: str = "api://550e8400-e29b-41d4-a716-446655440000"
    keyavi_subscription_key: str = "keyavi-sandbox-subkey-5c0d"
    keyavi_username: str = "ana@keyavi.example"
    keyavi_password: str = "keyavi-sandbox-userpass-8Lm4"
    keyavi_caller_id: str = "etl-service@keyavi.example"
    kayzen_api_key: str = "kayzen-sandbox-apikey"
    kayzen_api_secret: str = "kayzen-sandbox-apisecret-2Wd6"
    kayzen_username: str = "ana@kayzen.example"
    kayzen_password: str = "kayzen-sandbox-userpass-4Tg1"
    smartrecruiters_client_id: str = "82e4424135fe01c169165228a84e7c5c"
    smartrecruiters_client_secret: str = "sr-sandbox-secret-9165228a82e4"
    clazar_client_id: str = "clazar-sandbox-client"
    clazar_client_secret: str = "clazar-sandbox-secret-6Hy3"
    #: The generic authorization server's clients, one per client authentication style.
    oauth2_basic_client_id: str = "oauth2-basic-client"
    oauth2_post_client_id: str = "oauth2-post-client"
    oauth2_json_client_id: str = "oauth2-json-client"
    oauth2_jwt_client_id: str = "oauth2-jwt-client"
    oauth2_public_client_id: str = "oauth2-public-client"
    #: Registered for client_secret_basic and DPoP-bound tokens only (RFC 9449's dpop_bound_access_tokens).
    oauth2_dpop_client_id: str = "oauth2-dpop-client"
    #: Trusts the sandbox's workload issuer (its airflow-worker service account, audience the token endpoint).
    oauth2_federated_client_id: str = "oauth2-federated-client"
    oauth2_client_secret: str = "oauth2-sandbox-secret-1Qa7 +/&"  # characters that Basic must form-encode
    oauth2_username: str = "ana@oauth2.example"
    oauth2_password: str = "oauth2-sandbox-userpass-5Rt9"

    def secrets(self) -> list[str]:
        """Every secret value, for leak scans."""
        values = [v for k, v in asdict(self).items() if any(w in k for w in ("secret", "password", "subscription_key"))]
        return values + [sandbox_key(kind)[0] for kind in ("rsa", "ec")]

    def oauth2_clients(self) -> dict[str, str]:
        """client id -> the one client authentication method it is registered for."""
        return {
            self.oauth2_basic_client_id: "client_secret_basic",
            self.oauth2_post_client_id: "client_secret_post",
            self.oauth2_json_client_id: "client_secret_json",
            self.oauth2_jwt_client_id: "private_key_jwt",
            self.oauth2_public_client_id: "none",
            self.oauth2_dpop_client_id: "client_secret_basic",
            self.oauth2_federated_client_id: "federated",
        }


@dataclass
class FaultRule:
    """Misbehaviour for requests of a vendor (``*`` for all) whose route matches a glob.

    ``route`` is ``token`` for the token endpoint, else a glob of the API path after the vendor
    prefix (``/tagging/v2/*``). Rates are probabilities per request, drawn in this order.
    """

    vendor: str = "*"
    route: str = "*"
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_slow: float = 0.0
    #: A 200 answer whose body is an HTML page (a proxy's): not retryable, the scan must stop cleanly.
    rate_html: float = 0.0
    #: The request is served (a refresh token rotated, a page read) but its answer is lost on the way back,
    #: as ``lost_as`` says: ``drop`` (the connection closes mid-answer), ``502`` (a gateway's error page) or
    #: ``timeout`` (no answer for ``slow_seconds``, then the connection closes).
    rate_lost: float = 0.0
    lost_as: str = "drop"
    slow_seconds: float = 5.0
    latency_ms: float = 0.0
    #: An API that allows this many requests at once (per rule): one more, while they run (their
    #: ``latency_ms`` included), is refused with ``throttle_status`` and ``Retry-After``, as a SaaS API's
    #: concurrency limit answers (None: no limit).
    max_in_flight: int | None = None
    retry_after: int = 1
    #: The status of a throttling answer: 429 (APIM, most vendors) or 503 (Entra ID under load), both
    #: with ``Retry-After``.
    throttle_status: int = 429
    #: Serve this rule to the first ``count`` matching requests only (None: to every one).
    count: int | None = None
    #: Let this many matching requests through first (a fault in the middle of a scan).
    after: int = 0
    served: int = 0
    #: Requests of this rule running now, and the most that ever ran at once (with ``max_in_flight``).
    in_flight: int = 0
    peak_in_flight: int = 0

    def matches(self, vendor: str, route: str) -> bool:
        if self.count is not None and self.served >= self.after + self.count:
            return False
        return self.vendor in ("*", vendor) and fnmatch.fnmatch(route, self.route)


@dataclass
class IssuedToken:
    vendor: str
    expires_at: float
    claims: dict[str, Any]


@dataclass
class Scan:
    id: str
    kind: str  # "job" or "talent"
    item_ids: list[str]
    submitted_at: float
    duration: float
    fail: bool = False

    def status(self, now: float) -> str:
        elapsed = now - self.submitted_at
        if elapsed < self.duration * 0.2:
            return "Queued"
        if elapsed < self.duration:
            return "Running"
        return "Failed" if self.fail else "Succeeded"


@dataclass
class SandboxState:
    seed: int = 7
    credentials: SandboxCredentials = field(default_factory=SandboxCredentials)
    lifetimes: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIFETIMES))
    sizes: dict[str, int] = field(default_factory=lambda: {k: v[1] for k, v in DATASETS.items()})
    scan_seconds: float = 2.0
    #: Milliseconds a vendor's server works on each API request while holding its concurrency slot.
    work_ms: dict[str, float] = field(default_factory=dict)
    faults: list[FaultRule] = field(default_factory=list)
    #: Per-credential quotas of the APIs (``sandbox/quotas.py``).
    quotas: list[Any] = field(default_factory=list)
    #: vendor -> the paging edges real APIs produce, switched on per vendor (``oauth2``: the generic API):
    #: ``page_cap`` (serve at most this many records a page, whatever is asked; from record ``cap_from`` on
    #: when set), ``total_lie`` (announce this many records more, or fewer, than there are), ``next_links``
    #: (``absolute``, ``root``, ``relative`` or ``query``: the kind of URI reference next links are); the
    #: generic API's ``shape``, ``announce_total`` and ``loop_at`` (see ``paging_edges``).
    paging: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: vendor -> queue of malformed token answers to serve next ("html", "empty", ...).
    malformed_tokens: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    #: Every token ever issued since the last reset, revoked or not (for leak scans).
    all_issued: list[str] = field(default_factory=list)
    scans: dict[str, Scan] = field(default_factory=dict)
    counters: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    assertions: AssertionVerifier = field(default_factory=AssertionVerifier)
    #: The cluster's OIDC issuer (workload identity) and the federated identity credentials the Entra apps
    #: (Kazi's and Keyavi's clients alike) trust: by default, that issuer's airflow-worker service account.
    workload_issuer: WorkloadIssuer = field(default_factory=WorkloadIssuer)
    federated_credentials: list[FederatedCredential] = field(default_factory=lambda: [FederatedCredential()])
    federated_seen: set[str] = field(default_factory=set)
    #: Mutual TLS mode: client id -> thumbprints (x5t#S256) of its registered self-signed certificates.
    self_signed_certificates: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: The URL the identity endpoints believe they have, when set (a server behind a proxy): client
    #: assertions must name it as their ``aud``.
    assertion_audience: str | None = None
    #: The generic server's refresh tokens: token -> (client id, scope, still valid).
    refresh_tokens: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    #: Seconds a spent refresh token is still taken after its first use (Auth0's reuse interval, Okta's grace
    #: period): within them it answers again with the successor it was given (0: reuse is refused at once).
    refresh_reuse_seconds: float = 0.0
    #: A spent refresh token -> (its successor, when it was first spent).
    refresh_successors: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: Every refresh token presented to the generic server, in order: token, time, client, and the outcome
    #: (``rotated``, ``repeated`` within the reuse interval, ``reused``, ``unknown``).
    refresh_log: list[dict[str, Any]] = field(default_factory=list)
    #: The client addresses (host, port) each vendor's requests came from: one per TCP connection.
    peers: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)
    #: DPoP proofs, nonces and the jti values seen (the generic server's; counted in its stats).
    dpop: DPoPVerifier = field(default_factory=DPoPVerifier)

    # ---- tokens -------------------------------------------------------------------------------------

    def issue(self, vendor: str, claims: dict[str, Any] | None = None, token: str | None = None) -> tuple[str, int]:
        lifetime = self.lifetimes[vendor]
        token = token or f"{vendor[:3].upper()}-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens[token] = IssuedToken(vendor, time.time() + lifetime, claims or {})
            self.all_issued.append(token)
        return token, lifetime

    def credential_of(self, vendor: str, scope: Any) -> str:
        """The client a request's token was issued to (its quota's owner): the token's ``appid``,
        ``client_id`` or ``sub`` claim, else the vendor (each vendor has one client here but oauth2)."""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                token = value.decode("latin-1").partition(" ")[2]
                with self.lock:
                    issued = self.tokens.get(token)
                claims = issued.claims if issued else {}
                return str(claims.get("appid") or claims.get("client_id") or claims.get("sub") or vendor)
        return vendor

    def check_token(self, vendor: str, token: str) -> IssuedToken | None:
        issued = self.tokens.get(token)
        if issued is None or issued.vendor != vendor or issued.expires_at <= time.time():
            return None
        return issued

    def mint_refresh_token(self, client_id: str, scope: str, parent: str | None = None) -> str:
        """A new refresh token; ``parent``: the one it replaces (spent now), whose successor it becomes."""
        token = f"RT-{secrets.token_urlsafe(24)}"
        with self.lock:
            self.refresh_tokens[token] = (client_id, scope, True)
            self.all_issued.append(token)
            if parent is not None:
                self.refresh_successors[parent] = (token, time.time())
        return token

    def spend_refresh_token(self, token: str, client_id: str) -> tuple[str | None, str, str | None]:
        """(scope, "", None) when ``token`` is valid for the client (it is then spent), else (None, why, None);
        a spent token presented again within :attr:`refresh_reuse_seconds` of its first use gives (scope,
        "repeated", its successor); after that it is counted as reuse, the theft signal of rotating refresh
        tokens. Every presentation goes to :attr:`refresh_log`."""
        with self.lock:
            record = self.refresh_tokens.get(token)
            successor = self.refresh_successors.get(token)
            answer: tuple[str | None, str, str | None]
            if record is None or record[0] != client_id:
                answer = (None, "unknown", None)
            elif not record[2] and successor and time.time() < successor[1] + self.refresh_reuse_seconds:
                answer = (record[1], "repeated", successor[0])
            elif not record[2]:
                self.counters["oauth2"]["refresh_reuse"] += 1
                answer = (None, "reused", None)
            else:
                self.refresh_tokens[token] = (record[0], record[1], False)
                answer = (record[1], "", None)
            outcome = answer[1] or "rotated"
            self.refresh_log.append({"token": token, "at": time.time(), "client_id": client_id, "outcome": outcome})
            return answer

    def rotate_secret(self, vendor: str) -> None:
        """The vendor's admin rotates the client secret: the old one is refused from now on."""
        name = {"kayzen": "kayzen_api_secret"}.get(vendor, f"{vendor}_client_secret")
        with self.lock:
            old = getattr(self.credentials, name)
            self.credentials = replace(self.credentials, **{name: f"{old}-rotated"})

    def revoke(self, vendor: str | None = None) -> int:
        with self.lock:
            doomed = [t for t, info in self.tokens.items() if vendor in (None, info.vendor)]
            for t in doomed:
                del self.tokens[t]
        return len(doomed)

    def federated_accepted(self, assertion: str) -> None:
        """Count a federated assertion Entra accepted, and each distinct one (a file re-read shows as new ones)."""
        with self.lock:
            self.counters["federation"]["accepted"] += 1
            if assertion not in self.federated_seen:
                self.federated_seen.add(assertion)
                self.counters["federation"]["distinct_assertions"] += 1

    # ---- counters and faults ------------------------------------------------------------------------------

    def count(self, vendor: str, what: str) -> None:
        with self.lock:
            self.counters[vendor][what] += 1

    def seen_from(self, vendor: str, client: Any) -> None:
        """Count a client's TCP connection (its address and port) once: ``connections`` in the stats."""
        if client is None:
            return
        with self.lock:
            peers = self.peers.setdefault(vendor, set())
            if tuple(client) not in peers:
                peers.add(tuple(client))
                self.counters[vendor]["connections"] += 1

    def stats(self) -> dict[str, dict[str, int]]:
        with self.lock:
            stats = {v: dict(c) for v, c in self.counters.items()}
        if self.dpop.counters:
            stats.setdefault("oauth2", {}).update(self.dpop.counters)
        return stats

    def issued_tokens(self) -> list[str]:
        """Every token still known (for leak scans: the sandbox's tokens are test values)."""
        with self.lock:
            return list(self.all_issued)

    def reset(self) -> None:
        with self.lock:
            self.counters.clear()
            self.faults.clear()
            self.quotas.clear()
            self.malformed_tokens.clear()
            self.tokens.clear()
            self.all_issued.clear()
            self.scans.clear()
            self.refresh_tokens.clear()
            self.refresh_successors.clear()
            self.refresh_log.clear()
            self.refresh_reuse_seconds = 0.0
            self.peers.clear()
            self.federated_seen.clear()
            self.assertions.reset()
            self.dpop.reset()
            self.assertion_audience = None
            self.credentials = SandboxCredentials()
            self.lifetimes = dict(DEFAULT_LIFETIMES)
            self.work_ms = {}
            self.paging = {}
            self.sizes = {k: v[1] for k, v in DATASETS.items()}

    def draw(self) -> float:
        with self.lock:
            return self.rng.random()

    # ---- scans ---------------------------------------------------------------------------------------------

    def submit_scan(self, kind: str, item_ids: list[str], fail: bool = False) -> Scan:
        scan = Scan(f"{kind}-scan-{uuid.uuid4().hex[:12]}", kind, item_ids, time.time(), self.scan_seconds, fail)
        with self.lock:
            self.scans[scan.id] = scan
        return scan
