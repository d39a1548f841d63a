"""The machine's services some tests need (Redis, PostgreSQL), and what happens when one is missing.

On a developer's machine a missing service skips the tests that need it, with the reason. Under
``CI=true`` it fails them instead: a green CI run must mean the cluster and cache tests really ran.
"""

from __future__ import annotations

import os
import socket

import pytest

REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)


def redis_answers(address: tuple[str, int] = REDIS) -> bool:
    try:
        with socket.create_connection(address, timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def port_answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_service(reason: str) -> None:
    """Skip (on a workstation) or fail (under CI=true) a test whose service did not answer."""
    if in_ci():
        pytest.fail(f"{reason}: under CI=true a missing service fails the run instead of skipping it")
    pytest.skip(reason)


def require_redis() -> None:
    if not redis_answers():
        missing_service("no Redis answers on 127.0.0.1:6379")


def require_postgres() -> None:
    if not port_answers(POSTGRES):
        missing_service("no PostgreSQL answers on 127.0.0.1:5432")
