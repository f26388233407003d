"""Checks of a run's inputs that need a domain package, done by the argument checks before any work.

Kept apart from the workflows that use them so that checking imports no report code (and with it
matplotlib) before ``environment.ensure_writable_caches`` has pointed the caches at writable places.
"""
from __future__ import annotations

from rgenima_app.config import RunConfig
from rgenima_app.errors import UsageError
from rgenima_app.models.bundle import read_bundle_metadata


def check_model(config: RunConfig) -> dict:
    """Refuse, before any work, a bundle that cannot serve this run (exit 2 / 66); returns its metadata."""
    try:
        metadata = read_bundle_metadata(config.model, expected_roi_size=config.roi_size)
    except UsageError as exc:
        size = read_bundle_metadata(config.model).get("rois", {}).get("size")
        raise UsageError(f"--roi-size {config.roi_size} differs from the ROI size {size} that the model "
                         f"--model {config.model} was trained with",
                         f"run with --roi-size {size} (patches must be extracted as in training)") from exc
    encoder = (metadata.get("image_encoder") or {}).get("kind")
    if encoder not in (None, "rit"):
        raise UsageError(f"--model {config.model} is a {encoder} baseline bundle; participant prediction and "
                         "attention need an R-GenIMA bundle with the ROI encoder (RiT)",
                         "give the bundle of the R-GenIMA model (models/<name>), not a baseline's")
    return metadata
