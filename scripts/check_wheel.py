"""`make package`: the built wheel installs alone and registers with Airflow.

A fresh virtualenv gets the wheel (no extras, no dev tools); there, `airflow providers list` must name
the provider and its modules must import.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def main(dist: str) -> None:
    (wheel,) = Path(dist).glob("airflow_vendorauth-*.whl")
    with tempfile.TemporaryDirectory(prefix="vendorauth-wheel-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, str(wheel)], check=True)
        env = {"AIRFLOW_HOME": folder, "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        listed = subprocess.run(
            [str(venv / "bin" / "airflow"), "providers", "list"], env=env, capture_output=True, text=True, check=True
        ).stdout
        if "airflow-vendorauth" not in listed:
            raise SystemExit(f"`airflow providers list` does not show airflow-vendorauth:\n{listed}")
        probe = "import airflow_vendorauth.hooks.oauth2, airflow_vendorauth.operators.api, airflow_vendorauth.http"
        subprocess.run([str(venv / "bin" / "python"), "-c", probe], env=env, check=True)
        print(f"{wheel.name}: installs alone (no extras), `airflow providers list` shows it, its modules import")


if __name__ == "__main__":
    main(sys.argv[1])
