"""How a refresh chain that cannot go on is worded: lost (the server refused its newest token) or in doubt (a
token was presented and no answer says it was not spent). Both name where the chain was looked for and how
to re-seed it; :meth:`~airflow_vendorauth.auth.refresh_chain.RefreshChainKeeper.chain_error` puts the
connection first and redacts what the vendor said."""

from __future__ import annotations

import time

from airflow_vendorauth.auth.chain_copy import REFUSED, RefreshChain
from airflow_vendorauth.exceptions import TokenRequestError

RESEED = (
    "Fix: get a new refresh token from the authorization server and put it in Refresh token (refresh_token): a "
    "new seed starts a new chain; with more than one task process, set Token cache to Redis so they share it"
)


def _generation(chain: RefreshChain) -> str:
    return "the connection's seed" if chain.generation == 0 else f"rotation {chain.generation} of the chain"


def lost_why(error: TokenRequestError, spent: RefreshChain, where: str) -> str:
    """The server refused ``spent``, the newest copy found in ``where``."""
    said = ": ".join(p for p in (error.error, error.error_description) if p)
    return (
        f"the refresh token chain is lost: the server refused the newest refresh token found in {where} "
        f"({_generation(spent)}; {said}): it was spent by another process or revoked (a process died between the "
        "server's answer and storing the next token, another deployment uses the same seed, or the grant was "
        f"revoked). {RESEED}"
    )


def in_doubt_why(chain: RefreshChain, error: TokenRequestError | None = None) -> str:
    """``chain`` carries a pending mark: refused (said lost), or presented with no answer stored (in doubt);
    ``error`` is what this process's own spend got, when it was this process's."""
    pending = chain.pending
    assert pending is not None
    where = _generation(chain)
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(pending.since))
    if pending.state == REFUSED:
        return (
            f"the refresh token chain is lost: the server refused {where} when it was presented at {at}; it is "
            f"not presented again. {RESEED}"
        )
    what = (
        f"this process presented it and got no answer that says it was not spent ({error.summary})"
        if error is not None
        else "the process that presented it stored no answer (it ended, or its answer was lost)"
    )
    return (
        f"the refresh token chain is in doubt: {where} was presented to the token endpoint at {at} and {what}. "
        "The server has probably rotated it; presenting it again would be refused as reuse and may revoke the "
        f"grant (RFC 9700), so it is not presented again. {RESEED}; if the server accepts a spent refresh token "
        "again for a while (Auth0's reuse interval, Okta's grace period), set refresh_reuse_interval to those "
        "seconds and such a spend is retried within them"
    )
