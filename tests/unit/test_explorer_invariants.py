"""The fault explorer's invariants can fail: each is fed an outcome that breaks it, and one that keeps it.
(A check that cannot fail would let every schedule pass.) Schedules are reproducible from their seed."""

from __future__ import annotations

from typing import Any

from tests.explorer import invariants
from tests.explorer.schedule import Schedule, Step
from tests.explorer.world import Outcome


def outcome(**changes: Any) -> Outcome:
    schedule = Schedule(1, "redis", 0, ("threads", "threads"), 3, 10.0, 1.0, ())
    base: dict[str, Any] = {
        "schedule": schedule, "events": [], "journal": [], "refresh_log": [], "stats": {}, "final": {"ok": True},
        "tests_pressed": [], "logs": "", "issued": [], "scans": [],
    }
    return Outcome(**(base | changes))


def presented(token: str, at: float, result: str = "rotated") -> dict[str, Any]:
    return {"token": token, "at": at, "client_id": "c", "outcome": result}


def test_a_schedule_is_the_same_for_the_same_seed_and_travels_as_json() -> None:
    assert Schedule.from_seed(7) == Schedule.from_seed(7)
    assert Schedule.from_json(Schedule.from_seed(7).to_json()) == Schedule.from_seed(7)
    assert Schedule.from_seed(7) != Schedule.from_seed(8)


def test_a_token_presented_twice_is_caught_unless_within_the_reuse_interval() -> None:
    twice = outcome(refresh_log=[presented("RT-a", 1.0), presented("RT-a", 2.0, "reused")])
    assert invariants.no_token_presented_twice(twice)
    repeated = outcome(refresh_log=[presented("RT-a", 1.0), presented("RT-a", 2.0, "repeated")])
    assert not invariants.no_token_presented_twice(repeated)


def test_a_second_presentation_is_excused_only_when_no_running_process_knew_the_token_was_spent() -> None:
    log = [presented("RT-a", 1.0), presented("RT-a", 5.0, "reused")]
    wipe = [{"at": 3.0, "kind": "redis_down"}]
    # the process that rotated it had ended before Redis restarted empty: nobody alive could know
    gone = [{"pid": 1, "at": 0.0, "kind": "ready"}, {"pid": 1, "at": 1.1, "kind": "generation", "generation": 1},
            {"pid": 1, "at": 2.0, "kind": "ended"}]
    assert not invariants.no_token_presented_twice(outcome(refresh_log=log, events=wipe, journal=gone))
    # a process still running held the successor: it should have given it back
    alive = [*gone, {"pid": 2, "at": 0.0, "kind": "ready"}, {"pid": 2, "at": 1.5, "kind": "generation", "generation": 1}]
    assert invariants.no_token_presented_twice(outcome(refresh_log=log, events=wipe, journal=alive))
    # ... or the spend's mark: it knew the token was presented
    marked = [*gone, {"pid": 2, "at": 0.0, "kind": "ready"},
              {"pid": 2, "at": 1.5, "kind": "generation", "generation": 0, "pending": True}]
    assert invariants.no_token_presented_twice(outcome(refresh_log=log, events=wipe, journal=marked))
    # no restart between the two: never excused
    assert invariants.no_token_presented_twice(outcome(refresh_log=log, journal=gone))


