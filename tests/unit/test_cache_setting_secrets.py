"""A ``cache`` extra that is not a usable Redis URL is refused naming the field, without the password
written in it (the secrets masker learns that password only from a URL that parses)."""

from __future__ import annotations

import pytest

from airflow_vendorauth.exceptions import ConnectionConfigError
from tests.unit.fakes import hook_for, set_connection

PASSWORD = "hunter2-redis-secret"


@pytest.mark.parametrize(
    "cache",
    [
        f"reddis://default:{PASSWORD}@redis.example:6379/0",  # a misspelt scheme
        f"redis://:{PASSWORD}@",  # no host
        f"redis:/default:{PASSWORD}@redis.example:6379/0",  # one slash short
    ],
)
def test_a_refused_cache_url_never_shows_its_password(monkeypatch: pytest.MonkeyPatch, cache: str) -> None:
    set_connection(monkeypatch, "kazi", extra={"cache": cache})
    with pytest.raises(ConnectionConfigError) as refused:
        hook_for("kazi").settings  # noqa: B018 - reading the connection is what refuses it
    said = str(refused.value)
    assert "cache" in said and "Fix:" in said
    assert PASSWORD not in said and PASSWORD not in repr(refused.value)
