"""``python -m airflow_vendorauth.sandbox`` (or ``airflow-vendorauth-sandbox``): serve the fake vendors.

Binds 127.0.0.1 on the chosen port (0 = a free one), then prints the base URL and, ready to paste,
the ``AIRFLOW_CONN_*`` values that point a connection of each type at it.
"""

from __future__ import annotations

import argparse
import errno
import json
import shlex
import socket
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
    return sock


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    state = SandboxState(seed=args.seed, scan_seconds=args.scan_seconds)
    state.lifetimes.update(_pairs(args.lifetime, "lifetime"))
    state.sizes.update(_pairs(args.size, "size"))
    state.faults.extend(FaultRule(**json.loads(f)) for f in args.fault)

    try:
        import uvicorn
    except ImportError:
        raise SystemExit("the sandbox needs FastAPI and uvicorn: install the sandbox extra (from a clone: pip install '.[sandbox]')") from None

    from airflow_vendorauth.sandbox.app import create_app

    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if args.mtls_dir:
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
    for name, value in sandbox_environment(url, token_cache=args.token_cache, verify=not tls).items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"{READY_PREFIX}{url}", flush=True)
    config = uvicorn.Config(
        create_app(state), log_level="warning", access_log=False, timeout_keep_alive=30, lifespan="off", **tls
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
