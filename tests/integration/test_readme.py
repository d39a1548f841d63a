"""Docs that cannot rot: every README block marked runnable (``<!-- readme-test: KIND -->``) runs as
printed, in a fresh temporary project with no ``AIRFLOW_*`` variable, against the real sandbox
(tests/readme.py finds them; ``fragment`` blocks are checked without running, in
tests/unit/test_readme_lists.py, and every python, bash and JSON block is one or the other).

- the pytest example and every DAG of the README (``conftest``, ``dag`` and ``test`` blocks: the hook
  DAG, the operator, the HTTP bridge, the lineage consumer): ``pytest`` in a new folder, with nothing set
  up by hand: the plugin migrates its own Airflow home and runs each DAG through ``dag.test()``; a DAG
  without a README test of its own must succeed. ``VENDORAUTH_DATA_DIR`` (where the DAGs write, as the
  README's "Pointing the DAGs" says) is a folder of the test's;
- the ``AIRFLOW_CONN_*`` examples: run by bash, each connection read by Airflow and validated by its
  hook (placeholders such as ``<client id>`` are valid text; no request is made);
- the command lines: ``airflow connections add`` / ``test`` against the sandbox, and the sandbox's own.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_vendorauth.sandbox.client import Sandbox
from airflow_vendorauth.sandbox.connections import sandbox_connections
from tests.readme import ROOT, Block, blocks

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def scrubbed_env(home: Path, **extra: str) -> dict[str, str]:
    """A newcomer's shell: no AIRFLOW_* variable, a HOME of its own, this checkout importable."""
    env = {
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT),
        **({"CI": os.environ["CI"]} if "CI" in os.environ else {}),
        **extra,
    }
    assert not [name for name in env if name.startswith("AIRFLOW")]
    return env


def file_name(block: Block, default: str) -> str:
    """The path a block names in its first line (``# dags/x.py``), else ``default``."""
    first = block.body.splitlines()[0]
    match = re.fullmatch(r"#\s*([\w./-]+\.py)\s*", first)
    return match[1] if match else default


def dag_ids(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("dag" in ast.unparse(d).split("(")[0].split(".")[-1:] for d in node.decorator_list)
    ]


