"""The DAG processor imports a hook module on every parse of a DAG file that uses it: the token machinery,
the API client, the paging engine and filelock (only ``cache: file`` needs it) are imported where a task
first uses them, not at parse time. (The wall time is measured in benchmarks/import_time.py, not here.)"""

from __future__ import annotations

import os
import subprocess
import sys

PARSE = (
    "import sys, airflow.sdk; before = set(sys.modules); "
    "import airflow_vendorauth.hooks.kazi, airflow_vendorauth.hooks.oauth2, airflow_vendorauth.operators.api; "
    "print(' '.join(sorted(set(sys.modules) - before)))"
)


HEAVY = (
    "filelock",
    "airflow_vendorauth.auth.file_cache",
    "airflow_vendorauth.client.api_client",
    "airflow_vendorauth.auth.provider",
    "airflow_vendorauth.pagination.walk",
)


def test_a_dag_files_parse_does_not_import_what_only_a_running_task_needs() -> None:
    loaded = subprocess.run([sys.executable, "-c", PARSE], capture_output=True, text=True, check=True, env=os.environ).stdout.split()
    assert "airflow_vendorauth.hooks.kazi" in loaded
    assert [name for name in HEAVY if name in loaded] == []


def test_a_task_still_gets_the_file_cache_when_the_connection_asks_for_it(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    from airflow_vendorauth.auth.file_cache import FileTokenCache
    from airflow_vendorauth.hooks.shared_cache import shared_cache_for
    from airflow_vendorauth.vendors.settings import TokenCacheSetting

    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("AIRFLOW__VENDORAUTH__TOKEN_CACHE_DIR", str(tmp_path))
    setting = TokenCacheSetting.parse("file", lambda *a: AssertionError(a))
    assert isinstance(shared_cache_for(setting), FileTokenCache)
