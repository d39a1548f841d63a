"""`[core] hostname_callable` for the local cluster: each Celery worker gets a name of its own
(VENDORAUTH_WORKER_NAME), although both run on this one machine."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("VENDORAUTH_WORKER_NAME") or socket.getfqdn()
