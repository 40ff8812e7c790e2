"""Shared test helpers: where the repository and its test data live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


@pytest.fixture
def repo_root() -> Path:
    return REPO
