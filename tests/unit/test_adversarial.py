"""Hostile input: each gets a clear, located error and nothing else happens; keys never show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reconciler import github, yamlsource
from reconciler.config import load_text
from reconciler.errors import ConfigErrors, ReconcileError
from reconciler.gateway import Gateway
from reconciler.inputs import InputError, parse_json, read_text
from reconciler.redaction import clean_secret, redact

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


# --- the YAML reader's own bounds, on both parsers ----------------------------------------


@pytest.fixture(params=["libyaml", "pure-python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each YAML case runs on libyaml's parser (when PyYAML has it) and on PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.setattr(yamlsource, "_LOADER", yaml.SafeLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    return str(request.param)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            BASE + "products: " + "[" * 100_000 + "]" * 100_000,
            "evil.yaml:3:75: products" + "[0]" * 64 + ": document nests deeper than 64 levels",
        ),
        (
            BASE + "products:\n" + "- " * 5_000 + "x\n",
            "evil.yaml:4:129: products" + "[0]" * 64 + ": document nests deeper than 64 levels",
        ),
        (
            BASE + "products: !!python/object/apply:os.system {args: [id]}\n",
            "evil.yaml:3:11: products: the tag !!python/object/apply:os.system is not allowed",
        ),
        (
            BASE + "products: !!set {a: null}\n",
            "evil.yaml:3:11: products: the tag !!set is not allowed",
        ),
        (
            BASE + "products: !!map [a]\n",
            "evil.yaml:3:11: products: the tag !!map is not allowed",
        ),
        (BASE + "products:\n  - !!timestamp 2026-01-01\n", "the tag !!timestamp is not allowed"),
        (BASE + "products: [*nowhere]\n", "evil.yaml:3:12: products[0]: alias *nowhere has no"),
        (
            BASE + "products:\n  - metadata:\n      ? " + "9" * 3000 + "\n      : v\n",
            "products[0].metadata: a whole number of 3000 digits is too large",
        ),
        (
            BASE + PRODUCT + "prices:\n  - lookup_key: k\n    product: prod_a\n    currency: usd"
            "\n    unit_amount: 9_223_372_036_854_775_808\n",
            "evil.yaml:10:18: prices[0].unit_amount: 9223372036854775808 is too large",
        ),
    ],
    ids=[
        "100000-flow",
        "5000-block",
        "apply-tag-on-mapping",
        "set-tag",
        "map-tag-on-list",
        "timestamp-tag",
        "undefined-alias",
        "3000-digit-key",
        "just-past-int64",
    ],
)
def test_the_reader_refuses_before_composing(parser: str, document: str, expected: str) -> None:
    message = only_error(document)
    if parser == "libyaml" and "[" * 1000 in document:
        assert "nests deeper than 64 levels" in message  # libyaml stops at its own 1,000
    else:
        assert expected in message


def test_largest_int64_and_core_tags_are_plain_data(parser: str) -> None:
    message = only_error(
        BASE + PRODUCT + "prices:\n  - {lookup_key: !!str 12, product: prod_a, currency: usd, "
        "unit_amount: 9223372036854775807}\n"
    )
    assert message == (
        "evil.yaml:7:73: prices[0].unit_amount: must be at most 99999999, not 9223372036854775807"
    )


# --- plan files: JSON bounded before json.loads -------------------------------------------


def test_json_depth_is_measured_outside_strings() -> None:
    inside = '"' + "[" * 10_000 + '\\"{' + '"'
    assert parse_json(f'{{"a": {inside}, "b": [[1]]}}', "p.json") == {
        "a": "[" * 10_000 + '"{',
        "b": [[1]],
    }
    assert parse_json("[" * 64 + "]" * 64, "p.json") is not None
    with pytest.raises(InputError, match=r"^p.json:1:65: nests deeper than 64 levels"):
        parse_json("[" * 65 + "]" * 65, "p.json")
    with pytest.raises(InputError, match=r"^p.json:2:64: nests deeper"):
        parse_json('["\\\\",\n' + "[" * 100_000, "p.json")


def test_json_integers_stay_within_int64() -> None:
    assert parse_json("[-9223372036854775807]", "p.json") == [-(2**63 - 1)]
    with pytest.raises(InputError, match=r"^p.json:1:16: 9223372036854775808 is too large"):
        parse_json('{"x": "1", "y":9223372036854775808}', "p.json")
    with pytest.raises(InputError, match="a whole number of 5000 digits"):
        parse_json("[" + "1" * 5000 + "]", "p.json")
    assert parse_json("[1e999999, 0.1]", "p.json") == [float("inf"), 0.1]


def test_the_reader_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path, kind in [
        (fifo, "is a named pipe (FIFO), not a regular file"),
        (Path("/dev/zero"), "is a character device, not a regular file"),
        (tmp_path, "is a directory, not a file"),
    ]:
        with pytest.raises(InputError) as caught:
            read_text(path, limit=10)
        assert str(caught.value) == f"{path}: {kind}"


def test_the_reader_reads_at_most_the_limit(tmp_path: Path) -> None:
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"x" * 11)
    assert read_text(exact, limit=11) == "x" * 11
    with pytest.raises(InputError, match="file is 11 bytes; it is limited to 10 bytes"):
        read_text(exact, limit=10)
    claims_empty = Path("/proc/self/status")  # size 0 on stat, a kilobyte on reading
    if claims_empty.exists():
        assert claims_empty.stat().st_size == 0
        with pytest.raises(InputError, match="file is more than 100 bytes"):
            read_text(claims_empty, limit=100)


# --- keys -----------------------------------------------------------------------------------

INNER = "sk_test_inner\nline_secret_0123456789"


def test_keys_are_stripped_and_refused_by_prefix_only() -> None:
    assert clean_secret("K", " sk_test_pasted_crlf_0123456789\r\n") == (
        "sk_test_pasted_crlf_0123456789"
    )
    for bad in (INNER, "sk_live_a\x00b_0000", "rk_test_é_0000", "whsec_a b"):
        with pytest.raises(ReconcileError) as caught:
            clean_secret("STRIPE_API_KEY", bad)
        message = str(caught.value)
        assert message.startswith(f"STRIPE_API_KEY ({bad[: bad.index('_', 3) + 1]}…) holds")
        assert bad.split()[0] not in message


@pytest.mark.parametrize(
    "text",
    [
        "Invalid header value: 'Bearer sk_test_pasted_newline_0123456789\\n'",
        "Invalid header value b'Bearer ghp_pastedtokenwithnewline0123456789\\r\\n'",
        "key=rk_live_restricted_abcdef123456, hook=whsec_abc123DEF, pub=pk_live_abc",
        "token github_pat_11ABCDEFG_abcdef and gho_abcdef0123 and ghs_0123456789",
        "authorization: BEARER anything-at-all",
    ],
)
def test_redaction_is_by_pattern(text: str) -> None:
    redacted = redact(text)
    assert "[redacted]" in redacted
    for word in ("pasted", "restricted", "abc123", "ABCDEFG", "abcdef0123", "anything"):
        assert word not in redacted


def test_redaction_leaves_masked_keys_and_ids_alone() -> None:
    text = "Invalid API Key provided: sk_live_****9876 for task_sk_1 in prod_a"
    assert redact(text) == text


def test_gateway_strips_a_pasted_key_and_refuses_an_inner_break() -> None:
    gateway = Gateway.from_env({"STRIPE_API_KEY": "sk_test_pasted_newline_0123456789\n"})
    assert gateway.mode == "test"
    with pytest.raises(ReconcileError, match=r"^STRIPE_API_KEY \(sk_test_…\) holds"):
        Gateway.from_env({"STRIPE_API_KEY": INNER})


def test_gateway_redacts_whatever_the_sdk_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway("sk_test_pasted_newline_0123456789", max_retries=0)

    def explode(*args: object, **kwargs: object) -> None:
        raise ValueError("Invalid header value: 'Bearer sk_test_pasted_newline_0123456789\\n'")

    monkeypatch.setattr(gateway._client, "raw_request", explode)
    with pytest.raises(ReconcileError) as caught:
        gateway.get("/v1/products")
    assert str(caught.value) == (
        "GET /v1/products: ValueError: Invalid header value: 'Bearer [redacted]"
    )


def test_github_transport_never_shows_the_token() -> None:
    send = github._urllib_transport("http://127.0.0.1:9", "ghp_pastedtokenwithnewline0123456789\n")
    with pytest.raises(ReconcileError) as caught:
        send("GET", "/repos/o/r/issues/1/comments", None)
    assert "ghp_pastedtoken" not in str(caught.value)
    assert str(caught.value).startswith("GitHub GET /repos/o/r/issues/1/comments: ")
    with pytest.raises(ReconcileError, match=r"^GITHUB_TOKEN \(ghp_…\) holds"):
        github.GitHub.from_env({"GITHUB_TOKEN": "ghp_inner\ttoken_secret_0123456789"})
