"""Write a billing.yaml from an account: the starting point for managing it as code.

Pure: Stripe's objects in, YAML text out. The text validates and, planned
against the same account, shows no changes, except prices without a lookup
key: each gets one proposed (with its ``id``), which the next plan shows as an
update. What the language cannot express is listed in comments, never
guessed: legacy usage-record prices (move them with ``migrations:``) and
prices with features billing.yaml does not manage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.kinds.base import ImportContext
from reconciler.kinds.registry import IMPORT_ORDER, REGISTRY

__all__ = ["ImportResult", "import_account"]

HEADER = """\
# yaml-language-server: $schema=billing.schema.json
# (write the schema beside this file: stripe-reconcile schema > billing.schema.json)
#
# Written by `stripe-reconcile import` from the account. Review it, then commit.
"""


@dataclass
class ImportResult:
    """The billing.yaml text and what could not go into it."""

    text: str
    proposed_lookup_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def import_account(*, mode: str, **listed: Iterable[Mapping[str, Any]]) -> ImportResult:
    """billing.yaml text for the objects of an account, listed by kind (``products=``,
    ``meters=`` ...: each spec's section): archived prices with a lookup key,
    deactivated meters and alerts, and the archived products they need, as ``active:
    false`` (an archived price without a lookup key is left out: nothing can name it)."""
    unknown = set(listed) - {spec.section for spec in REGISTRY}
    if unknown:
        raise TypeError(f"no kind is listed as {', '.join(sorted(unknown))}")
    context = ImportContext({spec.kind: list(listed.get(spec.section, ())) for spec in REGISTRY})
    for spec in REGISTRY:
        spec.prepare_import(context)
    entries = {spec.kind: spec.import_entries(context) for spec in IMPORT_ORDER}
    result = ImportResult(
        text="", proposed_lookup_keys=context.proposed_lookup_keys, skipped=context.skipped
    )
    document: dict[str, Any] = {"version": 1, "mode": mode}
    for spec in REGISTRY:
        if entries[spec.kind]:
            document[spec.section] = entries[spec.kind]
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    notes = ""
    if result.skipped:
        notes = "\n# Not imported (billing.yaml does not manage these):\n" + "".join(
            f"#   - {line}\n" for line in result.skipped
        )
        if any(line.startswith("legacy") for line in result.skipped):
            notes += (
                "#\n# A migration moves subscriptions off a legacy price, for example:\n"
                "# migrations:\n#   to-meters:\n#     from_price: <legacy lookup key or id>\n"
                "#     to_price: <a metered price above>\n#     switch_at: period_end\n"
            )
    result.text = HEADER + "\n" + body + notes
    return result
