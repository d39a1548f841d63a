"""One copy of a rotating refresh-token chain, and how copies are ordered.

A chain leaves copies behind: this process's memory, the shared cache, copies given back after Redis lost
its data. Each copy is a :class:`RefreshChain`: the newest refresh token known to its holder, its
generation (how many rotations made it; the connection's seed is 0), and, while a spend of it has no
settled answer, a :class:`Pending` mark (a write-ahead record of the spend: when it was presented, by
whom, and whether the server refused it). Copies are ordered by :func:`rank`: the higher generation wins,
and at one generation a pending copy wins over a plain one (it knows the token was presented), a refused
one over both.

One exception, :func:`outranks`: a spend known not to have reached the server is *settled* (its mark
removed), and the copy remembers whose spends were settled (``settled``). A copy still carrying such a
mark (taken by another process while the spend was out, and given back later) knows less, not more: it
never turns the settled generation back into pending, and a copy that knows of the settle replaces it.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from dataclasses import dataclass, field

#: ``Pending.state`` once the server refused the token (``invalid_grant``): spent or revoked, never again.
REFUSED = "refused"
#: ``Pending.state`` while the spend has no answer (in flight, or its answer was lost).
SENT = "sent"


@dataclass(frozen=True)
class Pending:
    """A spend of a refresh token with no settled answer: written before the token is presented and kept
    until the next generation is stored (success) or the spend is known not to have reached the server.

    While it stands, nobody presents the token again (a second use may revoke the grant, RFC 9700), except
    within the server's reuse interval after ``since``."""

    #: Wall-clock time (epoch seconds) of the first presentation, to the millisecond: the precision
    #: :meth:`encode` keeps, so a copy read back from a cache equals the spender's own. Settling compares
    #: marks for equality (only the spender's very mark is removed): at full precision in memory and to the
    #: millisecond in a file, the file's mark never matched, and a spend that never reached the server left
    #: the chain "in doubt" for good.
    since: float
    #: Who spent it: ``<pid>-<random>``, one per spend (the mark is settled only by its own spender).
    owner: str
    state: str = SENT

    @classmethod
    def new(cls) -> Pending:
        return cls(round(time.time(), 3), f"{os.getpid()}-{secrets.token_hex(4)}")

    def encode(self) -> str:
        return f"{self.since:.3f}:{self.owner}:{self.state}"

    @classmethod
    def decode(cls, text: str | bytes | None) -> Pending | None:
        if not text:
            return None
        if isinstance(text, bytes):
            text = text.decode()
        since, owner, state = text.split(":", 2)
        return cls(float(since), owner, state)


@dataclass(frozen=True, repr=False)
class RefreshChain:
    """The newest refresh token of a rotating chain and its generation (how many rotations made it).

    Generations order the copies a chain leaves behind: the highest one is the only token the server
    still takes. The connection's seed is generation 0.
    """

    refresh_token: str
    generation: int
    #: Read from a shared cache that had lost the chain and holds copies processes gave back since (no
    #: rotation stored it yet): a higher generation may still be on its way from another process.
    republished: bool = field(default=False, compare=False)
    #: A spend of this token with no settled answer (see :class:`Pending`).
    pending: Pending | None = None
    #: The owners of this generation's spends that were settled (did not reach the server): their marks,
    #: wherever a copy still carries them, are stale (:func:`outranks`).
    settled: tuple[str, ...] = field(default=(), compare=False)

    def __repr__(self) -> str:
        mark = f", pending={self.pending.state}" if self.pending else ""
        return f"RefreshChain(generation={self.generation}{mark}, refresh_token='***')"

    def marked(self, pending: Pending | None) -> RefreshChain:
        return dataclasses.replace(self, pending=pending, republished=False)

    def settle(self) -> RefreshChain:
        """This copy with its spend settled: no mark, and the mark's owner remembered as settled."""
        if self.pending is None:
            return self
        return dataclasses.replace(self, pending=None, settled=(*self.settled, self.pending.owner))

    def knowing(self, other: RefreshChain) -> RefreshChain:
        """This copy, with the settles ``other`` (a copy of the same generation) knows of too."""
        if other.generation != self.generation or not set(other.settled) - set(self.settled):
            return self
        return dataclasses.replace(self, settled=tuple(dict.fromkeys((*self.settled, *other.settled))))


def rank(chain: RefreshChain) -> tuple[int, int]:
    """The order of copies: generation first; at one generation a pending copy outranks a plain one, and a
    refused one outranks both (each knows more of what happened to the token)."""
    return (chain.generation, pending_level(chain.pending))


def pending_level(pending: Pending | None) -> int:
    """0 for no mark, 1 for a spend without an answer, 2 for a refusal (``_STORE_IF_NEWER`` in Redis agrees)."""
    return 0 if pending is None else 2 if pending.state == REFUSED else 1


def outranks(incoming: RefreshChain, held: RefreshChain) -> bool:
    """Whether ``incoming`` should replace ``held``: :func:`rank`, except at one generation a mark whose spend
    was settled (its owner in the other copy's ``settled``) ranks below the copy that knows it was
    (``_STORE_IF_NEWER`` in Redis agrees)."""
    if incoming.generation != held.generation:
        return incoming.generation > held.generation
    if incoming.pending is not None and incoming.pending.owner in held.settled:
        return False  # an older copy of a settled spend: it knows less
    if held.pending is not None and held.pending.owner in incoming.settled:
        return True
    return pending_level(incoming.pending) > pending_level(held.pending)


def newest(*chains: RefreshChain | None) -> RefreshChain | None:
    """The copy that :func:`outranks` the others among those known (None when none is); the first on a tie."""
    best: RefreshChain | None = None
    for chain in chains:
        if chain is not None and (best is None or outranks(chain, best)):
            best = chain
    return best
