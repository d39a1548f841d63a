"""Registering secrets with Airflow's masker, in task processes and under ``dag.test()`` alike."""

from __future__ import annotations

import threading

from airflow.sdk.execution_time import task_runner
from airflow.sdk.log import mask_secret

#: Values this process registered already: a triggerer's thousand hooks of one connection register its
#: secrets once, not a thousand times through the supervisor.
_masked: set[int] = set()
_guard = threading.Lock()


def mask(secret: str) -> None:
    """Register a secret with Airflow's masker (task process and supervisor alike).

    Under ``dag.test()`` / ``airflow dags test`` the supervisor is this very process, and its in-process
    comms log every request at DEBUG, a MaskSecret's value included (Airflow 3.3): there the secret
    is registered locally only, which masks it for that single process all the same.
    """
    fingerprint = hash(secret)
    with _guard:
        if fingerprint in _masked:
            return
        _masked.add(fingerprint)
    if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms":
        from airflow.sdk._shared.secrets_masker import mask_secret as mask_locally  # only where it exists

        mask_locally(secret)
        return
    mask_secret(secret)


def forget_masked() -> None:
    """Register every secret again on next use (tests start each from a clean process state)."""
    with _guard:
        _masked.clear()
