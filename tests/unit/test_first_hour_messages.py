"""Messages a newcomer meets in the first hour name today's field and extra names and an install that
works (the package is not on PyPI: from a clone, '.[extra]')."""

from __future__ import annotations

import sys

import pytest

from airflow_vendorauth.auth.redis_cache import RedisTokenCache


def test_a_missing_redis_client_names_the_cache_extra_and_a_clone_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError, as without the package
    with pytest.raises(ImportError) as caught:
        RedisTokenCache("redis://127.0.0.1:6379/13", cipher=None)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "cache: a Redis URL" in message and "token_cache" not in message
    assert "pip install '.[redis]'" in message
