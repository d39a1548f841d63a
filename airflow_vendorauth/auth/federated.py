"""Client assertions read from a file (RFC 7523 client authentication with an externally issued JWT):
workload identity federation, as AKS, GKE, EKS and SPIFFE hand a pod a short-lived signed token.

The platform rotates the file on disk (AKS: every hour or so, well before the token's ``exp``), so the file
is read again for every token request, never cached. A file that cannot work (missing, unreadable, empty,
not a JWT, expired) is refused here, before any request is sent: the identity provider would only refuse
it with a vaguer message, and a refusal would be remembered for the connection. The token's claims are
decoded without verifying its signature (only the identity provider can, with the issuer's keys): we only
read ``exp``. Messages name the file and the fix, never the token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt

#: An assertion this close to its ``exp`` would expire on the way: refuse it as expired.
EXPIRY_MARGIN_SECONDS = 5


class AssertionFileError(ValueError):
    """The assertion file cannot be used: ``problem`` and ``fix`` in words, the file named, never its content."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"the assertion file {path} {problem}. Fix: {fix}")


@dataclass(frozen=True)
class AssertionFile:
    """Where the platform writes the workload's token. :meth:`read` returns its current content."""

    path: str

    def __repr__(self) -> str:
        return f"AssertionFile(path={self.path!r})"

    def read(self, now: float | None = None) -> str:
        """The assertion as the file holds it now, checked; :class:`AssertionFileError` says what is wrong."""
        path = Path(self.path)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise AssertionFileError(
                self.path,
                "does not exist",
                "check Assertion file (assertion_file); on AKS, label the pod azure.workload.identity/use=true and "
                "give it a service account annotated with the app's client id, so the webhook mounts the token",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = type(exc).__name__ if not isinstance(exc, OSError) else (exc.strerror or type(exc).__name__)
            raise AssertionFileError(
                self.path, f"cannot be read ({reason})", "let the task's user read it (the projected volume's mode)"
            ) from None
        if not text:
            raise AssertionFileError(
                self.path, "is empty", "wait for the platform to write the token, or check Assertion file (assertion_file)"
            )
        try:
            claims = jwt.decode(text, options={"verify_signature": False, "verify_exp": False, "verify_aud": False})
        except jwt.InvalidTokenError:
            raise AssertionFileError(
                self.path, "does not hold a JWT", "point Assertion file (assertion_file) at the projected service account token"
            ) from None
        exp = claims.get("exp")
        current = time.time() if now is None else now
        if isinstance(exp, int | float) and exp <= current + EXPIRY_MARGIN_SECONDS:
            ago = int(current - exp)
            raise AssertionFileError(
                self.path,
                (f"holds a token that expired {ago} s ago" if ago >= 0 else "holds a token about to expire")
                + " (identity providers refuse it: Entra ID with AADSTS700024, not within its valid time range)",
                "the platform stopped rotating it: check the pod's projected token volume (AKS: the workload identity "
                "webhook) or the process that writes the file",
            )
        return text
