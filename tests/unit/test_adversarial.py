"""Hostile billing.yaml input: each gets a clear, located error and nothing else happens."""

from __future__ import annotations

import pytest

from reconciler.config import load_text
from reconciler.errors import ConfigErrors

BASE = "version: 1\nmode: test\n"
PRODUCT = "products:\n  - id: prod_a\n    name: A\n"


def only_error(text: str) -> str:
    with pytest.raises(ConfigErrors) as caught:
        load_text(text, "evil.yaml")
    assert len(caught.value.errors) >= 1
    return str(caught.value.errors[0])


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            BASE + PRODUCT + "    metadata: {" + ", ".join(f"k{n}: v" for n in range(51)) + "}\n",
            "evil.yaml:6:15: products[0].metadata: has 51 keys; at most 50 allowed",
        ),
        (
            BASE + PRODUCT + f"    metadata: {{note: {'x' * 501}}}\n",
            "evil.yaml:6:22: products[0].metadata.note: must be at most 500 characters (is 501)",
        ),
        (
            BASE + f"products:\n  - id: prod_a\n    name: {'N' * 300}\n",
            "evil.yaml:5:11: products[0].name: must be at most 250 characters (is 300)",
        ),
        (
            BASE + "products:\n  - id: prod/../../etc\n    name: A\n",
            "evil.yaml:4:9: products[0].id: product ids are letters, digits, '_' and '-', "
            "at most 100 characters, not 'prod/../../etc'",
        ),
        (
            BASE + "meters:\n  - {event_name: video seconds, display_name: V, aggregation: sum}\n",
            "evil.yaml:4:18: meters[0].event_name: event names are letters, digits, '_', '.', ':' "
            "and '-', at most 100 characters, not 'video seconds'",
        ),
        (
            BASE + PRODUCT + f"prices:\n  - {{lookup_key: {'k' * 201}, product: prod_a, "
            "currency: usd, unit_amount: 1}\n",
            "evil.yaml:7:18: prices[0].lookup_key: must be at most 200 characters (is 201)",
        ),
        (
            BASE + PRODUCT + "prices:\n  - {lookup_key: k, product: prod_a, currency: usd, "
            "unit_amount: -1}\n",
            "evil.yaml:7:66: prices[0].unit_amount: must be at least 0, not -1",
        ),
        (
            BASE + PRODUCT + "prices:\n  - {lookup_key: k, product: prod_a, currency: usd, "
            'unit_amount_decimal: "1e5"}\n',
            "evil.yaml:7:74: prices[0].unit_amount_decimal: must be a quoted decimal string "
            "such as \"0.35\" (a YAML number would lose precision), not '1e5'",
        ),
        (
            BASE + 'products:\n  - id: prod_a\n    name: "A\\u202eB\\u0000"\n',
            "evil.yaml:5:11: products[0].name: contains control characters "
            "(tabs, newlines or other invisibles)",
        ),
    ],
    ids=[
        "51-metadata-keys",
        "501-char-value",
        "300-char-name",
        "path-like-id",
        "event-name-with-space",
        "201-char-lookup-key",
        "negative-amount",
        "exponent-decimal",
        "nul-in-name",
    ],
)
def test_hostile_input_is_refused_with_its_place(document: str, expected: str) -> None:
    assert only_error(document) == expected
