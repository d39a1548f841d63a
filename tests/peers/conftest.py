"""The ``peer`` fixture: the independent authorization server (oidc-provider), one per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.harness import PeerServer, PeerStartError, start_peer
from tests.services import missing_service


@pytest.fixture(scope="module")
def peer() -> Iterator[PeerServer]:
    """A running peer server; skipped on a workstation without Node, FAILED under CI=true."""
    try:
        server = start_peer()
    except PeerStartError as exc:
        missing_service(str(exc))
        raise  # unreachable: missing_service skips or fails
    try:
        yield server
    finally:
        server.stop()
