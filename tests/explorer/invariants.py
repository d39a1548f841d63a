"""What must hold after every schedule, whatever it did. Each check returns the broken promises, in words.

1. **No refresh token presented twice**, except a presentation the server took as a repeat within the
   reuse interval the schedule enabled, or where the schedule destroyed every copy of its successor: Redis
   (without persistence or replicas) restarted empty after the rotation, and every process that knew the
   successor had ended, or ended before it could give its copy back once Redis was back: no live process can
   know the successor exists.
2. **No chain lost unless the schedule destroyed its only copy**: the final check (a fresh task process)
   works; or the schedule lost an answer (a timeout after the server rotated, an answer dropped, a 500/502)
   without a reuse interval, or killed a process while the last rotation's successor could be on its way
   to the cache (:func:`killed_mid_rotation`), and then the check's error says exactly so: the chain is
   "in doubt" (presented, no answer stored) or "lost" (refused).
3. **Failures are ours and say what happened**: every failed call raised one of the provider's errors (or
   ScanStopped after a SIGTERM), never an internal error.
4. **Test never spends what the workers cannot see**: with the file cache, Test said the refresh token was
   not spent.
5. **No secret in any log or journal**: no token the sandbox issued appears in a process's output.
6. **Scans**: every scan's output holds each record exactly once, or its task failed naming the shortfall.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from airflow_vendorauth.auth.refresh_chain import CHAIN_REPUBLISH_SECONDS, CHAIN_STORE_RETRY_SECONDS
from tests.explorer.schedule import TOKEN_FAULTS
from tests.explorer.world import Outcome

OUR_ERRORS = {"TokenRequestError", "VendorApiError", "ScanStopped", "InvalidTokenResponseError", "ConnectionConfigError"}
#: How long after the server's rotation its spender may still be storing the successor: the answer's way
#: back, then the store retried for CHAIN_STORE_RETRY_SECONDS through a Redis restart, and a margin.
STORE_WINDOW_SECONDS = CHAIN_STORE_RETRY_SECONDS + 3.0
#: How long a running process may take to give its copy back once Redis is back from a restart: its next call
#: after CHAIN_REPUBLISH_SECONDS, redis-py's reconnection, and a margin for a loaded machine.
GIVE_BACK_SECONDS = CHAIN_REPUBLISH_SECONDS + 1.0
#: How long after Redis is back the API may still refuse a declared quota's requests: a process that fell back
#: to its share asks the store again after RETRY_STORE_SECONDS (5 s; the leases it took meanwhile are not
#: in the store), the store restarted empty while the API still counts the last window (a second), and a
#: margin for a loaded machine. Written out, not derived: the oracle must not move with the code it checks
#: (a unit test holds it above RETRY_STORE_SECONDS + 1). Seen: refusals up to 4.6 s after Redis was back.
QUOTA_AFTER_OUTAGE_SECONDS = 8.0


def check(outcome: Outcome) -> list[str]:
    return [
        *no_token_presented_twice(outcome),
        *chain_kept(outcome),
        *failures_are_ours(outcome),
        *test_spent_nothing_unseen(outcome),
        *no_secret_leaked(outcome),
        *scans_exactly_once(outcome),
        *quota_kept(outcome),
    ]


def _times(outcome: Outcome, kind: str) -> list[float]:
    return [e["at"] for e in outcome.events if e["kind"] == kind]


def _duplicates(outcome: Outcome) -> list[tuple[str, dict[str, Any], dict[str, Any], str | None]]:
    """Every second presentation of a refresh token: (token, first, again, why it is excused or None).

    Excused only where nothing alive could know the token was spent: Redis restarted empty after its
    presentation, and at that moment no running task process held a later generation, nor this one with a
    spend's mark, in its memory (the copies it would have given back): the spender had ended, or was Test's
    or a scan's process, gone since; or every process that knew ended before it could give its copy back
    (:func:`could_give_back`: closed while Redis was still down, or killed within GIVE_BACK_SECONDS of its
    return; the explorer's seed 500023 ended one and killed the other that way)."""
    presented: dict[str, list[dict[str, Any]]] = defaultdict(list)
    generation: dict[str, int] = {}  # token -> its generation (the seed 0; the k-th rotation's successor k)
    for entry in outcome.refresh_log:
        if entry["outcome"] == "unknown":  # Test's probe, a token that cannot exist
            continue
        presented[entry["token"]].append(entry)
        if entry["outcome"] == "rotated":
            generation[entry["token"]] = len(generation)
    wipes = _times(outcome, "redis_down")
    back = _times(outcome, "redis_up")
    started = {e["pid"]: e["at"] for e in outcome.journal if e["kind"] == "ready"}
    closed = {e["pid"]: e["at"] for e in outcome.journal if e["kind"] == "ended"}  # then its hook closes
    killed = {e["pid"]: e["at"] for e in outcome.events if e["kind"] == "killed"}
    held = [(e["pid"], e["at"], e["generation"], e.get("pending", False))
            for e in outcome.journal if e["kind"] == "generation" and e["generation"] is not None]

    def could_give_back(pid: int, wipe: float) -> bool:
        """Whether the process outlived the restart long enough to give its copy back: it closed its hook
        after Redis was back (closing gives the copy back), or was still running
        :data:`GIVE_BACK_SECONDS` after it (its calls give it back every CHAIN_REPUBLISH_SECONDS)."""
        up = min((b for b in back if b >= wipe), default=wipe)
        if pid in killed and killed[pid] < closed.get(pid, float("inf")):
            return killed[pid] > up + GIVE_BACK_SECONDS
        return closed.get(pid, float("inf")) > up

    def known_at(wipe: float, spent: int) -> list[int]:
        """The processes running at ``wipe`` that knew generation ``spent`` was presented (they held a later
        one, or that one with a spend's mark) and lived on to give their copy back."""
        return sorted({pid for pid, at, g, pending in held if at < wipe and (g > spent or (g == spent and pending))
                       and started.get(pid, 0) < wipe < min(closed.get(pid, float("inf")), killed.get(pid, float("inf")))
                       and could_give_back(pid, wipe)})

    found = []
    for token, uses in presented.items():
        first = uses[0]["at"]
        spent = generation.get(token)
        for again in uses[1:]:
            if again["outcome"] == "repeated":
                continue
            why = None
            for wipe in (w for w in wipes if first < w < again["at"]):
                if spent is not None and not known_at(wipe, spent):
                    why = (f"that it was spent (generation {spent}) was known only to Redis, which restarted empty at "
                           f"{wipe:.2f}, and to processes that ended before they could give it back")
            found.append((token, uses[0], again, why))
    return found


def no_token_presented_twice(outcome: Outcome) -> list[str]:
    return [
        f"refresh token {token[:6]}... presented twice ({first['outcome']} at {first['at']:.2f}, "
        f"{again['outcome']} at {again['at']:.2f})"
        for token, first, again, why in _duplicates(outcome)
        if why is None
    ]


def excused(outcome: Outcome) -> list[str]:
    """The second presentations the schedule made unavoidable, and why (printed with the verdict)."""
    return [f"{token[:6]}... presented again: {why}" for token, _, _, why in _duplicates(outcome) if why]


def destroying_events(outcome: Outcome) -> list[str]:
    """The schedule's events that may destroy the only copy of a chain's successor."""
    found = []
    if outcome.schedule.reuse_seconds == 0:
        for e in outcome.events:
            if e["kind"] == "token_fault" and TOKEN_FAULTS[e["fault"]][1]:
                found.append(f"token fault {e['fault']}")
    found += killed_mid_rotation(outcome)
    found += excused(outcome)
    return found


def killed_mid_rotation(outcome: Outcome) -> list[str]:
    """The kills (of a task process, or of a scan's process) that may have destroyed the only copy of the last
    successor the server issued: the last rotation's successor was never presented, so if the chain is lost,
    that is the copy lost. A kill destroyed it only if it came while that spend could be out: after its
    request could have been sent (the server may take it up to one attempt later: a slow or stalled token
    endpoint) and before its successor was stored (:data:`STORE_WINDOW_SECONDS` after the rotation, and never
    once a process held the successor's generation). A kill anywhere else destroyed nothing."""
    rotated = [e for e in outcome.refresh_log if e["outcome"] == "rotated"]
    if not rotated:
        return []
    at, successor = rotated[-1]["at"], len(rotated)  # the seed is generation 0: the k-th rotation makes k
    stored = min((e["at"] for e in outcome.journal
                  if e["kind"] == "generation" and (e.get("generation") or 0) >= successor), default=float("inf"))
    found = []
    for e in outcome.events:
        if e["kind"] not in ("killed", "scan_killed"):
            continue
        if at - outcome.schedule.attempt_seconds <= e["at"] <= min(at + STORE_WINDOW_SECONDS, stored):
            who = f"worker {e['worker']}" if e["kind"] == "killed" else e["scan"]
            found.append(f"{who} killed {e['at'] - at:+.2f} s from the last rotation, its successor not yet stored")
    return found


def chain_kept(outcome: Outcome) -> list[str]:
    final = outcome.final
    if final.get("ok"):
        return []
    message = final.get("message", "")
    destroyed = destroying_events(outcome)
    if not destroyed:
        return [f"the final check failed though nothing destroyed the chain: {final.get('error')}: {message[:400]}"]
    if "chain is in doubt" not in message and "chain is lost" not in message:
        return [f"the final check failed after {destroyed} without saying the chain is in doubt or lost: {message[:400]}"]
    return []


def failures_are_ours(outcome: Outcome) -> list[str]:
    return [
        f"worker call failed with an internal error {e['error']}: {e.get('message', '')[:300]}"
        for e in outcome.journal
        if e["kind"] == "failed" and e["error"] not in OUR_ERRORS
    ]


def test_spent_nothing_unseen(outcome: Outcome) -> list[str]:
    if outcome.schedule.backend != "file":
        return []
    return [
        f"Test with the file cache did not say it spent nothing: {t.get('message', '')[:300]}"
        for t in outcome.tests_pressed
        if t.get("ok") and "not spent" not in t.get("message", "")
    ]


def no_secret_leaked(outcome: Outcome) -> list[str]:
    text = outcome.logs + "\n".join(str(e) for e in outcome.journal) + "\n".join(str(t) for t in outcome.tests_pressed)
    leaked = [token[:8] for token in outcome.issued if len(token) > 16 and token in text]
    return [f"{len(leaked)} issued tokens appear in the processes' output (e.g. {leaked[:3]})"] if leaked else []


def scans_exactly_once(outcome: Outcome) -> list[str]:
    broken = []
    for scan in outcome.scans:
        if scan["state"] == "success":
            if scan["records"] != scan["expected"] or scan["duplicates"] or scan["wrong"]:
                broken.append(
                    f"scan {scan['name']} succeeded with {scan['records']} records ({scan['duplicates']} doubled, "
                    f"not of its filter: {scan['wrong']}) where {scan['expected']} were served for its parameters"
                )
        elif not scan.get("named_shortfall"):
            broken.append(f"scan {scan['name']} ended {scan['state']} without naming what it kept: {scan['said'][:300]}")
    return broken


def quota_kept(outcome: Outcome) -> list[str]:
    """With the API's quota declared, the API refuses nothing (neither past the rate nor past the requests at
    once), except while a Redis outage lasts and for :data:`QUOTA_AFTER_OUTAGE_SECONDS` after it (the store
    comes back empty while the API still counts the last window, and a process that fell back to its share
    asks the store again only every ``RETRY_STORE_SECONDS``); and the quota was reached (as many at once as
    declared), or this checked nothing. (Test with the file cache only asks the token endpoint, which the
    quota does not count: it excuses nothing. The sandbox refuses past ``max_in_flight``, so its peak never
    passes it: going past shows as a refusal.)"""
    rule = outcome.quota
    if not outcome.schedule.quota:
        return []
    if not rule or not rule.get("served"):
        return ["the API's quota was declared but the sandbox admitted nothing under it"]
    start = next((e["at"] for e in outcome.events if e["kind"] == "started"), outcome.events[0]["at"] if outcome.events else 0.0)
    outages, since = [], None
    for e in outcome.events:
        if e["kind"] == "redis_down":
            since = e["at"]
        elif e["kind"] == "redis_up" and since is not None:
            outages.append((since, e["at"] + QUOTA_AFTER_OUTAGE_SECONDS))
            since = None
    if since is not None:  # Redis never came back
        outages.append((since, float("inf")))
    late = [t for t in rule["refused_epoch"] if not any(a <= t <= b for a, b in outages)]
    broken = []
    if late:
        when = ", ".join(f"{t - start:.2f}" for t in late[:5])
        broken.append(f"the API answered {len(late)} requests 429 past the declared quota outside any outage "
                      f"(at {when} s from the start)")
    if rule["peak_in_flight"] < rule["max_in_flight"]:
        broken.append(f"the declared quota was never reached (at most {rule['peak_in_flight']} of {rule['max_in_flight']} "
                      f"at once, {rule['served']} served): the quota was not exercised")
    return broken
