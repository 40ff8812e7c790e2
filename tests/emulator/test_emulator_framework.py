"""Unit tests of the emulator's building blocks (no server)."""

from __future__ import annotations

import pytest
import stripe

from reconciler.emulator import (
    BASIL,
    DEFAULT_API_VERSION,
    LAST_LEGACY_USAGE_VERSION,
    ApiError,
    FaultPlan,
    check_host,
    has_legacy_usage_billing,
    version_at_least,
)
from reconciler.emulator.app import mask_key
from reconciler.emulator.encoding import decode_form
from reconciler.emulator.params import coerce_params, schema_for
from reconciler.emulator.resources import build_registry


def test_form_decoding_nests_brackets_and_lists() -> None:
    decoded = decode_form(
        "a[b][0][c]=v&expand[]=x&expand[]=y&lookup_keys[]=k&metadata[key]=&plain=1"
    )
    assert decoded == {
        "a": {"b": {"0": {"c": "v"}}},
        "expand": ["x", "y"],
        "lookup_keys": ["k"],
        "metadata": {"key": ""},
        "plain": "1",
    }


def test_form_decoding_refuses_malformed_names() -> None:
    with pytest.raises(ApiError) as caught:
        decode_form("a]b[=1")
    assert caught.value.status == 400


def test_price_schema_comes_from_the_sdk_typeddict() -> None:
    schema = schema_for("PriceCreateParams")
    sdk = stripe.params.PriceCreateParams
    request_options = set(stripe.RequestOptions.__annotations__)
    assert set(schema.fields) == set(sdk.__required_keys__ | sdk.__optional_keys__) - (
        request_options
    )
    assert schema.required == frozenset({"currency"})
    update = schema_for("PriceUpdateParams")
    assert "unit_amount" not in update.fields
    assert "lookup_key" in update.fields


def test_coercion_types_values_and_unsets_empty_strings() -> None:
    schema = schema_for("PriceCreateParams")
    raw = decode_form(
        "currency=usd&active=false&unit_amount=12&nickname=&billing_scheme=tiered"
        "&tiers[0][up_to]=10&tiers[0][unit_amount_decimal]=0.50&tiers[1][up_to]=inf"
        "&tiers[1][flat_amount]=3&recurring[interval]=month&recurring[interval_count]=2"
    )
    params = coerce_params(schema, raw)
    assert params["active"] is False
    assert params["unit_amount"] == 12
    assert params["nickname"] is None
    assert params["tiers"] == [
        {"up_to": 10, "unit_amount_decimal": "0.5"},
        {"up_to": "inf", "flat_amount": 3},
    ]
    assert params["recurring"] == {"interval": "month", "interval_count": 2}


@pytest.mark.parametrize(
    ("query", "code", "param"),
    [
        ("currency=usd&foo=1", "parameter_unknown", "foo"),
        (
            "currency=usd&recurring[interval]=month&recurring[bar]=1",
            "parameter_unknown",
            "recurring[bar]",
        ),
        ("unit_amount=5", "parameter_missing", "currency"),
        ("currency=usd&recurring[usage_type]=metered", "parameter_missing", "recurring[interval]"),
        ("currency=usd&unit_amount=abc", "parameter_invalid_integer", "unit_amount"),
    ],
)
def test_coercion_refusals_name_the_parameter(query: str, code: str, param: str) -> None:
    with pytest.raises(ApiError) as caught:
        coerce_params(schema_for("PriceCreateParams"), decode_form(query))
    body = caught.value.body()["error"]
    assert (body["code"], body["param"], caught.value.status) == (code, param, 400)


def test_literal_choices_are_enforced() -> None:
    with pytest.raises(ApiError) as caught:
        coerce_params(schema_for("PriceCreateParams"), decode_form("currency=usd&tiers_mode=x"))
    assert caught.value.param == "tiers_mode"


def test_version_gate() -> None:
    assert stripe.api_version == DEFAULT_API_VERSION
    assert has_legacy_usage_billing(LAST_LEGACY_USAGE_VERSION)
    assert has_legacy_usage_billing("2024-06-20")
    assert not has_legacy_usage_billing(BASIL)
    assert not has_legacy_usage_billing(DEFAULT_API_VERSION)
    assert version_at_least("2025-09-30.clover", BASIL)
    assert not version_at_least("2025-02-24.acacia", BASIL)
    with pytest.raises(ApiError):
        has_legacy_usage_billing("not-a-version")


def test_fault_plan_grammar_and_determinism() -> None:
    plan = FaultPlan.parse("seed=7,500=0.05,429=0.05,reset=0.02,latency=0.1:0.2,lost=0.05")
    assert plan.seed == 7
    assert plan.probabilities == {"500": 0.05, "429": 0.05, "reset": 0.02, "lost": 0.05}
    assert (plan.latency_probability, plan.latency_seconds) == (0.1, 0.2)
    first = [FaultPlan.parse("seed=3,500=0.3,lost=0.3,latency=0.5:0.01").decide() for _ in "x"]
    again = FaultPlan.parse("seed=3,500=0.3,lost=0.3,latency=0.5:0.01")
    sequence = [again.decide() for _ in range(200)]
    replay = FaultPlan.parse("seed=3,500=0.3,lost=0.3,latency=0.5:0.01")
    assert [replay.decide() for _ in range(200)] == sequence
    assert sequence[0] == first[0]
    kinds = {fault.kind for fault in sequence}
    assert kinds == {None, "500", "lost"}
    assert {fault.delay for fault in sequence} == {0.0, 0.01}


@pytest.mark.parametrize(
    "spec", ["500=2", "boom=0.1", "500", "500=0.6,429=0.6", "latency=x:1", "seed=abc"]
)
def test_fault_plan_refuses_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        FaultPlan.parse(spec)


def test_host_check_allows_loopback_only_by_default() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        check_host(host)
    with pytest.raises(ValueError, match="allow_remote"):
        check_host("0.0.0.0")
    with pytest.raises(ValueError, match="allow_remote"):
        check_host("192.168.1.5")
    check_host("0.0.0.0", allow_remote=True)


def test_key_masking_never_shows_the_whole_key() -> None:
    key = "sk_live_51Habcdefghijklmnop1234"
    masked = mask_key(key)
    assert masked == "sk_live_****1234"
    assert key not in masked
    assert mask_key("short") == "****"


def test_every_route_has_a_unique_key_and_a_resolvable_schema() -> None:
    registry = build_registry()
    keys = [route.key for route in registry.routes]
    assert len(keys) == len(set(keys))
    for route in registry.routes:
        assert route.schema(DEFAULT_API_VERSION).fields is not None
