"""pytest fixtures for testing DAGs against the sandbox.

Enable with ``-p airflow_vendorauth.sandbox.pytest_plugin`` or, in a ``conftest.py``,
``pytest_plugins = ["airflow_vendorauth.sandbox.pytest_plugin"]``.

- ``vendor_sandbox`` (session): a sandbox process on a free port of 127.0.0.1.
- ``sandbox_connections``: resets the sandbox (counters, faults, tokens) and this process's token
  cache, sets ``AIRFLOW_CONN_*`` for every vendor (``kazi_default``, ``keyavi_default``,
  ``keyavi_user``, ``kayzen_default``, ``smartrecruiters_default``, ``clazar_default``) and returns them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.process_state import forget_process_state


def _require_sandbox_extra() -> None:
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"the vendor sandbox needs {', '.join(missing)}: pip install 'airflow-vendorauth[sandbox]'"
        )


@pytest.fixture(scope="session")
def vendor_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    _require_sandbox_extra()
    log = tmp_path_factory.mktemp("vendor-sandbox") / "sandbox.log"
    with Sandbox(log_path=log) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox_connections(vendor_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    vendor_sandbox.reset()
    forget_process_state()
    environment = vendor_sandbox.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment
