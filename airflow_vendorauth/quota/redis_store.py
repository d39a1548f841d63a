"""The quota of a credential in Redis: every worker's, atomic, on Redis's own clock (``TIME``).

Each credential's keys share one hash tag, ``vendorauth:{<fingerprint>}:quota:...`` (one Redis Cluster
slot), and every script touches the keys of one credential only:

- ``...:quota:window``: a hash, rate name -> its sliding window's buckets still in its span, as
  ``"<bucket>:<permits> ..."`` oldest first (see :mod:`.state`), expiring a window and a bucket after the
  last permit;
- ``...:quota:leases``: a sorted set of the requests in flight, scored by their lease's expiry (a process
  that dies frees its slots when their leases expire; a running request's are renewed, ``ZADD XX``);
- ``...:quota:state``: a hash: ``blocked_until``/``blocked_why`` (a shared wait: a 429's ``Retry-After``,
  a window the API says is spent), ``learned_in_flight``, and ``window:<name>`` = ``count:period`` for each
  rate the API announced (``RateLimit-Policy``).

The rules are those of :mod:`.state`, written once more in Lua; the store tests of
``tests/unit/test_quota.py`` and ``tests/unit/test_quota_review.py`` run the same cases against both.
"""

from __future__ import annotations

from typing import Any

from airflow_vendorauth.quota.spec import Rate
from airflow_vendorauth.quota.state import BUCKETS, IN_FLIGHT_POLL_SECONDS, Decision

#: Learnt limits (a rate, requests at once) are kept this long after the last lesson.
LEARNT_TTL_MS = 24 * 3600 * 1000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

#: A rate's window (the rules of :mod:`.state`): ``window(key, name, period)`` -> the buckets still in its
#: span (oldest first, ``{bucket, permits}``), their sum, the current bucket and a bucket's width;
#: ``wait(held, count, width, more)`` -> seconds until ``more`` permits fit (0: now); ``add`` counts
#: permits in the current bucket and writes the window back, extending (never shortening) the hash's TTL.
_WINDOW = (
    """
local K = """
    + str(BUCKETS)
    + """
local function window(key, name, period)
  local width = period / K
  local current = math.floor(now / width)
  local held, total = {}, 0
  local text = redis.call('HGET', key, name)
  if text then
    for b, n in string.gmatch(text, '(%-?%d+):(%d+)') do
      b, n = tonumber(b), tonumber(n)
      if b >= current - K then
        held[#held + 1] = {b, n}
        total = total + n
      end
    end
  end
  table.sort(held, function(x, y) return x[1] < y[1] end)
  return held, total, current, width
end
local function wait(held, total, count, width, more)
  local excess = total + more - count
  if excess <= 0 then return 0 end
  for i = 1, #held do
    excess = excess - held[i][2]
    if excess <= 0 then return math.max((held[i][1] + K + 1) * width - now, 0.000001) end
  end
  if #held > 0 then return (held[#held][1] + K + 1) * width - now end
  return width
end
local function add(key, name, held, current, width, permits, period)
  local found = false
  for i = 1, #held do
    if held[i][1] == current then
      held[i][2] = held[i][2] + permits
      found = true
    end
  end
  if not found then
    held[#held + 1] = {current, permits}
    table.sort(held, function(x, y) return x[1] < y[1] end)
  end
  local parts = {}
  for i = 1, #held do parts[i] = string.format('%.0f:%d', held[i][1], held[i][2]) end
  redis.call('HSET', key, name, table.concat(parts, ' '))
  local ttl = math.ceil((period + width) * 1000)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
"""
)