def test_a_process_that_knew_excuses_nothing_once_it_had_the_time_to_give_its_copy_back() -> None:
    """Seed 500023: Redis restarts (down at 3.0, back at 3.3) while the process that knew ends or is killed.
    Ended while Redis was down, or killed within GIVE_BACK_SECONDS of its return: it could not give its copy
    back (excused). Closed after Redis was back, or killed later than that: it should have (caught)."""
    log = [presented("RT-a", 1.0), presented("RT-a", 8.0, "reused")]
    restart = [{"at": 3.0, "kind": "redis_down"}, {"at": 3.3, "kind": "redis_up"}]
    knew = [{"pid": 2, "at": 0.0, "kind": "ready"}, {"pid": 2, "at": 1.5, "kind": "generation", "generation": 1}]

    def judged(end: list[dict[str, Any]], kill: list[dict[str, Any]]) -> list[str]:
        return invariants.no_token_presented_twice(outcome(refresh_log=log, events=restart + kill, journal=knew + end))

    assert not judged([{"pid": 2, "at": 3.1, "kind": "ended"}], [])  # closed while Redis was down
    assert judged([{"pid": 2, "at": 3.4, "kind": "ended"}], [])  # closed after it was back: closing gives it back
    soon, late = 3.3 + invariants.GIVE_BACK_SECONDS - 0.1, 3.3 + invariants.GIVE_BACK_SECONDS + 0.1
    assert not judged([], [{"pid": 2, "at": soon, "kind": "killed", "worker": 0}])
    assert judged([], [{"pid": 2, "at": late, "kind": "killed", "worker": 0}])


def test_a_lost_chain_needs_a_destroying_event_and_the_words_for_it() -> None:
    lost = {"ok": False, "error": "TokenRequestError", "message": "the refresh token chain is in doubt: ..."}
    assert invariants.chain_kept(outcome(final=lost))  # nothing destroyed it
    fault = [{"at": 1.0, "kind": "token_fault", "fault": "lost-502", "count": 1}]
    assert not invariants.chain_kept(outcome(final=lost, events=fault))
    vague = {"ok": False, "error": "TokenRequestError", "message": "something failed"}
    assert invariants.chain_kept(outcome(final=vague, events=fault))
    harmless = [{"at": 1.0, "kind": "token_fault", "fault": "503", "count": 1}]
    assert invariants.chain_kept(outcome(final=lost, events=harmless))
    excused_by_reuse = outcome(final=lost, events=fault, schedule=Schedule(1, "redis", 20, ("threads",), 3, 10.0, 1.0, ()))
    assert invariants.chain_kept(excused_by_reuse)  # with a reuse interval a lost answer is retried


def test_internal_errors_secrets_test_spends_and_scans_are_caught() -> None:
    assert invariants.failures_are_ours(outcome(journal=[{"kind": "failed", "error": "AttributeError", "message": "x"}]))
    assert not invariants.failures_are_ours(outcome(journal=[{"kind": "failed", "error": "TokenRequestError"}]))
    leaked = outcome(issued=["RT-abcdefghijklmnopqrstuvwxyz"], logs="... RT-abcdefghijklmnopqrstuvwxyz ...")
    assert invariants.no_secret_leaked(leaked)
    file_schedule = Schedule(1, "file", 0, ("threads",), 3, 10.0, 1.0, (Step(1.0, "press_test"),))
    spent = outcome(schedule=file_schedule, tests_pressed=[{"ok": True, "message": "OAuth 2.0 token obtained"}])
    assert invariants.test_spent_nothing_unseen(spent)
    scan = {"name": "s", "state": "success", "records": 550, "duplicates": 0, "expected": 600, "wrong": [], "said": ""}
    assert invariants.scans_exactly_once(outcome(scans=[scan]))
    assert invariants.scans_exactly_once(outcome(scans=[scan | {"records": 600, "wrong": ["ite-000001"]}]))
    assert not invariants.scans_exactly_once(outcome(scans=[scan | {"records": 600}]))
    silent = scan | {"state": "failed", "named_shortfall": False}
    assert invariants.scans_exactly_once(outcome(scans=[silent]))


