"""The pytest plugin in projects shaped as users shape them (each a fresh folder, a pytest process of its
own, no AIRFLOW_* variable): where the DAGs folder is found, and the clear errors when it cannot work.
The full run (migrate, sandbox, dag.test()) is tests/integration/test_readme.py's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_readme import scrubbed_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]  # each test runs pytest in a new project (up to 5 min)

CONFTEST = 'pytest_plugins = ["airflow_vendorauth.sandbox.pytest_plugin"]\n'
WHERE = """
import os
from pathlib import Path


def test_where(airflow_home):
    assert Path(os.environ["AIRFLOW_HOME"]) == airflow_home
    print("HOME=" + os.environ["AIRFLOW_HOME"])
    print("DAGS=" + os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    import airflow.configuration

    assert airflow.configuration.AIRFLOW_HOME == os.environ["AIRFLOW_HOME"]
"""


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=scrubbed_env(project.parent),
        capture_output=True,
        text=True,
        timeout=300,
    )


def printed(done: subprocess.CompletedProcess[str], name: str) -> str:
    return next(line.split("=", 1)[1] for line in done.stdout.splitlines() if line.startswith(name + "="))


def make(project: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    return project


def test_without_an_ini_file_the_dags_folder_is_dags_next_to_conftest_even_when_pytest_is_given_tests(tmp_path: Path) -> None:
    project = make(tmp_path / "p", {"conftest.py": CONFTEST, "dags/.keep": "", "tests/test_where.py": WHERE})
    done = pytest_in(project, "tests")
    assert done.returncode == 0, done.stdout + done.stderr
    assert printed(done, "DAGS") == str(project / "dags")
    home = printed(done, "HOME")
    assert not home.startswith(str(tmp_path)) and "vendorauth-pytest-airflow-home-" in home


def test_the_ini_option_names_the_dags_folder(tmp_path: Path) -> None:
    ini = '[tool.pytest.ini_options]\nvendorauth_dags_folder = ["pipelines"]\n'
    project = make(tmp_path / "p", {"pyproject.toml": ini, "conftest.py": CONFTEST, "test_where.py": WHERE})
    done = pytest_in(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert printed(done, "DAGS") == str(project / "pipelines")


def test_airflow_imported_before_the_plugin_is_a_clear_usage_error(tmp_path: Path) -> None:
    conftest = "import airflow.configuration\n\n" + CONFTEST
    project = make(tmp_path / "p", {"conftest.py": conftest, "test_where.py": WHERE})
    done = pytest_in(project)
    assert done.returncode == 4, done.stdout + done.stderr  # pytest's usage error
    assert "Airflow was imported before airflow_vendorauth's pytest plugin" in done.stderr
    assert "Fix: import airflow inside tests or fixtures" in done.stderr


def test_a_missing_dags_folder_is_said_before_anything_is_migrated(tmp_path: Path) -> None:
    test = 'def test_run(run_dag):\n    run_dag("anything")\n'
    project = make(tmp_path / "p", {"conftest.py": CONFTEST, "test_run.py": test})
    done = pytest_in(project)
    assert done.returncode != 0
    assert f"no DAGs folder at {project / 'dags'}" in done.stdout + done.stderr
    assert "vendorauth_dags_folder" in done.stdout + done.stderr
