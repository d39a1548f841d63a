"""FileTokenCache (auth/file_cache.py): private, encrypted, atomic entries; compare-before-evict; a
fetch lock whose waiters give up only after the time they were told a fetch may take."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pendulum
from cryptography.fernet import Fernet

from airflow_vendorauth.auth.cipher import TokenCipher
from airflow_vendorauth.auth.file_cache import FileTokenCache
from airflow_vendorauth.auth.token import AccessToken


def token(value: str) -> AccessToken:
    now = pendulum.now("UTC")
    return AccessToken(access_token=value, expires_at=now.add(hours=1), obtained_at=now)


def cache_in(directory: Path) -> FileTokenCache:
    return FileTokenCache(directory, TokenCipher([Fernet.generate_key().decode()]))


def test_entries_are_private_encrypted_and_read_back(tmp_path: Path) -> None:
    cache = cache_in(tmp_path / "c")
    cache.store("k", token("secret-token-value"))
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    entry = tmp_path / "c" / "k.token"
    assert entry.stat().st_mode & 0o777 == 0o600
    assert b"secret-token-value" not in entry.read_bytes()
    loaded = cache.load("k")
    assert loaded is not None and loaded.access_token == "secret-token-value" and loaded.source == "file"
    assert not list((tmp_path / "c").glob(".tmp-*"))  # the atomic write left nothing behind


def test_a_corrupt_entry_reads_as_missing_and_the_next_store_replaces_it(tmp_path: Path) -> None:
    cache = cache_in(tmp_path)
    (tmp_path / "k.token").write_bytes(b"\x00garbage")
    assert cache.load("k") is None
    cache.store("k", token("fresh"))
    assert cache.load("k").access_token == "fresh"  # type: ignore[union-attr]


def test_evict_deletes_only_the_token_that_failed(tmp_path: Path) -> None:
    cache = cache_in(tmp_path)
    cache.store("k", token("current"))
    cache.evict("k", "an-older-one")
    assert cache.load("k") is not None
    cache.evict("k", "current")
    assert cache.load("k") is None


def test_an_unusable_directory_degrades_to_no_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    cache = cache_in(blocker / "sub")
    cache.store("k", token("t"))  # no exception: a broken cache costs a token request, never a task
    assert cache.load("k") is None
    with cache.fetch_lock("k", 1.0):
        pass


def test_a_waiter_waits_for_a_held_fetch_lock_as_long_as_it_was_told(tmp_path: Path) -> None:
    cache = cache_in(tmp_path)
    cache.store("k", token("t"))  # creates the directory
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import filelock, sys, time\n"
            f"lock = filelock.FileLock({str(tmp_path / 'k.lock')!r}); lock.acquire()\n"
            "print('held', flush=True); time.sleep(2.0); lock.release()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with cache.fetch_lock("k", wait_seconds=30):
        waited = time.monotonic() - started
    holder.wait()
    assert 1.0 < waited < 10  # it waited for the holder, not for a fixed 30 s, and did not give up
    held = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import filelock, time\nlock = filelock.FileLock({str(tmp_path / 'k.lock')!r}); lock.acquire()\n"
            "print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert held.stdout is not None and held.stdout.readline().strip() == "held"
    started = time.monotonic()
    with cache.fetch_lock("k", wait_seconds=0.5):  # past its budget it fetches without the lock
        assert 0.4 < time.monotonic() - started < 5
    held.kill()
    held.wait()