#: KEYS: window, leases, state. ARGV: lease id, lease seconds, max in flight (0: none), rates as
#: name, count, period triples. Returns {1}, {0, wait seconds (text), why}, or {0, wait, why, 1} when the
#: wait is the API's block.
_ACQUIRE = (
    _NOW
    + _WINDOW
    + """
local blocked = tonumber(redis.call('HGET', KEYS[3], 'blocked_until') or '0')
if blocked > now then
  return {0, string.format('%.6f', blocked - now), redis.call('HGET', KEYS[3], 'blocked_why') or 'blocked by the API', 1}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', now))
local cap = tonumber(ARGV[3])
local learnt = tonumber(redis.call('HGET', KEYS[3], 'learned_in_flight') or '0')
if learnt > 0 and (cap == 0 or learnt < cap) then cap = learnt end
if cap > 0 and redis.call('ZCARD', KEYS[2]) >= cap then
  return {0, '"""
    + str(IN_FLIGHT_POLL_SECONDS)
    + """', cap .. ' at once'}
end
local names, counts, periods = {}, {}, {}
local declared = {}
for i = 4, #ARGV, 3 do
  names[#names + 1] = ARGV[i]
  counts[#counts + 1] = tonumber(ARGV[i + 1])
  periods[#periods + 1] = tonumber(ARGV[i + 2])
  declared[ARGV[i]] = true
end
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local name = string.match(fields[i], '^window:(.+)$')
  if name and not declared[name] then
    local count, period = string.match(fields[i + 1], '^([^:]+):([^:]+)$')
    names[#names + 1] = name
    counts[#counts + 1] = tonumber(count)
    periods[#periods + 1] = tonumber(period)
  end
end
local refused, worst, why, windows = false, 0, '', {}
for i = 1, #names do
  local held, total, current, width = window(KEYS[1], names[i], periods[i])
  local w = wait(held, total, counts[i], width, 1)
  if w > 0 then
    refused = true
    if w > worst then worst, why = w, names[i] end
  end
  windows[i] = {held, current, width}
end
if refused then return {0, string.format('%.6f', worst), why} end
for i = 1, #names do
  add(KEYS[1], names[i], windows[i][1], windows[i][2], windows[i][3], 1, periods[i])
end
local expiry = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], string.format('%.6f', expiry), ARGV[1])
local ttl = math.ceil(tonumber(ARGV[2]) * 1000) + 1000
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return {1}
"""
)
#: KEYS: leases. ARGV: lease seconds, then the lease ids whose requests still run. Each still held (not
#: given back, not lapsed) expires lease seconds from now (``ZADD XX``: a lease gone stays gone).
_RENEW = (
    _NOW
    + """
local expiry = string.format('%.6f', now + tonumber(ARGV[1]))
local renewed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) > now then
    renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
  end
end
local ttl = math.ceil(tonumber(ARGV[1]) * 1000) + 1000
if renewed > 0 and redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return renewed
"""
)
#: KEYS: leases. ARGV: none. The requests in flight now.
_IN_FLIGHT = _NOW + "return redis.call('ZCOUNT', KEYS[1], string.format('%.6f', now), '+inf')"
#: KEYS: state. ARGV: seconds, why. A later block wins.
_BLOCK = (
    _NOW
    + """
local till = now + tonumber(ARGV[1])
if till > tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0') then
  redis.call('HSET', KEYS[1], 'blocked_until', string.format('%.6f', till), 'blocked_why', ARGV[2])
end
redis.call('PEXPIRE', KEYS[1], """
    + str(LEARNT_TTL_MS)
    + """)
return 1
"""
)
#: KEYS: window. ARGV: rate name, count, period, remaining. The API's word on what remains: the window
#: holds at least count - remaining.
_CORRECT = (
    _NOW
    + _WINDOW
    + """
local count, period, remaining = tonumber(ARGV[2]), tonumber(ARGV[3]), math.max(0, tonumber(ARGV[4]))
local held, total, current, width = window(KEYS[1], ARGV[1], period)
local missing = count - remaining - total
if missing > 0 then add(KEYS[1], ARGV[1], held, current, width, missing, period) end
return 1
"""
)
#: KEYS: state. ARGV: requests at once refused past. The lowest learnt stays.
_LEARN_IN_FLIGHT = """
local held = tonumber(redis.call('HGET', KEYS[1], 'learned_in_flight') or '0')
local n = math.max(1, tonumber(ARGV[1]))
if held == 0 or n < held then redis.call('HSET', KEYS[1], 'learned_in_flight', n) end
redis.call('PEXPIRE', KEYS[1], """ + str(LEARNT_TTL_MS) + """)
return 1
"""


def quota_keys(key: str) -> tuple[str, str, str]:
    """The credential's quota keys, under one hash tag: one slot in a Redis Cluster."""
    base = f"vendorauth:{{{key}}}:quota:"
    return base + "window", base + "leases", base + "state"


class RedisQuotaStore:
    """Quotas in the Redis of the connection's token cache (its client: same URL, credentials, TLS)."""

    name = "redis"

    def __init__(self, client: Any, errors: tuple[type[BaseException], ...], where: str) -> None:
        self.client = client
        self.errors = errors
        self.where = where
        self._scripts = {
            name: client.register_script(text)
            for name, text in (
                ("acquire", _ACQUIRE),
                ("renew", _RENEW),
                ("in_flight", _IN_FLIGHT),
                ("block", _BLOCK),
                ("correct", _CORRECT),
                ("learn_in_flight", _LEARN_IN_FLIGHT),
            )
        }

    def acquire(
        self, key: str, rates: tuple[Rate, ...], max_in_flight: int | None, lease: str, lease_seconds: float
    ) -> Decision:
        args: list[Any] = [lease, lease_seconds, max_in_flight or 0]
        for rate in rates:
            args += [rate.name, rate.count, repr(rate.period)]
        answer = self._scripts["acquire"](keys=list(quota_keys(key)), args=args)
        if int(answer[0]) == 1:
            return Decision(True)
        why = answer[2].decode() if isinstance(answer[2], bytes) else str(answer[2])
        return Decision(False, float(answer[1]), why, blocked=len(answer) > 3)

    def release(self, key: str, lease: str) -> None:
        self.client.zrem(quota_keys(key)[1], lease)

    def renew(self, key: str, leases: list[str], lease_seconds: float) -> None:
        if leases:
            self._scripts["renew"](keys=[quota_keys(key)[1]], args=[repr(float(lease_seconds)), *leases])

    def in_flight(self, key: str) -> int:
        return int(self._scripts["in_flight"](keys=[quota_keys(key)[1]]))

    def block(self, key: str, seconds: float, why: str) -> None:
        self._scripts["block"](keys=[quota_keys(key)[2]], args=[repr(float(seconds)), why])

    def correct(self, key: str, rate: Rate, remaining: int) -> None:
        args = [rate.name, rate.count, repr(rate.period), remaining]
        self._scripts["correct"](keys=[quota_keys(key)[0]], args=args)

    def learn_rate(self, key: str, rate: Rate) -> None:
        state = quota_keys(key)[2]
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(state, f"window:{rate.name}", f"{rate.count}:{rate.period!r}")
        pipe.pexpire(state, LEARNT_TTL_MS)
        pipe.execute()

    def learn_in_flight(self, key: str, at_once: int) -> None:
        self._scripts["learn_in_flight"](keys=[quota_keys(key)[2]], args=[at_once])
