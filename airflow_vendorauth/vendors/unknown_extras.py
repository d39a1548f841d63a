"""Extras a connection type does not know: named, with the closest known name, never ignored in silence.

A misspelt extra used to be dropped without a word: ``"grant": "password"`` on an ``oauth2`` connection
ran the client credentials grant, as the application instead of the user. The known names come from the
type's declared fields and their aliases (the one description of a vendor), so a field added to a vendor
module is known here at once.

Two outcomes: a near-miss of a field that changes *what* the connection does (a field with choices, such
as ``grant_type`` or ``client_auth``, or a field required for this connection) while that field is not
given is refused, since running would act as someone else or fail later with a misleading message;
any other unknown key is reported (the hook logs it once per process and connection, Test shows it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import ExtraField

#: How alike a key and a field name must be (difflib's ratio) to be offered as "did you mean".
SIMILARITY = 0.6


@dataclass(frozen=True)
class UnknownExtra:
    """A key of the connection's extras that no field of its type reads, and the closest field name."""

    key: str
    closest: str | None

    def __str__(self) -> str:
        return f"{self.key} (did you mean {self.closest}?)" if self.closest else self.key


def known_names(fields: Iterable[ExtraField], conn_type: str) -> set[str]:
    """Every name under which a field of this type is read: its name, its aliases, the old form prefix."""
    names: set[str] = set()
    for spec in fields:
        names.update((spec.name, *spec.aliases, f"extra__{conn_type}__{spec.name}"))
    return names


def find_unknown(fields: tuple[ExtraField, ...], conn_type: str, extra: Mapping[str, Any]) -> tuple[UnknownExtra, ...]:
    """The keys with a value that no field reads, each with the closest field name (or None)."""
    known = known_names(fields, conn_type)
    candidates = [spec.name for spec in fields] + [alias for spec in fields for alias in spec.aliases]
    canonical = {alias: spec.name for spec in fields for alias in (spec.name, *spec.aliases)}
    found = []
    for key in sorted(str(k) for k in extra):
        if key in known or extra[key] in (None, ""):
            continue
        bare = key.removeprefix(f"extra__{conn_type}__")
        close = difflib.get_close_matches(bare.lower(), candidates, n=1, cutoff=SIMILARITY)
        found.append(UnknownExtra(key, canonical[close[0]] if close else None))
    return tuple(found)


def refuse_misleading(
    unknown: tuple[UnknownExtra, ...],
    fields: tuple[ExtraField, ...],
    values: Mapping[str, Any],
    given: set[str],
    display_name: str,
    fail: Callable[..., ConnectionConfigError],
) -> None:
    """Raise for a near-miss of an unset field that selects a mode (has choices) or is required now."""
    by_name = {spec.name: spec for spec in fields}
    for item in unknown:
        spec = by_name.get(item.closest or "")
        if spec is None or spec.name in given:
            continue
        if spec.choices:
            consequence = f"without it the connection would run with {spec.name}={values.get(spec.name)!r}"
        elif spec.is_required(values):
            consequence = f"{spec.name}, which this connection needs, is missing"
        else:
            continue
        raise fail(
            item.key,
            f"is not an extra of {display_name} connections; did you mean {spec.name} ({spec.label})? "
            f"{consequence[0].upper()}{consequence[1:]}",
            f"rename the extra {item.key} to {spec.name}",
        )


def describe(unknown: tuple[UnknownExtra, ...], display_name: str) -> str:
    """One sentence for the log and the Test button."""
    return f"extras that {display_name} connections do not know are ignored: {', '.join(map(str, unknown))}"
