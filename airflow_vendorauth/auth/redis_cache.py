"""Redis token cache: every worker of a cluster shares tokens.

Where: one server, a Sentinel group or a Redis Cluster, over TLS or not (``auth/redis_url.py``). Every key
of a credential is ``vendorauth:{<fingerprint>}:<kind>``: one Cluster hash slot, so every script below
touches one slot. A rotated refresh token counts as stored once a replica in sync acknowledged it
(``WAIT``), and is stamped with the server's ``run_id``: read on another server (a failover), the chain
counts as one the cache may have lost (its newest copy may be in a process's memory only).

Entries are Fernet-encrypted and expire with the token (``SET ... PX``). A miss is single flight
across workers through a Redis lock: its lease is short (:data:`LOCK_LEASE_SECONDS`) and renewed by the
holder while its fetch runs, so a slow fetch keeps it however long it takes, and a holder that died
(no more renewals) frees it within one lease. Renewal lives through transient errors (``BUSY``,
``READONLY`` during a failover, a dropped connection) by retrying until the lease would lapse; a holder
that lost its lock says so. Waiters wait as long as a fetch may take.

Redis being unreachable is said once per process, with the reason, and degrades to "no cache" for
grants that may fetch anywhere; a rotating refresh token is never spent without the lock
(``required=True``: the caller fails clearly instead). A Redis whose host name does not resolve fails
such a caller at once, and one that has never answered this process after :data:`FIRST_CONTACT_SECONDS`
(a typo in the port, a firewall): the lock wait is for a Redis that restarts, not for one that is not
there (a Sentinel group or Cluster is waited for while any node of its URL takes connections: a task that
starts during a failover waits for it). Rotating refresh tokens are kept with their generation and pending mark (a hash ``gen``/``rt``/
``pending``), written only over a copy of lower rank, atomically.

The lock yielded is a :class:`~airflow_vendorauth.auth.redis_lock.HeldRedisLock` (``auth/redis_lock.py``:
its lease, the proof before each spend and the fence).
The ``redis`` package is an optional extra: ``pip install 'airflow-vendorauth[redis]'``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from airflow_vendorauth.auth.cache import CacheLockUnavailable, HeldLock, RefreshChain
from airflow_vendorauth.auth.chain_copy import Pending
from airflow_vendorauth.auth.cipher import CacheEntryUnreadable, TokenCipher
from airflow_vendorauth.auth.redis_lock import RECONNECT_PAUSE_SECONDS, HeldRedisLock
from airflow_vendorauth.auth.redis_url import parse_redis_url
from airflow_vendorauth.auth.token import AccessToken
from airflow_vendorauth.auth.warn_once import warn_once

#: Every key of one credential is ``vendorauth:{<fingerprint>}:<kind>``: the braces are a Redis Cluster hash
#: tag, so the token, its lock, the spend mark, the chain (and the shared quota's keys) share one hash slot,
#: and each script below touches one slot (a Cluster refuses a script across slots: CROSSSLOT).
KEY_FORMAT = "vendorauth:{{{fingerprint}}}:{kind}"
#: The keys of releases before hash tags, read once when the tagged chain is missing (a smooth upgrade).
LEGACY_CHAIN_PREFIX = "vendorauth:chain:"
#: Before refresh tokens had generations: a plain encrypted string (read once, as generation 1).
LEGACY_REFRESH_PREFIX = "vendorauth:refresh:"
#: A refresh token unused this long is dropped (servers expire idle ones sooner; re-seed after that).
REFRESH_TTL_MS = 90 * 24 * 3600 * 1000
#: How long a fetch lock lives without renewal: the most a dead holder can delay the others.
LOCK_LEASE_SECONDS = 10.0
#: Attempts at the lock through errors (a timeout, BUSY) before a grant that may fetch anywhere does
#: so; a Redis that refuses the connection outright is given up at once (and said once).
OPTIONAL_LOCK_ATTEMPTS = 3
#: How long a caller that needs the lock waits for a Redis that has never answered this process (refused
#: or timing out from the start) before it fails: a restart takes less, a wrong port or host forever.
FIRST_CONTACT_SECONDS = 5.0
#: How long a Sentinel group or a Cluster may take to fail over (``down-after-milliseconds`` or
#: ``cluster-node-timeout``, often 30 s in production, plus the election): a rotated refresh token's write is
#: retried this long under the lock.
FAILOVER_SECONDS = 60.0
#: How long one write of a rotated refresh token waits for a replica's acknowledgement (``WAIT 1 <ms>``);
#: the write is retried (``refresh_chain.CHAIN_STORE_RETRY_SECONDS``) while none comes.
REPLICA_WAIT_MS = 1000
#: Compare-and-delete, atomically: evict the entry only if it is still the one we read.
_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
#: Keep a refresh token only over a lower generation (or none): an old copy never replaces a newer one.
#: ARGV[4] = 1 for a copy given back (republished): an entry it creates is marked ``republished``; a
#: rotation's result (ARGV[4] = 0) clears the mark.
#: A rotation's result is stamped with the server's ``run_id`` (``node``): a reader on another server (a
#: promoted replica, a restart) knows newer copies may be lost (:data:`_LOAD_CHAIN`).
#: ARGV[5]: the copy's pending mark ('' for none). ARGV[6]: the owners of its generation's settled spends,
#: space-separated. The order is chain_copy.outranks': generation, then (a mark whose spend is known settled
#: ranking lowest) the mark's level (none 0, sent 1, refused 2); settles known at one generation are merged.
_STORE_IF_NEWER = """
local function level(mark)
  if not mark or mark == '' then return 0 end
  if string.sub(mark, -8) == ':refused' then return 2 end
  return 1
