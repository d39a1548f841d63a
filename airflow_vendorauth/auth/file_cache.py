"""File token cache: the task processes of one machine share tokens.

One file per credential (``<fingerprint>.token``, mode 0600) in a directory only the owner can enter
(0700); entries are Fernet-encrypted and written atomically (temp file + rename). A miss is single
flight across processes through a ``filelock`` lock file: the kernel releases it when its holder
dies, and waiters wait as long as a fetch may take (the caller's ``wait_seconds``) before fetching
directly. Writing and compare-before-evict take a second, short-held lock per entry, so a 401 on an
old token in one process can never delete the newer token another process has just stored. Every failure (corrupt entry, wrong key, full disk, unwritable directory) logs a warning
once and degrades to "no cache"; it never fails a task.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock

from airflow_vendorauth.auth.cache import CacheLockUnavailable, RefreshChain, newest
from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once

#: A write or a compare-and-delete holds an entry lock for milliseconds; past this, something is wrong.
ENTRY_LOCK_SECONDS = 10.0


class FileTokenCache:
    name = "file"

    def __init__(
        self,
        directory: str | Path,
        cipher: TokenCipher,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.cipher = cipher
        self.log = logger
        self._ready = False

    def _prepare(self) -> bool:
        if self._ready:
            return True
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            warn_once(
                self.log,
                f"file-dir:{self.directory}",
                "Token cache directory %s is unusable (%s): tokens are fetched directly",
                self.directory,
                exc,
            )
            return False
        self._ready = True
        return True

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.token"

    def load(self, key: str) -> AccessToken | None:
        if not self._prepare():
            return None
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            warn_once(
                self.log,
                f"file-read:{path}",
                "Cannot read token cache entry %s (%s): fetching a token directly",
                path,
                exc,
            )
            return None
        # an unreadable entry is not unlinked: it may be a good entry by now; the next store replaces it
        return self.cipher.open_token_or_none(blob, self.name, str(path), self.log)

    def _entry_lock(self, key: str) -> filelock.FileLock:
        """Held only for a write or a compare-and-delete of one entry (never across a fetch)."""
        return filelock.FileLock(str(self.directory / f"{key}.entry.lock"), timeout=ENTRY_LOCK_SECONDS, mode=0o600)

    def store(self, key: str, token: AccessToken) -> bool:
        """Share ``token``; False when it was not written (said once)."""
        if not self._prepare():
            return False
        blob = self.cipher.seal_token(token)
        try:
            with self._entry_lock(key):
                self._write(f"{key}.token", blob)
        except (filelock.Timeout, OSError) as exc:
            warn_once(
                self.log,
                f"file-write:{self.directory}",
                "Cannot write the token cache in %s (%s): other tasks will fetch their own",
                self.directory,
                exc,
            )
            return False
        return True

    def _write(self, name: str, blob: bytes) -> None:
        """Atomically: a reader sees the old entry or the new one, never half of one."""
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".token")  # created 0600
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(temp, self.directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        if not self._prepare():
            return None
        try:
            data = json.loads(self.cipher.decrypt(self.directory.joinpath(f"{key}.chain").read_bytes()))
            return RefreshChain(str(data["rt"]), int(data["gen"]), republished=bool(data.get("republished")))
        except FileNotFoundError:
            pass
        except (OSError, CacheEntryUnreadable, ValueError, KeyError, TypeError) as exc:
            warn_once(self.log, f"file-refresh:{key}", "Refresh token entry of %s unreadable (%s)", key, type(exc).__name__)
            return None
        try:  # written before refresh tokens had generations: newer than any seed
            return RefreshChain(self.cipher.decrypt(self.directory.joinpath(f"{key}.refresh").read_bytes()), 1)
        except FileNotFoundError:
            return None
        except (OSError, CacheEntryUnreadable) as exc:
            warn_once(self.log, f"file-refresh:{key}", "Refresh token entry of %s unreadable (%s)", key, type(exc).__name__)
            return None

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        if not self._prepare():
            return False
        try:
            with self._entry_lock(key):
                held = self.load_refresh_token(key)
                if newest(held, chain) is not chain:
                    return True  # a higher generation is already here
                marked = republish and (held is None or held.republished)
                sealed = self.cipher.encrypt(
                    json.dumps({"rt": chain.refresh_token, "gen": chain.generation, "republished": marked})
                )
                self._write(f"{key}.chain", sealed)
        except (filelock.Timeout, OSError) as exc:
            warn_once(self.log, f"file-write:{self.directory}", "Cannot write the token cache in %s (%s)", self.directory, exc)
            return False
        return True

    def evict(self, key: str, access_token: str) -> None:
        if not self._prepare():
            return
        try:
            with self._entry_lock(key):
                current = self.load(key)
                if current is not None and current.access_token == access_token:
                    self._path(key).unlink()
        except (filelock.Timeout, OSError):
            pass  # the entry stays; the token it holds will get its own 401 and be evicted then

    @contextlib.contextmanager
    def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[None]:
        if not self._prepare():
            if required:
                raise CacheLockUnavailable(f"the token cache directory {self.directory} is unusable")
            yield
            return
        lock = filelock.FileLock(str(self.directory / f"{key}.lock"), timeout=wait_seconds, mode=0o600)
        try:
            lock.acquire()
        except (filelock.Timeout, OSError) as exc:
            if required:
                raise CacheLockUnavailable(
                    f"the file token cache lock in {self.directory} was not obtained in {wait_seconds:.0f} s "
                    f"({type(exc).__name__})"
                ) from None
            warn_once(
                self.log,
                f"file-lock:{key}",
                "Token cache lock not obtained (%s): fetching a token directly",
                type(exc).__name__,
            )
            yield
            return
        try:
            yield
        finally:
            lock.release()
