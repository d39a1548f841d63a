"""Registering secrets with Airflow's masker, in task processes and under ``dag.test()`` alike."""

from __future__ import annotations

from airflow.sdk.execution_time import task_runner
from airflow.sdk.log import mask_secret


def mask(secret: str) -> None:
    """Register a secret with Airflow's masker (task process and supervisor alike).

    Under ``dag.test()`` / ``airflow dags test`` the supervisor is this very process, and its in-process
    comms log every request at DEBUG, a MaskSecret's value included (Airflow 3.3): there the secret
    is registered locally only, which masks it for that single process all the same.
    """
    if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms":
        from airflow.sdk._shared.secrets_masker import mask_secret as mask_locally  # only where it exists

        mask_locally(secret)
        return
    mask_secret(secret)