end
local function owner(mark)
  if not mark or mark == '' then return nil end
  return string.match(mark, '^[^:]*:(.*):[^:]*$')
end
local function has(list, who)
  return who ~= nil and string.find(' ' .. list .. ' ', ' ' .. who .. ' ', 1, true) ~= nil
end
local held = redis.call('HGET', KEYS[1], 'gen')
local pending, settled = ARGV[5], ARGV[6]
if held then
  local gen, incoming = tonumber(held), tonumber(ARGV[1])
  if gen > incoming then return 0 end
  if gen == incoming then
    local held_pending = redis.call('HGET', KEYS[1], 'pending')
    local held_settled = redis.call('HGET', KEYS[1], 'settled') or ''
    if has(held_settled, owner(pending)) then return 0 end
    if not has(settled, owner(held_pending)) and level(held_pending) >= level(pending) then return 0 end
    for who in string.gmatch(held_settled, '%S+') do
      if not has(settled, who) then settled = settled .. ' ' .. who end
    end
  end
end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'rt', ARGV[2])
if pending ~= '' then redis.call('HSET', KEYS[1], 'pending', pending) else redis.call('HDEL', KEYS[1], 'pending') end
if settled ~= '' then redis.call('HSET', KEYS[1], 'settled', settled) else redis.call('HDEL', KEYS[1], 'settled') end
if ARGV[4] == '0' then
  redis.call('HDEL', KEYS[1], 'republished')
  local node = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  if node then redis.call('HSET', KEYS[1], 'node', node) end
elseif not held then redis.call('HSET', KEYS[1], 'republished', '1') end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
#: The chain hash, and whether it was written by another server than the one answering now (a failover or a
#: restart since the last rotation: the newest copy may be lost, and is to be offered back), in one slot.
_LOAD_CHAIN = """
local held = redis.call('HMGET', KEYS[1], 'gen', 'rt', 'republished', 'pending', 'node', 'settled')
local here = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local moved = 0
if held[5] and here and held[5] ~= here then moved = 1 end
return {held[1], held[2], held[3], held[4], moved, held[6]}
"""
#: For the fence: this server's uptime, and whether the chain's last rotation was stored by another server.
_FENCE_STATE = """
local info = redis.call('INFO', 'server')
local stamp, here = redis.call('HGET', KEYS[1], 'node'), string.match(info, 'run_id:(%w+)')
local moved = 0
if stamp and here and stamp ~= here then moved = 1 end
return {tonumber(string.match(info, 'uptime_in_seconds:(%d+)') or '-1'), moved}
"""
#: Settle a pending mark, only the very one given (ARGV[2]) on the generation given (ARGV[1]): the mark goes,
#: and its owner (ARGV[3]) joins the generation's settled spends.
_SETTLE = """
if redis.call('HGET', KEYS[1], 'gen') == ARGV[1] and redis.call('HGET', KEYS[1], 'pending') == ARGV[2] then
  local settled = redis.call('HGET', KEYS[1], 'settled')
  redis.call('HSET', KEYS[1], 'settled', settled and (settled .. ' ' .. ARGV[3]) or ARGV[3])
  return redis.call('HDEL', KEYS[1], 'pending')
end
return 0
"""


