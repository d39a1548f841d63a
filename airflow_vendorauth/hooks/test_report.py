"""What Test found, shown to a user of ``airflow connections test`` as well as to the UI.

On success Airflow's CLI prints only "Connection success!" and drops the hook's message; it also turns
logging off for the command unless ``--verbose`` is given. The message is where Test says what it
checked and what it noticed: extras the type does not know (a misspelt ``scopes``), a refresh token it
did not spend and why. The UI and the REST API show it; the CLI user would never see it. So when the
hook is tested by the CLI, its message is printed, plainly (``print``, not Rich: a ``[redis]`` in a fix
stays as written), between the CLI's "Testing..." and its verdict. A failure's message is printed by
the CLI itself, through Rich markup: under the CLI it is returned escaped (``rich.markup.escape``), so a
bracketed word in it (``[core] fernet_key``, a vendor's own ``[...]``) prints as written instead of
vanishing as an unknown style tag. The UI and the REST API get it unchanged.

The CLI is recognised by its own frame on the call stack (``connections_test`` of Airflow's
``airflow.cli.commands.connection_command``), not by ``sys.argv``: that holds however the CLI was
started (``airflow``, ``python -m airflow``, a wrapper script) and never in the api-server, a worker
or a test calling ``test_connection()``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

_CLI_MODULE = "airflow.cli.commands.connection_command"
_CLI_FUNCTION = "connections_test"

H = TypeVar("H")


def under_cli_test(frame: FrameType | None = None) -> bool:
    """True when ``airflow connections test`` is on the call stack (from ``frame``, else the caller's)."""
    frame = frame or sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == _CLI_FUNCTION and frame.f_globals.get("__name__") == _CLI_MODULE:
            return True
        frame = frame.f_back
    return False


def shown_on_the_cli(test: Callable[[H], tuple[bool, str]]) -> Callable[[H], tuple[bool, str]]:
    """Wrap a hook's ``test_connection`` so that, under the CLI, a success's message is printed too and a
    failure's survives the CLI's Rich markup."""

    @functools.wraps(test)
    def reported(hook: H) -> tuple[bool, str]:
        ok, message = test(hook)
        if not under_cli_test():
            return ok, message
        if ok:
            print(f"\n{message}", flush=True)
            return ok, message
        from rich.markup import escape  # Airflow's CLI prints with Rich: it is there whenever the CLI is

        return ok, escape(message)

    return reported
