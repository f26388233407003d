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
    from rgenima_app.synthetic import DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters, generate_cohort

    out = tmp_path_factory.mktemp("cohort") / "tiny"
    spec = PRESETS["tiny"]
    params = GeneratorParameters(preset="tiny", seed=7, n_participants=12, sessions=1, grid=spec["grid"],
                                 voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                                 planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    generate_cohort(out, params, progress=False)
    return out
