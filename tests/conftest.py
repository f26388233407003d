"""Shared fixtures: paths to the real public data beside the repository, skipping when absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RGENIMA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$RGENIMA_SHARED_DATA``); skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA} (set RGENIMA_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A tiny synthetic cohort (12 participants), made once per test session."""
    from helpers import make_tiny_cohort

    return make_tiny_cohort(tmp_path_factory.mktemp("cohort") / "tiny", n_participants=12, seed=7)
