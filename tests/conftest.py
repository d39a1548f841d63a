"""Test-wide set-up: a private AIRFLOW_HOME with SQLite, and clean token caches for every test."""

from __future__ import annotations

import os
import tempfile

# Before Airflow is imported anywhere: a throw-away home, so tests never touch a user's Airflow.
_HOME = tempfile.mkdtemp(prefix="vendorauth-test-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# The DAGs folder holds the example DAGs and the test DAGs (linked), so dag.test() can serialise both.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DAGS = os.path.join(_HOME, "dags")
os.makedirs(_DAGS)
for _folder in ("dags_examples", os.path.join("tests", "dags")):
    for _name in os.listdir(os.path.join(_ROOT, _folder)):
        if _name.endswith(".py"):
            os.symlink(os.path.join(_ROOT, _folder, _name), os.path.join(_DAGS, _name))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = _DAGS

import pytest  # noqa: E402

pytest_plugins = ["airflow_vendorauth.sandbox.pytest_plugin"]

from airflow_vendorauth.sandbox.process_state import forget_process_state  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Every test starts as a fresh task process would: no token, no remembered refusal, no cache
    object, no warning already said."""
    forget_process_state()
