"""A missing service skips a test on a workstation and fails it under CI=true (tests/services.py)."""

from __future__ import annotations

import pytest

from tests.services import missing_service


def test_a_missing_service_fails_the_run_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no Redis answers"):
        missing_service("no Redis answers on 127.0.0.1:6379")


def test_a_missing_service_skips_with_its_reason_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL answers"):
        missing_service("no PostgreSQL answers on 127.0.0.1:5432")
