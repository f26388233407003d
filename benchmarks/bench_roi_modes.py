"""Stage-1 RiT accuracy by ROI resampling mode (``stretch`` vs ``fit``) and with/without the ROI size feature.

    PYTHONPATH=. python benchmarks/bench_roi_modes.py [--run /tmp/rgenima-bench-train]
        [--variants stretch+size fit+size fit] [--json benchmarks/results/roi_modes.json]

On the cohort and the participant-disjoint split of a ``bench_training.py`` run (its ``desc-bench_split.tsv``),
each variant extracts the ROI patches in its mode (``[imaging] mode``: ``stretch`` resamples each ROI's
bounding box to S^3, so every ROI fills the patch; ``fit`` keeps one mm scale per ROI across participants,
so shrinkage stays visible in the patch) and trains the stage-1 RiT with the benchmark's settings and seed,
early-stopped on the validation participants; the RiT's own head is then scored on the test participants.
This isolates what the image encoder learns (the LLM reads only its frozen tokens). ``--quick`` runs the
tiny run of ``bench_training.py --quick``.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import pandas as pd
import torch
from _common import RESULTS, output_path, provenance, quick_dir

VARIANTS = {"stretch+size": ("stretch", True), "stretch": ("stretch", False), "fit+size": ("fit", True),
            "fit": ("fit", False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("/tmp/rgenima-bench-train"),
                        help="the --out of bench_training.py (cohort, split, work dir)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["stretch+size", "fit+size", "fit"])
    parser.add_argument("--roi-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.run = quick_dir() / "training" if args.run == parser.get_default("run") else args.run
        args.roi_size, args.epochs, args.variants = 8, 2, ["stretch+size", "fit"]
    json_path = output_path(args.json, args.quick, "roi_modes.json", RESULTS / "roi_modes.json")

    from rgenima_app.bids.inputs import collect_t1w, read_participants
    from rgenima_app.config import RunConfig
    from rgenima_app.training import data as cohort_data
    from rgenima_app.training.settings import Stage1Settings, TrainSettings
    from rgenima_app.training.stage1 import evaluate_rit, train_stage1

    cohort = args.run / "cohort"
    runs = sorted(d for d in args.run.glob("derivatives-*") if (d / "desc-bench_split.tsv").is_file())
    if not runs:
        raise SystemExit(f"no desc-bench_split.tsv under {args.run}/derivatives-*: run bench_training.py first")
    split = pd.read_csv(runs[-1] / "desc-bench_split.tsv", sep="\t")
    role = dict(zip(split["participant_id"].str.removeprefix("sub-"), split["role"]))
    config = RunConfig(bids_dir=cohort / "bids", output_dir=args.run / "roi-modes", analysis_level="group",
                       fs_subjects_dir=cohort / "freesurfer", work_dir=args.run / "work", roi_size=args.roi_size,
                       device="cpu").resolve()
    t1w = collect_t1w(config.bids_dir, [], [], None)
    participants = read_participants(config.bids_dir, required=True)
    logging.getLogger("rgenima").setLevel(logging.ERROR)  # one warning per reused FreeSurfer subject otherwise
    device = torch.device("cpu")
    results = []
    for name in args.variants:
        mode, size_feature = VARIANTS[name]
        samples = cohort_data.labelled_samples(t1w, participants)
        settings = TrainSettings()
        settings.imaging.mode = mode
        start = time.perf_counter()
        cohort_data.prepare_imaging(t1w, samples, settings, freesurfer=config.freesurfer, work_dir=config.work_dir,
                                    roi_size=config.roi_size, device=config.device)
        extraction = time.perf_counter() - start
        stage1 = Stage1Settings(epochs=args.epochs, batch_size=16, lr=1e-3, dim=128, depth=2, heads=4,
                                use_size_feature=size_feature, patience=8)
        if args.quick:
            stage1.dim, stage1.depth = 32, 1
        pick = lambda r: [s for s in samples if role.get(s.participant) == r]  # noqa: E731
        start = time.perf_counter()
        rit, curve = train_stage1(pick("train"), pick("validation"), stage1, args.roi_size, 0, device)
        training = time.perf_counter() - start
        test_loss, test_accuracy = evaluate_rit(rit, pick("test"), stage1.batch_size, device)
        best = min(range(len(curve.val_loss)), key=curve.val_loss.__getitem__)
        results.append({"variant": name, "mode": mode, "size_feature": size_feature,
                        "best_val_loss": curve.val_loss[best], "val_accuracy": curve.val_accuracy[best],
                        "test_loss": test_loss, "test_accuracy": test_accuracy, "epochs_run": len(curve.val_loss),
                        "extraction_seconds": round(extraction, 1), "training_seconds": round(training, 1)})
        print(json.dumps(results[-1]), flush=True)
    majority = split[split["role"] == "test"]["diagnosis"].value_counts(normalize=True).max()
    result = {"benchmark": "roi_modes", "provenance": provenance(args.quick), "run": str(runs[-1]),
              "roi_size": args.roi_size, "n": split["role"].value_counts().to_dict(),
              "majority_class_test_accuracy": float(majority), "variants": results}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