def describe_redis_error(exc: BaseException, where: str) -> str:
    """Why Redis did not answer, in words (never the URL's password: redis-py's messages name only the
    host and port)."""
    import redis

    if isinstance(exc, (redis.ConnectionError, OSError)) and not isinstance(exc, redis.AuthenticationError):
        detail = str(exc).strip().rstrip(".")
        return f"cannot connect to {where}" + (f": {detail}" if detail else "")
    return f"{type(exc).__name__}: {str(exc).strip()}" if str(exc).strip() else type(exc).__name__


def credential_key(fingerprint: str, kind: str) -> str:
    """The Redis key of one credential's ``kind`` (``token``, ``lock``, ``spending``, ``chain``; the shared
    quota's ``quota:...``): ``vendorauth:{<fingerprint>}:<kind>``, all in the credential's hash slot."""
    return KEY_FORMAT.format(fingerprint=fingerprint, kind=kind)


class RedisTokenCache:
    name = "redis"

    def __init__(
        self,
        url: str,
        cipher: TokenCipher,
        *,
        username: str | None = None,
        password: str | None = None,
        lease_seconds: float = LOCK_LEASE_SECONDS,
        socket_timeout: float = 2.0,
        logger: logging.Logger | None = None,
    ) -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.exceptions import RedisClusterException
            from redis.retry import Retry
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(
                "cache: a Redis URL (or redis_conn_id:...) needs the redis client: install the redis extra "
                "(pip install 'airflow-vendorauth[redis]', or from a clone pip install '.[redis]') or pip install redis"
            ) from exc
        #: Where: one server, a Sentinel group or a Cluster (``auth/redis_url.py``).
        self.target = parse_redis_url(url).with_credentials(username, password)
        self.redis_errors: tuple[type[BaseException], ...] = (redis.RedisError, RedisClusterException, OSError)
        self.lost_errors: tuple[type[BaseException], ...] = (redis.exceptions.LockNotOwnedError,)
        #: Connection refused or no such host (not a timeout): nobody is there to wait for.
        self._refused: tuple[type[BaseException], ...] = (redis.ConnectionError,)
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
            # A short reconnect, not redis-py's default of seconds: the lock loop below retries itself.
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        }
        self._client: Any = None
        self._client_guard = threading.Lock()
        with contextlib.suppress(*self.redis_errors):  # a Cluster none of whose nodes answers yet: later
            self._client = self.target.connect(**self._options)
        self.address = ",".join(f"{host}:{port}" for host, port in self.target.nodes)
        shown = self.target.shown()  # never a password
        self.url_shown = shown.split("://", 1)[1] if self.target.topology == "single" else shown
        self.cipher = cipher
        self.lease_seconds = lease_seconds
        self.log = logger
        #: Whether this Redis ever answered this process: one that never did is not waited for long.
        self.answered = False
        #: How long this store may be away in a failover (none for one server: a restart is quick).
        self.failover_seconds = 0.0 if self.target.topology == "single" else FAILOVER_SECONDS

    @property
    def client(self) -> Any:
        """The redis-py client every user of this cache shares: ``redis.Redis`` (one server, or a Sentinel
        group's master, followed through failovers) or ``redis.cluster.RedisCluster``. A Cluster client is
        made on first use when no node answered at start (a task that starts during a failover)."""
        if self._client is None:
            with self._client_guard:
                if self._client is None:
                    self._client = self.target.connect(**self._options)
        return self._client

    def _down(self, exc: BaseException) -> None:
        warn_once(
            self.log,
            f"redis:{self.url_shown}",
            "Redis token cache at %s is unavailable (%s): tokens are not shared meanwhile; other grants fetch "
            "directly, a rotating refresh token is never spent without it (said once per process)",
            self.url_shown,
            describe_redis_error(exc, self.address),
        )

    def load(self, key: str) -> AccessToken | None:
        try:
            blob = self.client.get(credential_key(key, "token"))
        except self.redis_errors as exc:
            self._down(exc)
            return None
        if blob is None:
            return None
        token = self.cipher.open_token_or_none(blob, self.name, f"redis {credential_key(key, 'token')}", self.log)
        if token is None:
            with contextlib.suppress(*self.redis_errors):
                self.client.eval(_DELETE_IF_EQUAL, 1, credential_key(key, "token"), blob)
        return token

    def store(self, key: str, token: AccessToken) -> bool:
        """Share ``token``; False when it was not stored (Redis unavailable, said once)."""
        ttl_ms = int(token.seconds_left() * 1000)
        if ttl_ms <= 0:
            return False
        try:
            self.client.set(credential_key(key, "token"), self.cipher.seal_token(token), px=ttl_ms)
        except self.redis_errors as exc:
            self._down(exc)
            return False
        return True

    def load_refresh_token(self, key: str) -> RefreshChain | None:
        """The chain's copy here. Read as ``republished`` (a newer copy may be on its way back from a
        process) when no rotation stored it since Redis lost the chain, or when its last rotation was stored
        by another server than the one answering now: a failover (the promoted replica may have missed the
        newest generation) or a restart since."""
        try:
            gen, sealed, republished, pending, moved, settled = self.client.eval(
                _LOAD_CHAIN, 1, credential_key(key, "chain")
            )
            self.answered = True
            if gen is not None and sealed is not None:
                return RefreshChain(
                    self.cipher.decrypt(sealed),
                    int(gen),
                    republished=republished is not None or bool(moved),
                    pending=Pending.decode(pending),
                    settled=tuple(settled.decode().split()) if settled else (),
                )
            return self._legacy_chain(key)
        except self.redis_errors as exc:
            self._down(exc)
        except (CacheEntryUnreadable, ValueError):
            warn_once(self.log, f"redis-refresh:{key}", "Redis refresh token entry of %s unreadable", key)
        return None

    def _legacy_chain(self, key: str) -> RefreshChain | None:
        """The chain as releases before hash tags kept it (read until a rotation stores it under the tag).
        Read as republished: a newer copy may be in a process's memory (the tagged key evicted, say)."""
        held = self.client.hmget(LEGACY_CHAIN_PREFIX + key, "gen", "rt", "pending")
        if held[0] is not None and held[1] is not None:
            return RefreshChain(self.cipher.decrypt(held[1]), int(held[0]), republished=True,
                                pending=Pending.decode(held[2]))
        legacy = self.client.get(LEGACY_REFRESH_PREFIX + key)
        return RefreshChain(self.cipher.decrypt(legacy), 1, republished=True) if legacy is not None else None

    def store_refresh_token(self, key: str, chain: RefreshChain, *, republish: bool = False) -> bool:
        """Keep ``chain`` unless a higher copy is held. A rotation's result counts as stored only once a
        replica has it too (``WAIT``): a failover right after it then cannot lose it."""
        try:
            sealed = self.cipher.encrypt(chain.refresh_token)
            pending = chain.pending.encode() if chain.pending else ""
            args = (_STORE_IF_NEWER, 1, credential_key(key, "chain"), chain.generation, sealed, REFRESH_TTL_MS,
                    int(republish), pending, " ".join(chain.settled))
            if republish or chain.pending is not None:
                self.client.eval(*args)
                return True
            return self._eval_replicated(key, args)
        except self.redis_errors as exc:
            self._down(exc)
            return False

    def _eval_replicated(self, key: str, args: tuple[Any, ...]) -> bool:
        """Run a script, then ``WAIT 1`` on the same connection (WAIT counts that connection's writes). A
        primary without a replica in sync (one server without replicas; replicas all gone, or still loading
        their first copy after a failover) is trusted alone, said once; a replica in sync that does not
        acknowledge within :data:`REPLICA_WAIT_MS` means "not stored" (the caller retries)."""
        node = self._primary_of(credential_key(key, "chain"))
        try:
            if not self._replicas_in_sync(node):
                node.eval(*args)
                if self.target.topology != "single":
                    warn_once(
                        self.log,
                        f"redis-no-replica:{self.url_shown}",
                        "Redis token cache at %s: the primary has no replica in sync, so a rotated refresh token is "
                        "kept on the primary alone until one is back (said once per process)",
                        self.url_shown,
                    )
                return True
            pipe = node.pipeline(transaction=False)
            pipe.eval(*args)
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
            _, acknowledged = pipe.execute()
        except self.redis_errors:
            self._refresh_topology()
            raise
        if int(acknowledged) >= 1:
            return True
        if self.log is not None:
            self.log.warning(
                "Redis token cache at %s: no replica acknowledged the rotated refresh token within %d ms; "
                "it counts as not stored yet", self.url_shown, REPLICA_WAIT_MS,
            )
        return False

    def _primary_of(self, key: str) -> Any:
        """A client of the primary that holds ``key``: the client itself, or in a Cluster that node's client
        (WAIT and the write it waits for must go through one connection)."""
        if self.target.topology != "cluster":
            return self.client
        return self.client.get_redis_connection(self.client.get_node_from_key(key))

    def _refresh_topology(self) -> None:
        if self.target.topology == "cluster" and self._client is not None:
            with contextlib.suppress(*self.redis_errors):
                self._client.nodes_manager.initialize()

    @staticmethod
    def _replicas_in_sync(node: Any) -> int:
        """How many replicas of ``node`` are online (not still loading their first copy)."""
        info = node.info("replication")
        return sum(1 for name, value in info.items()
                   if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online")

    def settle_refresh_token(self, key: str, chain: RefreshChain) -> bool:
        if chain.pending is None:
            return True
        try:
            self.client.eval(
                _SETTLE, 1, credential_key(key, "chain"), chain.generation, chain.pending.encode(), chain.pending.owner
            )
        except self.redis_errors as exc:
            self._down(exc)
            return False
        return True

    def unreachable(self) -> str | None:
        try:
            self.client.ping()
        except self.redis_errors as exc:
            return f"at {self.url_shown} cannot be reached from here ({describe_redis_error(exc, self.address)})"
        self.answered = True
        return None

    def fence_state(self, key: str) -> tuple[float | None, bool]:
        """For the fence (``redis_lock.py``): how long the server holding ``key``'s chain has run (None when it
        does not answer or hides its INFO), and whether that chain's last rotation was stored by another
        server (a failover or a restart since: a spender from before may be putting its mark back)."""
        try:
            uptime, moved = self.client.eval(_FENCE_STATE, 1, credential_key(key, "chain"))
        except self.redis_errors:
            return None, False
        return (float(uptime) if uptime >= 0 else None), bool(moved)  # -1: a server that hides its INFO

    def _hopeless(self, exc: BaseException, started: float) -> bool:
        """Whether waiting longer for the lock cannot help: the host name does not resolve, or this Redis
        has not answered once in :data:`FIRST_CONTACT_SECONDS` and (Sentinel, Cluster) none of the nodes
        named in its URL takes a connection (while one does, a failover may be under way: wait)."""
        if isinstance(exc.__context__, socket.gaierror) or isinstance(exc, socket.gaierror):
            return True
        if self.answered or time.monotonic() - started < FIRST_CONTACT_SECONDS:
            return False
        return self.target.topology == "single" or not any(_takes_connections(node) for node in self.target.nodes)

    def evict(self, key: str, access_token: str) -> None:
        try:
            blob = self.client.get(credential_key(key, "token"))
            if blob is None:
                return
            try:
                current = self.cipher.open_token(blob, self.name)
            except CacheEntryUnreadable:
                current = None
            if current is None or current.access_token == access_token:
                self.client.eval(_DELETE_IF_EQUAL, 1, credential_key(key, "token"), blob)
        except self.redis_errors as exc:
            self._down(exc)

    @contextlib.contextmanager
    def fetch_lock(self, key: str, wait_seconds: float, *, required: bool = False) -> Iterator[HeldLock | None]:
        started = time.monotonic()
        lock: Any = None
        deadline = started + wait_seconds
        failure: BaseException | None = None
        acquired, attempts = False, 0
        while True:
            try:
                if lock is None:  # the client is made here if it could not be at start (a Cluster mid-failover)
                    lock = self.client.lock(credential_key(key, "lock"), timeout=self.lease_seconds, thread_local=False)
                acquired = lock.acquire(blocking_timeout=max(0.0, deadline - time.monotonic()))
                self.answered, failure = True, None
                break
            except self.redis_errors as exc:
                failure, attempts = exc, attempts + 1
                if not required and (isinstance(exc, self._refused) or attempts >= OPTIONAL_LOCK_ATTEMPTS):
                    self._down(exc)  # said once; other grants fetch directly
                    break
                if required and self._hopeless(exc, started):
                    break
                if time.monotonic() + RECONNECT_PAUSE_SECONDS >= deadline:
                    break
                time.sleep(RECONNECT_PAUSE_SECONDS)  # a slow answer, BUSY, a restart, a failover: try again
        if not acquired:
            if required:
                why = describe_redis_error(failure, self.address) if failure else "held by another process"
                waited = time.monotonic() - started
                when = f"was not obtained in {waited:.0f} s" if waited >= 1 else "could not be taken"
                raise CacheLockUnavailable(f"the fetch lock of the Redis token cache at {self.url_shown} {when} ({why})")
            if failure is None and self.log is not None:  # a real wait, not an unreachable Redis
                self.log.warning(
                    "Redis token cache lock at %s not obtained in %.0f s (held by another process): "
                    "fetching a token directly",
                    self.url_shown,
                    wait_seconds,
                )
            yield None
            return
        held = HeldRedisLock(self, lock, credential_key(key, "spending"), key)
        try:
            yield held
        finally:
            held.release()


def _takes_connections(node: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(node, timeout=1.0):
            return True
    except OSError:
        return False
