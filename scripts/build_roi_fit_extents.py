"""Regenerate rgenima_app/data/roi_fit_extents.tsv: the physical grid edge (mm) per ROI for ``mode="fit"``.

The edge of ROI r is the largest bounding-box side (mm) of r over the real FreeSurfer subjects in
``<shared data>/freesurfer`` (8 FreeSurfer 6 subjects and FreeSurfer 7 "bert"), times a margin
(1.5 for ventricles, which enlarge with atrophy; 1.25 otherwise), rounded up to an even number of mm.
The same edge is used for every subject, so an ROI's size in its patch reflects its physical size.

    python scripts/build_roi_fit_extents.py [SHARED_DATA_DIR (default $RGENIMA_SHARED_DATA or ../shared/data)] [OUTPUT_TSV]
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rgenima_app.imaging.roi_table import load_roi_table  # noqa: E402
from rgenima_app.imaging.rois import roi_boxes  # noqa: E402
from rgenima_app.imaging.volumes import load_image, roi_index_array  # noqa: E402

MARGIN = {"ventricle": 1.5}
DEFAULT_MARGIN = 1.25


def main(shared: Path, output: Path) -> None:
    segs = sorted((shared / "freesurfer").glob("*/*/mri/aparc+aseg.mgz"))
    if not segs:
        raise SystemExit(f"no FreeSurfer subjects under {shared / 'freesurfer'}")
    table = load_roi_table()
    largest = np.zeros(len(table))
    for path in segs:
        image, data = load_image(path, "segmentation")
        zooms = np.asarray(image.header.get_zooms()[:3], dtype=float)
        for i, box in enumerate(roi_boxes(roi_index_array(data, str(path)))):
            if box is not None:
                sides = np.array([s.stop - s.start for s in box]) * zooms
                largest[i] = max(largest[i], sides.max())
    margin = table["kind"].map(MARGIN).fillna(DEFAULT_MARGIN).to_numpy()
    table["extent_mm"] = [2 * math.ceil(v * m / 2) for v, m in zip(largest, margin)]
    table[["index", "label", "name", "extent_mm"]].to_csv(output, sep="\t", index=False, lineterminator="\n")
    print(f"wrote {len(table)} extents from {len(segs)} subjects to {output}")


if __name__ == "__main__":
    default = os.environ.get("RGENIMA_SHARED_DATA", REPO.parent / "shared" / "data")
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(default)
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "rgenima_app" / "data" / "roi_fit_extents.tsv"
    main(shared, out)
