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
