"""Round trip: model -> dict (and YAML text) -> validate -> model is the identity."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings

from reconciler.config import desired_from_data, load_text
from reconciler.model import Desired
from tests.strategies import desired_states


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states())
def test_dict_round_trip_is_identity(desired: Desired) -> None:
    assert desired_from_data(desired.to_dict()) == desired


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(desired_states())
def test_yaml_round_trip_is_identity_and_hash_stable(desired: Desired) -> None:
    text = yaml.safe_dump(desired.to_dict(), allow_unicode=True, sort_keys=False)
    again = load_text(text, "roundtrip.yaml")
    assert again == desired
    assert again.config_hash() == desired.config_hash()
