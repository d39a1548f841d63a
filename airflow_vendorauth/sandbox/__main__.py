"""``python -m airflow_vendorauth.sandbox`` (or ``airflow-vendorauth-sandbox``): serve the fake vendors.

Binds 127.0.0.1 on the chosen port (0 = a free one), then prints, ready to paste, the ``AIRFLOW_CONN_*``
values that point a connection of each type at it (with ``--mtls-dir``, ``oauth2_mtls`` too), the
``AZURE_*`` variables of workload identity (with ``--workload-token-file``, whose file it writes and
rewrites as the kubelet does) and, last, ``SANDBOX_URL=`` and the base URL.
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import socket
from pathlib import Path
from typing import Any

from airflow_vendorauth.sandbox.connections import sandbox_environment
from airflow_vendorauth.sandbox.state import FaultRule, SandboxState

READY_PREFIX = "SANDBOX_URL="


def _pairs(values: list[str], what: str) -> dict[str, int]:
    result = {}
    for value in values:
        name, sep, number = value.partition("=")
        if not sep or not number.isdigit():
            raise SystemExit(f"--{what} expects NAME=INTEGER, got {value!r}")
        result[name] = int(number)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="airflow-vendorauth-sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback by default)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 (the default) picks a free one, printed at start")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    parser.add_argument("--lifetime", action="append", default=[], metavar="VENDOR=SECONDS", help="token lifetime")
    parser.add_argument(
        "--size", action="append", default=[], metavar="DATASET=N", help="e.g. kazi.expectations=100000"
    )
    parser.add_argument("--scan-seconds", type=float, default=2.0, help="how long a Kazi scan runs")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="JSON", help='e.g. {"vendor":"kazi","rate_429":0.1}'
    )
    parser.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="JSON",
        help='a per-credential quota, e.g. {"vendor":"oauth2","rates":["25/second"],"max_in_flight":8}',
    )
    parser.add_argument("--token-cache", default="memory", help="the cache extra of the printed connections (memory, file or a Redis URL)")
    parser.add_argument(
        "--tls-hostname",
        help="serve https with a self-signed certificate for this name (for hosts other than loopback, "
        "e.g. a compose service: the printed connections then carry verify=false)",
    )
    parser.add_argument(
        "--mtls-dir",
        help="mutual TLS mode (RFC 8705): make a test PKI in this folder (once), serve https with its server "
        "certificate, ask clients for certificates, bind tokens to them",
    )
    parser.add_argument(
        "--workload-token-file",
        type=Path,
        metavar="PATH",
        help="write a projected service account token of the sandbox's cluster issuer to PATH and rewrite it "
        "before it expires, as the kubelet does on AKS; the AZURE_* variables to export are printed",
    )
    parser.add_argument(
        "--workload-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="the lifetime of each token written to --workload-token-file (AKS: 3600); it is rewritten at 80%% of it",
    )
    parser.add_argument("--public-url", help="the base URL clients use, if not http(s)://HOST:PORT (containers)")
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one line that says what to do instead of a raw OSError traceback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise SystemExit(
            f"airflow-vendorauth-sandbox: port {port} on {host} {reason}; pick another with --port N, "
            "or leave --port out for a free one"
        ) from None
    sock.listen(2048)  # connectable from the moment SANDBOX_URL is printed (uvicorn serves the queue once it runs)
    return sock


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    state = SandboxState(seed=args.seed, scan_seconds=args.scan_seconds)
    state.lifetimes.update(_pairs(args.lifetime, "lifetime"))
    state.sizes.update(_pairs(args.size, "size"))
    state.faults.extend(FaultRule(**json.loads(f)) for f in args.fault)
    from airflow_vendorauth.sandbox.quotas import QuotaRule

    state.quotas.extend(QuotaRule(**json.loads(q)) for q in args.quota)

    try:
        import uvicorn
    except ImportError:
        raise SystemExit("the sandbox needs FastAPI and uvicorn: install the sandbox extra (from a clone: pip install '.[sandbox]')") from None

    from airflow_vendorauth.sandbox.app import create_app

    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if args.mtls_dir:
        args.mtls_dir = str(Path(args.mtls_dir).resolve())  # the printed connection names its CA bundle by path
        from airflow_vendorauth.auth.mtls import certificate_thumbprint
        from airflow_vendorauth.sandbox.mtls import SELF_SIGNED_CLIENT, SandboxPki

        pki = SandboxPki.create(args.mtls_dir)
        tls = pki.uvicorn_options()
        state.self_signed_certificates[SELF_SIGNED_CLIENT] = (certificate_thumbprint(pki.pem("selfsigned")),)
    elif args.tls_hostname:
        from airflow_vendorauth.sandbox.tls import self_signed_certificate

        tls = dict(zip(("ssl_certfile", "ssl_keyfile"), self_signed_certificate(args.tls_hostname), strict=True))
    url = args.public_url or f"{'https' if tls else 'http'}://{args.host}:{port}"
    print("# Connections for Airflow (paste into your shell):")
    environment = sandbox_environment(url, token_cache=args.token_cache, verify=not tls, mtls_dir=args.mtls_dir)
    if args.workload_token_file:
        from airflow_vendorauth.sandbox.projected_token import azure_environment, keep_fresh

        path = args.workload_token_file.resolve()
        keep_fresh(state.workload_issuer, url, path, args.workload_token_lifetime)
        print(f"# Workload identity (kazi_workload_identity): {path} holds a projected token, rewritten before it expires")
        environment |= azure_environment(path, url)
    else:
        print("# kazi_workload_identity reads AZURE_FEDERATED_TOKEN_FILE: start with --workload-token-file PATH to have it written")
    for name, value in environment.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"{READY_PREFIX}{url}", flush=True)
    # timeout_graceful_shutdown: over TLS, uvicorn otherwise waits on SIGTERM for every idle keep-alive client
    # (a hook's pooled connection) to close, which none does: the sandbox would not stop.
    config = uvicorn.Config(
        create_app(state), log_level="warning", access_log=False, timeout_keep_alive=30, lifespan="off",
        timeout_graceful_shutdown=2, **tls
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