@pytest.mark.timeout(600)  # a pytest session of its own runs every README DAG: its own wait allows 9 min
def test_the_pytest_example_and_every_readme_dag_pass_in_a_fresh_project(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    (project / "dags").mkdir(parents=True)
    (project / "tests").mkdir()
    (conftest,) = blocks(kind="conftest")
    (project / file_name(conftest, "conftest.py")).write_text(conftest.body)
    tested: set[str] = set()
    for number, test in enumerate(blocks(kind="test")):
        (project / file_name(test, f"tests/test_readme_{number}.py")).write_text(test.body)
        tested |= set(re.findall(r"run_dag\(\"(\w+)\"", test.body))
    untested = []
    for number, dag in enumerate(blocks(kind="dag")):
        (project / file_name(dag, f"dags/readme_dag_{number}.py")).write_text(dag.body)
        untested += [dag_id for dag_id in dag_ids(dag.body) if dag_id not in tested]
    assert tested, "the README's test runs no DAG"
    # a DAG block without a README test of its own (the hook DAG, the operator, the lineage consumer) is run
    # the same way
    (project / "tests" / "test_readme_dags.py").write_text(
        "".join(
            f'\n\ndef test_{dag_id}(run_dag):\n    assert run_dag("{dag_id}").state == "success"\n' for dag_id in untested
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        cwd=project,
        env=scrubbed_env(home, VENDORAUTH_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=540,
    )
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    assert f"{len(tested) + len(untested)} passed" in done.stdout, output
    assert not (home / "airflow").exists(), "the plugin let Airflow use the user's ~/airflow"
    written = sorted(path.name for path in (tmp_path / "data").glob("*/*.jsonl"))
    assert written == ["jobs.jsonl"], f"the operator's output, under VENDORAUTH_DATA_DIR: {written}"


def connections_of(block: Block, workdir: Path) -> dict[str, str]:
    """The AIRFLOW_CONN_* variables a block of exports sets, run by bash as a user would paste it."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.body + "\nenv -0"],
        cwd=workdir,
        env=scrubbed_env(workdir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{block.name}: {done.stderr}"
    pairs = (entry.partition("=") for entry in done.stdout.split("\0") if entry)
    return {name: value for name, _, value in pairs if name.startswith("AIRFLOW_CONN_")}


@pytest.mark.parametrize("block", blocks(kind="connections"), ids=lambda b: b.name)
def test_each_connection_example_is_a_valid_connection_with_only_known_extras(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_vendorauth.hooks.base import hook_for_connection

    found = connections_of(block, tmp_path)
    assert found, f"{block.name} sets no AIRFLOW_CONN_* variable"
    for name, value in found.items():
        monkeypatch.setenv(name, value)
        conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
        settings = hook_for_connection(conn_id).settings  # read by Airflow, validated by the hook's profile
        assert settings.conn_id == conn_id
        assert settings.unknown_extras is None, f"{block.name} {conn_id}: {settings.unknown_extras}"


@pytest.mark.timeout(660)  # two shells of Airflow commands, 5 min each at most
def test_the_cli_first_steps_add_and_test_a_connection_against_the_sandbox(
    tmp_path: Path, vendor_sandbox: Sandbox
) -> None:
    (block,) = blocks(kind="cli")
    airflow_home = tmp_path / "airflow-home"
    env = scrubbed_env(tmp_path, SANDBOX_URL=vendor_sandbox.url)
    # the newcomer's shell has its own AIRFLOW_HOME (here a new one): set as the block's first line would be
    script = f"export AIRFLOW_HOME={airflow_home}\n{block.body}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Connection success!" in output, output[-4000:]
    # what Test found reaches the terminal, before the verdict (the README says so under the block)
    said = done.stdout.split("Testing...")[-1].split("Connection success!")[0]
    assert "Clazar token obtained, valid for" in said, output[-4000:]
    # without AIRFLOW__CORE__TEST_CONNECTION the README's warning holds: Airflow refuses the test
    without = script.replace("export AIRFLOW__CORE__TEST_CONNECTION=Enabled", "true")
    refused = subprocess.run(
        ["bash", "-c", without.replace("airflow db migrate", "true").replace("airflow connections add", "true")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = refused.stdout + refused.stderr
    assert "Connection success!" not in said and "disabled" in said.lower(), said[-2000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_sandbox_command_prints_every_connection_on_a_free_port(tmp_path: Path) -> None:
    (block,) = blocks(kind="sandbox")
    process = subprocess.Popen(
        ["bash", "-c", block.body],
        cwd=tmp_path,
        env=scrubbed_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line or line.startswith("SANDBOX_URL="):
                printed.append(line)
                break
            printed.append(line)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    url = printed[-1].removeprefix("SANDBOX_URL=").strip()
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":8080"), printed
    exported = [re.match(r"export AIRFLOW_CONN_(\w+)=", line) for line in printed]
    assert [m[1].lower() for m in exported if m] == list(sandbox_connections(url))
    first = next(line for line in printed if line.startswith("export AIRFLOW_CONN_KAZI_DEFAULT="))
    assert json.loads(subprocess.check_output(["bash", "-c", f"{first.strip()}; printf %s \"$AIRFLOW_CONN_KAZI_DEFAULT\""]))


def test_a_busy_port_gets_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(BIN / "airflow-vendorauth-sandbox"), "--port", str(port)],
            env=scrubbed_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert done.stderr.strip() == textwrap.dedent(
        f"airflow-vendorauth-sandbox: port {port} on 127.0.0.1 is in use; pick another with --port N, "
        "or leave --port out for a free one"
    )
    assert "Traceback" not in done.stderr
