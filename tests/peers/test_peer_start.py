"""A peer server that cannot start is a failure under CI=true, a skip on a workstation."""

from __future__ import annotations

import pytest

from tests.peers import conftest
from tests.peers.harness import PeerStartError


def _broken_start(**_: object) -> None:
    raise PeerStartError("node is not installed")


def test_a_peer_that_cannot_start_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "start_peer", _broken_start)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="node is not installed"):
        next(conftest.peer.__wrapped__())  # type: ignore[attr-defined]


def test_a_peer_that_cannot_start_skips_on_a_workstation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "start_peer", _broken_start)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        next(conftest.peer.__wrapped__())  # type: ignore[attr-defined]
