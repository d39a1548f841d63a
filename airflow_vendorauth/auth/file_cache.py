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
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

from airflow_vendorauth.auth.cache import CacheLockLost, CacheLockUnavailable, HeldLock, RefreshChain
from airflow_vendorauth.auth.chain_copy import Pending, outranks
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

    def unreachable(self) -> str | None:
        if not self._prepare() or not os.access(self.directory, os.W_OK | os.X_OK):
            return f"in {self.directory} cannot be written by this process"
        return None

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
            return self._read_chain(key)
        except _Unreadable:
            return None

    def _read_chain(self, key: str) -> RefreshChain | None:
        """The chain's entry (None when there is none); :class:`_Unreadable` (said once) when there is one
        this process cannot read: corrupt, or sealed with a Fernet key it does not have."""
        try:
            data = json.loads(self.cipher.decrypt(self.directory.joinpath(f"{key}.chain").read_bytes()))
            return RefreshChain(
                str(data["rt"]),
                int(data["gen"]),
                republished=bool(data.get("republished")),
                pending=Pending.decode(data.get("pending")),
                settled=tuple(str(owner) for owner in data.get("settled", ())),
            )
        except FileNotFoundError:
            pass
        except (OSError, CacheEntryUnreadable, ValueError, KeyError, TypeError) as exc:
            raise self._unreadable(key, exc) from None
        try:  # written before refresh tokens had generations: newer than any seed
            return RefreshChain(self.cipher.decrypt(self.directory.joinpath(f"{key}.refresh").read_bytes()), 1)
        except FileNotFoundError:
            return None
        except (OSError, CacheEntryUnreadable) as exc:
            raise self._unreadable(key, exc) from None

    def _unreadable(self, key: str, exc: BaseException) -> _Unreadable:
        warn_once(
            self.log,
            f"file-refresh:{key}",
            "Refresh token entry of %s in %s unreadable (%s): it is never overwritten (it may hold the chain under "
            "another Fernet key), so the chain is not spent through this cache. Fix: give every process the same "
            "[core] fernet_key, or delete the entry and put a new refresh token in the connection",
            key, self.directory, type(exc).__name__,
        )
        return _Unreadable()

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        def keep(held: RefreshChain | None) -> RefreshChain | None:
            if held is not None and not outranks(chain, held):
                return None  # a copy of higher rank is already here (or the incoming one's spend was settled)
            marked = republish and (held is None or held.republished)
            kept = RefreshChain(chain.refresh_token, chain.generation, marked, chain.pending, chain.settled)
            return kept if held is None else kept.knowing(held)

        return self._update_chain(key, keep)

    def settle_refresh_token(self, key: str, chain: RefreshChain) -> bool:
        def settle(held: RefreshChain | None) -> RefreshChain | None:
            if held is None or held.generation != chain.generation or held.pending != chain.pending:
                return None
            return held.settle()

        return self._update_chain(key, settle)

    def _update_chain(self, key: str, change: Callable[[RefreshChain | None], RefreshChain | None]) -> bool:
        """Read, change and write the chain's entry under its entry lock; ``change`` returns None to keep it.
        An entry that exists but cannot be read is left as it is and the write refused (False)."""
        if not self._prepare():
            return False
        try:
            with self._entry_lock(key):
                written = change(self._read_chain(key))
                if written is not None:
                    document = {"rt": written.refresh_token, "gen": written.generation, "republished": written.republished}
                    if written.pending is not None:
                        document["pending"] = written.pending.encode()
                    if written.settled:
                        document["settled"] = list(written.settled)
                    self._write(f"{key}.chain", self.cipher.encrypt(json.dumps(document)))
        except _Unreadable:
            return False  # refused, never clobbered: an entry this process cannot read may hold the chain
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
    def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[HeldLock | None]:
        if not self._prepare():
            if required:
                raise CacheLockUnavailable(f"the token cache directory {self.directory} is unusable")
            yield None
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
            yield None
            return
        try:
            yield _HeldFileLock(lock)
        finally:
            lock.release()


class _Unreadable(Exception):
    """A chain entry exists but cannot be read here (see :meth:`FileTokenCache._read_chain`)."""


class _HeldFileLock:
    """A lock file's lock: the kernel holds it for this process until it is released or the process ends,
    so it cannot be lost under a living holder and nothing survives a holder to be fenced off."""

    def __init__(self, lock: filelock.FileLock) -> None:
        self._lock = lock

    def confirm(self, seconds: float) -> None:
        if not self._lock.is_locked:
            raise CacheLockLost(f"the file token cache lock {self._lock.lock_file} is no longer held")

    def spend_over(self) -> None:
        return None

    def fence(self, seconds: float) -> None:
        return None
