"""Runs the independent authorization server (tests/peers/server.mjs: panva's oidc-provider) for tests.

The server is someone else's standards-conformant implementation, so our DPoP proofs, client
certificates and client assertions are checked against more than our own sandbox. This module makes
its key material (a CA, the server's certificate, client certificates, a private_key_jwt key),
registers the clients, starts ``node`` on free 127.0.0.1 ports and reads its counters.

Missing Node or a failed start skips the tests on a workstation and FAILS them under ``CI=true``
(tests/services.py). ``npm ci`` installs the pinned packages (package-lock.json) when they are absent.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

HERE = Path(__file__).resolve().parent
SCOPE = "items.read"
SECRET = "peer-secret-0123456789abcdef0123456789"  # a test server's client secret, nothing real


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    server_ip: str | None = None,
) -> x509.Certificate:
    import ipaddress

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class ClientCertificate:
    """A client's certificate and key, as PEM text and as files (httpx wants files)."""

    certificate_pem: str
    private_key_pem: str
    cert_file: str
    key_file: str
    ca_file: str

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the peer's CA and presents this certificate (httpx 0.28 drops ``cert=`` next to a
        ``verify`` path, so the context carries both)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass
class PeerMaterial:
    """Key material the server and the tests share, written to a private temporary folder."""

    folder: Path
    ca_file: str = ""
    server_cert: str = ""
    server_key: str = ""
    pki_client: ClientCertificate | None = None
    self_signed_client: ClientCertificate | None = None
    stranger: ClientCertificate | None = None  # a certificate no client registered
    jwt_key_pem: str = ""
    jwt_public_jwk: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls) -> PeerMaterial:
        folder = Path(tempfile.mkdtemp(prefix="vendorauth-peer-"))
        m = cls(folder)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("peer test CA", ca_key, ca=True)
        m.ca_file = m._write("ca.pem", _pem_cert(ca))
        server_key = ec.generate_private_key(ec.SECP256R1())
        m.server_cert = m._write("server.pem", _pem_cert(_certificate("127.0.0.1", server_key, (ca.subject, ca_key), server_ip="127.0.0.1")))
        m.server_key = m._write("server-key.pem", _pem_key(server_key))
        m.pki_client = m._client("pki-client", (ca.subject, ca_key))
        m.self_signed_client = m._client("self-signed-client", None)
        m.stranger = m._client("stranger", None)
        jwt_key = ec.generate_private_key(ec.SECP256R1())
        m.jwt_key_pem = _pem_key(jwt_key)
        m.jwt_public_jwk = json.loads(ECAlgorithm.to_jwk(jwt_key.public_key())) | {"use": "sig", "alg": "ES256"}
        return m

    def _write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text)
        path.chmod(0o600)
        return str(path)

    def _client(self, name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None) -> ClientCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _pem_cert(_certificate(name, key, issuer))
        return ClientCertificate(
            cert, _pem_key(key), self._write(f"{name}.pem", cert), self._write(f"{name}-key.pem", _pem_key(key)), self.ca_file
        )

    def clients(self) -> list[dict[str, Any]]:
        """The clients the server registers (RFC 7591 metadata, as oidc-provider takes it)."""
        assert self.self_signed_client and self.pki_client
        common = {"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [], "scope": SCOPE}
        x5c = "".join(self.self_signed_client.certificate_pem.strip().splitlines()[1:-1])
        self_signed_jwk = json.loads(
            ECAlgorithm.to_jwk(
                x509.load_pem_x509_certificate(self.self_signed_client.certificate_pem.encode()).public_key()  # type: ignore[arg-type]
            )
        ) | {"x5c": [x5c]}
        return [
            common | {"client_id": "dpop-client", "client_secret": SECRET, "dpop_bound_access_tokens": True},
            common | {"client_id": "secret-client", "client_secret": SECRET},
            common | {"client_id": "jwt-client", "token_endpoint_auth_method": "private_key_jwt",
                      "token_endpoint_auth_signing_alg": "ES256", "jwks": {"keys": [self.jwt_public_jwk]}},
            common | {"client_id": "jwt-dpop-client", "token_endpoint_auth_method": "private_key_jwt",
                      "token_endpoint_auth_signing_alg": "ES256", "jwks": {"keys": [self.jwt_public_jwk]},
                      "dpop_bound_access_tokens": True},
            common | {"mtls": True, "client_id": "pki-client", "token_endpoint_auth_method": "tls_client_auth",
                      "tls_client_auth_subject_dn": "CN=pki-client", "tls_client_certificate_bound_access_tokens": True},
            common | {"mtls": True, "client_id": "self-signed-client",
                      "token_endpoint_auth_method": "self_signed_tls_client_auth",
                      "jwks": {"keys": [self_signed_jwk]}, "tls_client_certificate_bound_access_tokens": True},
        ]


class PeerStartError(RuntimeError):
    """Node, its packages or the server itself did not come up (the reason is in the message)."""


@dataclass
class PeerServer:
    """A running server: its two issuers, the key material, and its counters."""

    process: subprocess.Popen[str]
    http_port: int
    https_port: int
    material: PeerMaterial
    stderr: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        """The plain-http issuer: DPoP (nonces required), client secrets, private_key_jwt."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def mtls_issuer(self) -> str:
        """The TLS issuer: tls_client_auth, self_signed_tls_client_auth, certificate-bound tokens."""
        return f"https://127.0.0.1:{self.https_port}"

    def stats(self, mtls: bool = False) -> dict[str, Any]:
        """The server's counters (token requests, nonce challenges, proofs seen and reused, refusals)."""
        base = self.mtls_issuer if mtls else self.issuer
        response = httpx.get(f"{base}/peer/stats", verify=ssl.create_default_context(cafile=self.material.ca_file), timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.material.folder, ignore_errors=True)


def install_packages() -> None:
    """``npm ci`` from package-lock.json when node_modules is absent (the Makefile does it for make test)."""
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise PeerStartError("npm is not installed (Node.js 20.19 or newer is needed for tests/peers)")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise PeerStartError(f"npm ci in {HERE} failed: {done.stderr[-2000:]}")


def start_peer(*, total_items: int = 250, rotate_nonce_every: int = 3, token_ttl: int = 600) -> PeerServer:
    """Start the server on free 127.0.0.1 ports; raise PeerStartError with the reason if it does not come up."""
    node = shutil.which("node")
    if node is None:
        raise PeerStartError("node is not installed (Node.js 20.19 or newer is needed for tests/peers)")
    install_packages()
    material = PeerMaterial.create()
    config = {
        "clients": material.clients(),
        "tls": {"key": material.server_key, "cert": material.server_cert, "ca": material.ca_file},
        "total_items": total_items,
        "rotate_nonce_every": rotate_nonce_every,
        "token_ttl": token_ttl,
    }
    config_file = material._write("config.json", json.dumps(config))
    process = subprocess.Popen(
        [node, str(HERE / "server.mjs"), config_file],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    assert process.stdout is not None and process.stderr is not None
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True).start()  # type: ignore[arg-type]
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=30)
    if not first or not first[0].strip():
        process.kill()
        process.wait()
        shutil.rmtree(material.folder, ignore_errors=True)
        raise PeerStartError(f"the peer authorization server did not start: {''.join(stderr)[-2000:]}")
    ports = json.loads(first[0])
    return PeerServer(process, ports["http"], ports["https"], material, stderr)
