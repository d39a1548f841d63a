"""An ``output_path`` checked before any request: absolute, in a folder the task can create and write.

A leading ``~`` is expanded to the home folder of the task's user (:func:`expand_home`), as a shell
would. A relative path is refused rather than resolved: it would land in the task process's working
directory, which differs per worker and per executor, and a retry on another worker would not find the
partial file. A parent that is a file, or a folder the task's user cannot write, is said with the task and
the path, before the scan spends a token, an API call or a Kazi scan.

Light at import: the operators' modules import it while the DAG processor parses a DAG file.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_vendorauth.exceptions import VendorAuthError


def expand_home(path: str) -> str:
    """``~/data/x.jsonl`` (or ``~user/...``) as the absolute path it means for the user running this
    process (the task's, at execute; the DAG processor's, for the Asset declared at parse time); any other
    path or URL as it is."""
    return os.path.expanduser(path) if path.startswith("~") else path


class OutputPathError(VendorAuthError, ValueError):
    """The task's ``output_path`` cannot be written; the message names the task, the path and the fix."""


def check_output_path(path: str, task_id: str) -> None:
    """Raise :class:`OutputPathError` when the task could not write its local ``output_path``."""
    from airflow_vendorauth.operators.output import is_remote

    if is_remote(path):
        return  # object storage: its own client reports its own errors
    local = Path(path.removeprefix("file://"))

    def fail(problem: str, fix: str) -> OutputPathError:
        return OutputPathError(f"Task {task_id!r}: output_path {path!r} {problem}. Fix: {fix}")

    if not local.is_absolute():
        raise fail(
            "is relative, and a task's working directory differs per worker",
            "give an absolute path, e.g. /data/{{ ds }}/records.jsonl, one under the task user's home "
            "(~/data/records.jsonl), or an object storage URL (s3://...)",
        )
    if local.is_dir():
        raise fail("is a folder", "name the file to write, e.g. " + str(local / "records.jsonl"))
    ancestor = local.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise fail(f"cannot be created: {str(ancestor)!r} is a file, not a folder", "choose a path under a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        user = _user()
        raise fail(
            f"cannot be written: the task's user ({user}) may not create files in {str(ancestor)!r}",
            f"choose a folder that user can write, or give it write permission on {str(ancestor)!r}",
        )


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "unknown"
