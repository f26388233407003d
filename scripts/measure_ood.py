"""Measure the out-of-distribution score (docs/inference.md, "Out-of-distribution score").

For synthetic cohorts of the ``tiny`` preset (the demo's phantoms), the training distribution is fitted on
the first n participants and the remaining ones (held out, same cohort) are scored: the false-flag rate.
The real FreeSurfer subjects of ../shared/data/freesurfer (8 FreeSurfer 6 subjects and bert) are scored
against the same fits: they must be flagged. Only the image component is measured (no ages, no genotypes).

    python scripts/measure_ood.py [--shared-data ../shared/data] [--work /tmp/ood] [--size 60]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app.imaging.freesurfer import INTENSITY_CANDIDATES
from rgenima_app.imaging.rois import roi_morphometry
from rgenima_app.models.distribution import fit_distribution, roi_features, score_sample
from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                   generate_cohort)


def features(subject: Path) -> np.ndarray:
    intensity = next(subject / p for p in INTENSITY_CANDIDATES if (subject / p).is_file())
    return roi_features(roi_morphometry(intensity, subject / "mri" / "aparc+aseg.mgz"), "wm")


def cohort(root: Path, size: int, seed: int) -> Path:
    if not (root / "freesurfer").is_dir():
        spec = PRESETS["tiny"]
        generate_cohort(root, GeneratorParameters(
            preset="tiny", seed=seed, n_participants=size, sessions=1, grid=spec["grid"], voxel_mm=spec["voxel_mm"],
            snps_per_gene=spec["snps_per_gene"], planted_rois=list(DEFAULT_PLANTED_ROIS),
            planted_genes=list(DEFAULT_PLANTED_GENES)), progress=False)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rgenima-ood"))
    parser.add_argument("--size", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--train", type=int, nargs="+", default=[12, 18, 24, 30, 40])
    args = parser.parse_args()
    fs = args.shared_data / "freesurfer"
    real = {p.name: features(p) for p in sorted((fs / "fs6").iterdir()) + [fs / "fs7" / "bert"]} if fs.is_dir() else {}
    rows = []
    for seed in args.seeds:
        root = cohort(args.work / f"tiny-{args.size}-seed{seed}", args.size, seed)
        subjects = sorted(p for p in (root / "freesurfer").iterdir() if p.name.startswith("sub-"))
        x = np.vstack([features(s) for s in subjects])
        for n in args.train:
            fit = fit_distribution([s.name for s in subjects[:n]], features=x[:n])
            held = [score_sample(fit, features=row) for row in x[n:]]
            scored = [score_sample(fit, features=v) for v in real.values()]
            rows.append({"seed": seed, "n_train": n, "threshold": fit["image"]["threshold"], "n_held_out": len(held),
                         "held_out_flagged": sum(h.flag for h in held), "held_out_max": max(h.score for h in held),
                         "real_flagged": sum(r.flag for r in scored), "n_real": len(scored),
                         "real_min": min((r.score for r in scored), default=np.nan)})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"held out: {table['held_out_flagged'].sum()} flagged of {table['n_held_out'].sum()} scored; "
          f"real: {table['real_flagged'].sum()} flagged of {table['n_real'].sum()} scored")


if __name__ == "__main__":
    main()
