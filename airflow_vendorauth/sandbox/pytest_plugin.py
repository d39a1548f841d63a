"""pytest fixtures for testing DAGs against the sandbox, in any project, with nothing set up by hand.

Install with the ``testing`` extra (pytest, FastAPI, uvicorn) and enable in the ``conftest.py`` at the
root of the tests (``pytest_plugins = ["airflow_vendorauth.sandbox.pytest_plugin"]``) or with
``-p airflow_vendorauth.sandbox.pytest_plugin``.

Before any test module is collected (so before Airflow reads its configuration), the session gets an
Airflow home of its own: a temporary folder (removed at the end) with SQLite, no example DAGs, and ``[core] dags_folder`` pointing at the project's DAGs: the ini option
``vendorauth_dags_folder`` (one or more folders, relative to the rootdir; several are linked into one),
by default ``dags/``. A user's own ``~/airflow`` or ``AIRFLOW_HOME`` is never touched.

- ``airflow_home`` (session): that folder.
- ``airflow_db`` (session): the metadata database, migrated once per session (``airflow db migrate``).
- ``vendor_sandbox`` (session): a sandbox process on a free port of 127.0.0.1.
- ``sandbox_connections``: resets the sandbox (counters, faults, tokens) and this process's token
  cache, sets ``AIRFLOW_CONN_*`` for every sandbox connection and returns them.
- ``run_dag``: ``run_dag("my_dag")`` parses the DAGs folder once, runs the DAG through ``dag.test()``
  with the sandbox's connections and returns the DagRun (``logical_date=``, a datetime or an ISO 8601
  string such as ``"2026-11-24T00:00:00+00:00"``, and ``conf=`` optional).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.process_state import forget_process_state

DAGS_OPTION = "vendorauth_dags_folder"
_HOME = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        DAGS_OPTION, "the DAGs folder(s) dag.test() runs from, relative to the rootdir", type="linelist", default=["dags"]
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give the session its own Airflow home and DAGs folder, before Airflow reads its configuration."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker inherits the controller's environment
        return
    if "airflow.configuration" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME  # type: ignore[attr-defined]

        raise pytest.UsageError(
            f"Airflow was imported before airflow_vendorauth's pytest plugin could give the tests their own "
            f"AIRFLOW_HOME (it already uses {AIRFLOW_HOME}). Fix: import airflow inside tests or fixtures, "
            "not at the top of conftest.py, and load the plugin from the rootdir's conftest.py"
        )
    home = Path(tempfile.mkdtemp(prefix="vendorauth-pytest-airflow-home-"))
    config.stash[_HOME] = home
    dags = _dags_folder(config, home)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def pytest_unconfigure(config: pytest.Config) -> None:
    home = config.stash.get(_HOME, None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def _dags_folder(config: pytest.Config, home: Path) -> Path:
    """The DAGs folder Airflow is pointed at: the one given, or a folder of links to several."""
    names = config.getini(DAGS_OPTION)
    folders = [Path(config.rootpath, name).resolve() for name in names]
    if len(folders) == 1:
        return folders[0]
    linked = home / "dags"
    linked.mkdir(exist_ok=True)
    for folder in folders:
        for source in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            link = linked / source.name
            if not link.exists():
                link.symlink_to(source)
    return linked


def _require_sandbox_extra() -> None:
    missing = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise pytest.UsageError(
            f"the vendor sandbox needs {', '.join(missing)}: install airflow-vendorauth with its testing extra "
            "(from a clone: pip install '.[testing]')"
        )


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The session's own Airflow home (SQLite database, airflow.cfg, logs, token cache files)."""
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> str:
    """The metadata database of the session's Airflow home, migrated once per session."""
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=os.environ.copy()
    )
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed in {airflow_home}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return str(airflow_home)


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


@pytest.fixture(scope="session")
def _parsed_dags(request: pytest.FixtureRequest) -> Any:
    """The DAGs folder, parsed once per session (what Airflow's DAG processor would do)."""
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if not folder.is_dir():  # said before the database is migrated: no 20 s wait for a missing folder
        raise pytest.UsageError(
            f"no DAGs folder at {folder}: put your DAG files in dags/ next to conftest.py, or name their folder "
            f"with {DAGS_OPTION} in pytest's ini file (pytest.ini, or [tool.pytest.ini_options] in pyproject.toml)"
        )
    request.getfixturevalue("airflow_db")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # as Airflow does: DAG files import their neighbours
    bag = _dagbag(str(folder))
    if bag.import_errors:
        errors = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
        raise pytest.UsageError(f"DAG files in {folder} failed to import:\n{errors}")
    return bag


def _dagbag(folder: str) -> Any:
    """Airflow's DagBag where this Airflow keeps it (3.3: airflow.dag_processing; 3.1 and 3.2 also need the
    DAGs serialized in the database before dag.test())."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.dag_processing.bundles.manager import DagBundlesManager
        from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[attr-defined,no-redef]

        DagBundlesManager().sync_bundles_to_db()
        bag = DagBag(dag_folder=folder)
        sync_bag_to_db(bag, "dags-folder", None)
        return bag
    return DagBag(dag_folder=folder)


def as_logical_date(value: datetime | str | None) -> datetime | None:
    """``run_dag``'s ``logical_date``: a datetime, or an ISO 8601 string parsed with pendulum (UTC when it
    names no offset); anything else is refused naming the parameter, before dag.test() turns it into a
    database error."""
    if value is None or isinstance(value, datetime):
        return value
    example = "pendulum.datetime(2026, 11, 24, tz='UTC') or '2026-11-24T00:00:00+00:00'"
    if not isinstance(value, str):
        raise TypeError(f"run_dag(logical_date=...) takes a datetime or an ISO 8601 string, not {type(value).__name__} "
                        f"({value!r}): e.g. {example}")
    import pendulum

    try:
        parsed = pendulum.parse(value)
    except ValueError as exc:
        raise TypeError(f"run_dag(logical_date={value!r}): not an ISO 8601 date and time ({exc}); e.g. {example}") from None
    if not isinstance(parsed, datetime):  # a time of day or a duration ("12:00", "P1D")
        raise TypeError(f"run_dag(logical_date={value!r}) is a {type(parsed).__name__}, not a date and time; e.g. {example}")
    return parsed


@pytest.fixture
def run_dag(_parsed_dags: Any, sandbox_connections: dict[str, str]) -> Callable[..., Any]:
    """``run_dag(dag_id, logical_date=None, conf=None)``: the DagRun of one ``dag.test()`` run."""

    def run(dag_id: str, logical_date: datetime | str | None = None, conf: dict[str, Any] | None = None) -> Any:
        when = as_logical_date(logical_date)
        dag = _parsed_dags.get_dag(dag_id)
        if dag is None:
            known = ", ".join(sorted(_parsed_dags.dag_ids)) or "none"
            raise LookupError(f"no DAG {dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']} (found: {known})")
        return dag.test(run_conf=conf, **({} if when is None else {"logical_date": when}))

    return run
