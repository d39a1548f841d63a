"""Extras a connection type does not know: named, with the closest known name, never ignored in silence.

A misspelt extra used to be dropped without a word: ``"grant": "password"`` on an ``oauth2`` connection
ran the client credentials grant, as the application instead of the user; ``"DPoP": true`` (the RFC's
spelling) sent bearer tokens; ``"token_cahce": "redis://..."`` on a refresh-token connection kept the
chain in each process's memory, so every process spent the same refresh token. The known names come from
the type's declared fields and their aliases (the one description of a vendor), so a field added to a
vendor module is known here at once.

Three outcomes:

- refused, a spelling of a field that decides how credentials are sent or kept
  (:attr:`ExtraField.guards_credentials`: ``dpop``, ``cache``, ``client_auth``, ``grant_type``, ``scope``,
  ``resource``, ``audience``, ``tenant_id``, the certificate and key fields, every secret...): the same name
  but for case and separators (``DPoP``, ``grant-type``, ``clientAuth``), or one edit away (``token_cahce``,
  ``tennant_id``, ``scopes``; two for names of eight letters or more, from a key about as long). Refused even when the right field
  is also given, since which of the two is meant is a guess. A key that is a field of another connection
  type (``client_private_key`` on Kazi) is not taken for a spelling: it keeps the warning below;
- refused, a looser near-miss (difflib's ratio, :data:`SIMILARITY`) of an unset field that selects a mode
  (has choices: ``grant`` for ``grant_type``) or is required for this connection, since running would act
  as someone else or fail later with a misleading message;
- any other unknown key is reported (the hook logs it once per process and connection, Test shows it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_vendorauth.exceptions import ConnectionConfigError
from airflow_vendorauth.vendors.fields import ExtraField

#: How alike a key and a field name must be (difflib's ratio) to be offered as "did you mean".
SIMILARITY = 0.6
#: Names of at least this many letters (separators left out) allow two edits for a spelling of about their
#: length, shorter ones one.
LONG_NAME = 8


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


def _letters(name: str) -> str:
    """A name without case and separators: ``DPoP``, ``grant-type`` and ``Grant Type`` as written alike."""
    return re.sub(r"[\s_.-]", "", name.lower())


def _edits(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[len(b)]


def _allowed_edits(key: str, name: str) -> int:
    """One edit; two for a long name when the key is about as long (not a word inside it or around it:
    ``source`` is no spelling of ``resource``)."""
    return 2 if len(name) >= LONG_NAME and abs(len(key) - len(name)) <= 1 else 1


def spelling_of(key: str, fields: Iterable[ExtraField], conn_type: str) -> ExtraField | None:
    """The credential field ``key`` is a spelling of (see the module docstring), or None."""
    bare = _letters(key.removeprefix(f"extra__{conn_type}__"))
    best: tuple[int, ExtraField] | None = None
    for spec in fields:
        if not spec.guards_credentials:
            continue
        for name in (spec.name, *spec.aliases):
            target = _letters(name)
            edits = _edits(bare, target)
            if edits <= _allowed_edits(bare, target) and (best is None or edits < best[0]):
                best = (edits, spec)
    return best[1] if best else None


def _names_of_other_types(conn_type: str) -> set[str]:
    from airflow_vendorauth.vendors import VENDORS  # here: the vendor modules import this one

    return {
        n for t, p in VENDORS.items() if t != conn_type for spec in p.all_fields for n in (spec.name, *spec.aliases)
    }


def refuse_misleading(
    unknown: tuple[UnknownExtra, ...],
    fields: tuple[ExtraField, ...],
    values: Mapping[str, Any],
    given: set[str],
    display_name: str,
    conn_type: str,
    fail: Callable[..., ConnectionConfigError],
) -> None:
    """Raise for a spelling of a credential field, or a near-miss of an unset field that selects a mode
    (has choices) or is required now (see the module docstring)."""
    if not unknown:
        return
    by_name = {spec.name: spec for spec in fields}
    elsewhere = _names_of_other_types(conn_type)
    for item in unknown:
        spec = None if item.key in elsewhere else spelling_of(item.key, fields, conn_type)
        if spec is not None:
            if spec.name in given:
                raise _refusal(
                    item,
                    spec,
                    display_name,
                    fail,
                    f"it and {spec.name} are both set, and which one is meant is a guess",
                    f"remove the extra {item.key}, keeping {spec.name}",
                )
            raise _refusal(
                item, spec, display_name, fail, _without(spec, values), f"rename the extra {item.key} to {spec.name}"
            )
        spec = by_name.get(item.closest or "")
        if spec is None or spec.name in given:
            continue
        if spec.choices:
            consequence = f"without it the connection would run with {spec.name}={values.get(spec.name)!r}"
        elif spec.is_required(values):
            consequence = f"without it, {spec.name}, which this connection needs, is missing"
        else:
            continue
        raise _refusal(item, spec, display_name, fail, consequence, f"rename the extra {item.key} to {spec.name}")


def _without(spec: ExtraField, values: Mapping[str, Any]) -> str:
    """What running without ``spec`` would mean: it is not given, so its value is a default (no secret)."""
    if spec.is_required(values):
        return f"without it, {spec.name}, which this connection needs, is missing"
    value = values.get(spec.name)
    if value is None:
        return f"without it the connection would run without {spec.name}"
    return f"without it the connection would run with {spec.name}={value!r}"


def _refusal(
    item: UnknownExtra,
    spec: ExtraField,
    display_name: str,
    fail: Callable[..., ConnectionConfigError],
    consequence: str,
    fix: str,
) -> ConnectionConfigError:
    return fail(
        item.key,
        f"is not an extra of {display_name} connections; did you mean {spec.name} ({spec.label})? "
        f"{consequence[0].upper()}{consequence[1:]}",
        fix,
    )


def describe(unknown: tuple[UnknownExtra, ...], display_name: str) -> str:
    """One sentence for the log and the Test button."""
    return f"extras that {display_name} connections do not know are ignored: {', '.join(map(str, unknown))}"