def test_a_kill_excuses_a_lost_chain_only_while_the_last_rotation_could_be_out() -> None:
    """A killed process destroys the only copy of a successor only if it was killed between the server's
    rotation (or the sending of its request) and the store of the successor: any kill anywhere in the schedule
    excused every chain loss before (a real loss passed), and the window must still cover a spend in flight."""
    in_doubt = {"ok": False, "error": "TokenRequestError", "message": "the refresh token chain is in doubt: ..."}
    log = [presented("RT-0", 2.0), presented("RT-1", 10.0)]  # the last rotation, at 10.0: its successor never seen

    def kill(at: float) -> list[dict[str, Any]]:
        return [{"at": at, "kind": "killed", "worker": 0, "pid": 7}]

    assert not invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=kill(10.3)))  # mid-store
    # in flight: its request sent before the kill, served after it (a slow or stalled token endpoint)
    assert not invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=kill(8.0)))
    # long before, or long after, the last rotation: the kill destroyed nothing
    assert invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=kill(3.0)))
    assert invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=kill(30.0)))
    # within the window, but a process held the successor (generation 2) before the kill: it was stored
    stored = [{"pid": 8, "at": 10.2, "kind": "generation", "generation": 2, "pending": False}]
    assert invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=kill(10.3), journal=stored))
    # a scan's process killed (a clear with changed parameters) counts as a kill too
    scan_killed = [{"at": 10.3, "kind": "scan_killed", "scan": "scan-0"}]
    assert not invariants.chain_kept(outcome(final=in_doubt, refresh_log=log, events=scan_killed))


def test_a_declared_quota_refused_by_the_api_is_caught_outside_an_outage_and_an_unexercised_one_too() -> None:
    from airflow_vendorauth.quota.limiter import RETRY_STORE_SECONDS

    redis_quota = Schedule(1, "redis", 0, ("threads",), 3, 10.0, 1.0, (), quota=True)
    rule = {"served": 100, "refused_epoch": [], "peak_in_flight": 2, "max_in_flight": 2}
    start = [{"at": 99.0, "kind": "worker_started"}, {"at": 100.0, "kind": "started"}]
    assert not invariants.quota_kept(outcome(schedule=redis_quota, quota=rule, events=start))
    assert invariants.quota_kept(outcome(schedule=redis_quota, quota={}, events=start))  # nothing admitted: not run
    assert invariants.quota_kept(outcome(schedule=redis_quota, quota=rule | {"peak_in_flight": 1}, events=start))
    refused = rule | {"refused_epoch": [104.0]}
    [said] = invariants.quota_kept(outcome(schedule=redis_quota, quota=refused, events=start))
    assert "at 4.00 s from the start" in said  # from the schedule's start, as its steps are
    outage = [*start, {"at": 103.0, "kind": "redis_down"}, {"at": 103.3, "kind": "redis_up"}]
    assert not invariants.quota_kept(outcome(schedule=redis_quota, quota=refused, events=outage))
    before = rule | {"refused_epoch": [102.9]}  # before Redis went down: nothing excuses it
    assert invariants.quota_kept(outcome(schedule=redis_quota, quota=before, events=outage))
    after = 103.3 + invariants.QUOTA_AFTER_OUTAGE_SECONDS + 0.1
    assert invariants.quota_kept(outcome(schedule=redis_quota, quota=rule | {"refused_epoch": [after]}, events=outage))
    never_back = [*start, {"at": 103.0, "kind": "redis_down"}]
    assert not invariants.quota_kept(outcome(schedule=redis_quota, quota=rule | {"refused_epoch": [150.0]}, events=never_back))
    # the window after an outage is the limiter's fallback period and the API's window, written out: it must not
    # grow with the code it checks (a limiter asking the store again after a minute would excuse whole schedules)
    assert RETRY_STORE_SECONDS + 1.0 <= invariants.QUOTA_AFTER_OUTAGE_SECONDS <= 8.0
    # Test pressed (with any cache) asks only the token endpoint, which the quota does not count: no excuse
    pressed = [*start, {"at": 103.5, "kind": "test_pressing"}, {"at": 104.2, "kind": "test_pressed"}]
    for backend in ("file", "redis"):
        with_test = Schedule(1, backend, 0, ("threads",), 3, 10.0, 1.0, (Step(1.0, "press_test"),), quota=True)
        assert invariants.quota_kept(outcome(schedule=with_test, quota=refused, events=pressed))
    assert not invariants.quota_kept(outcome(schedule=Schedule(1, "redis", 0, ("threads",), 3, 10.0, 1.0, ()),
                                             quota=refused, events=start))  # no quota declared: nothing to keep
