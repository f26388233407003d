"""Progression foundations (issue 24): the classical references of ΔCDR-SB and MCI-to-AD conversion beside
the Bayes-optimal predictions and a trivial reference, on a truth-known longitudinal cohort
(docs/benchmarks.md, section "Progression (issue 24, foundations)").

    PYTHONPATH=. python benchmarks/bench_progression.py [--participants 800] [--visits 4] [--horizon 24]
        [--window 6] [--seed 24] [--out /tmp/rgenima-bench-progression] [--json PATH] [--quick]

1. makes a longitudinal synthetic cohort (``tiny`` preset images, ``--visits`` visits 12 months apart;
   rgenima_app/synthetic/progression.py);
2. computes the targets from its BIDS sessions files with ``rgenima_app.progression.targets`` (horizon,
   window; exclusions counted);
3. splits the participants (participant-disjoint, stratified by baseline stage: 50% train, 20%
   validation, 30% test; the conversion target uses the baseline-MCI participants of the same split);
4. fits the classical references on the baseline ROI volumes and SNP dosages
   (``synthetic.features.cohort_features``; ``rgenima_app.progression.classical``, penalty on validation);
5. reports on the test participants RMSE/MAE (overall, by stratum), Pearson r and the conversion metrics,
   with participant-bootstrap 95% intervals, for: the classical reference, the Bayes-optimal prediction
   (progression_truth.tsv) and the trivial reference (the training mean ΔCDR-SB; the training converter
   rate, whose AUC is 0.5 by construction).

``--quick`` makes 80 participants and 200 bootstrap resamples (CI; the numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import output_path, provenance, quick_dir

from rgenima_app.bids.tsv import read_tsv
from rgenima_app.progression.classical import fit_conversion, fit_delta_regression
from rgenima_app.progression.metrics import conversion_metrics, regression_metrics
from rgenima_app.progression.targets import load_progression_targets
from rgenima_app.synthetic import DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters
from rgenima_app.synthetic import generate_cohort
from rgenima_app.synthetic.features import cohort_features
from rgenima_app.synthetic.progression import ProgressionModel
from rgenima_app.training.splits import train_test_split


def make_cohort(folder: Path, participants: int, visits: int, seed: int) -> dict:
    if folder.exists():
        shutil.rmtree(folder)
    spec = PRESETS["tiny"]
    params = GeneratorParameters(preset="tiny", seed=seed, n_participants=participants, sessions=1,
                                 grid=spec["grid"], voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                                 planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    return generate_cohort(folder, params, progress=False, progression=ProgressionModel(visits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=800)
    parser.add_argument("--visits", type=int, default=4)
    parser.add_argument("--horizon", type=float, default=24.0, help="months (a multiple of 12: the Bayes truth's)")
    parser.add_argument("--window", type=float, default=6.0, help="months either side (under 9)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/rgenima-bench-progression"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.participants, args.n_boot, args.out = 80, 200, quick_dir() / "progression"
    out = output_path(args.json, args.quick, "progression.json", Path(__file__).parent / "results" / "progression.json")
    horizon = int(args.horizon)
    if horizon != args.horizon or horizon % 12 or not 0 < horizon < 12 * args.visits or not 0 <= args.window < 9:
        raise SystemExit("--horizon must be a planned visit (12, 24, ... months, before the last visit) and "
                         "--window under 9 months, so that the Bayes truth is that of the targets")
    start = time.perf_counter()
    truth = make_cohort(args.out / "cohort", args.participants, args.visits, args.seed)
    generated = time.perf_counter() - start
    cohort = args.out / "cohort"
    targets = load_progression_targets(cohort / "bids", args.horizon, args.window)
    participants = read_tsv(cohort / "bids" / "participants.tsv", dtype=str).set_index("participant_id")
    stage = pd.Series(participants["diagnosis"].to_numpy(), index=[p.removeprefix("sub-") for p in participants.index])
    roles = train_test_split(stage, test=0.3, validation=0.2, seed=args.seed).roles
    features = cohort_features(cohort)
    x_all = np.hstack([features.volumes, features.dosages])
    names = [f"volume:{r}" for r in range(features.volumes.shape[1])] + \
        [f"dosage:{j} ({g})" for j, g in enumerate(features.snp_genes)]
    row_of = {p.removeprefix("sub-"): i for i, p in enumerate(features.participants)}
    bayes = read_tsv(cohort / "progression_truth.tsv", na_values=["n/a"]).set_index("participant_id")

    def split(table: pd.DataFrame) -> dict[str, list[str]]:
        return {r: [p for p in table.index if roles[p] == r] for r in ("train", "validation", "test")}

    def x(labels):
        return x_all[[row_of[p] for p in labels]]

    result = {"benchmark": "progression", "provenance": provenance(args.quick),
              "cohort": {"participants": args.participants, "visits": args.visits, "seed": args.seed,
                         "preset": "tiny", "generation_seconds": round(generated, 1)},
              "horizon_months": args.horizon, "window_months": args.window, "targets": targets.summary(),
              "bayes_optimal_rmse_expected_all": truth["progression"]["bayes_optimal_rmse_expected"][str(horizon)],
              "n_features": x_all.shape[1], "n_boot": args.n_boot}

    # ΔCDR-SB
    delta = targets.delta["delta_cdr_sb"]
    parts = split(targets.delta)
    fit = fit_delta_regression(x(parts["train"]), delta[parts["train"]], x(parts["validation"]),
                               delta[parts["validation"]], x(parts["test"]), names, args.seed)
    test_true = delta[parts["test"]].to_numpy()
    predictions = {
        "bayes_optimal": bayes.loc[[f"sub-{p}" for p in parts["test"]], f"expected_delta_cdr_sb_m{horizon}"].to_numpy(),
        "sparse_linear": fit.prediction,
        "training_mean": np.full(len(test_true), delta[parts["train"]].mean())}
    result["delta_cdr_sb"] = {
        "n": {r: len(v) for r, v in parts.items()},
        "test_strata": {"delta_lt_0": int((test_true < 0).sum()), "delta_0": int((test_true == 0).sum()),
                        "delta_0_1": int(((test_true > 0) & (test_true <= 1)).sum()),
                        "delta_gt_1": int((test_true > 1).sum())},
        "bayes_optimal_rmse_expected_test": float(np.sqrt(np.mean(
            bayes.loc[[f"sub-{p}" for p in parts["test"]], f"sd_delta_cdr_sb_m{horizon}"].to_numpy() ** 2))),
        "classical_fit": fit.to_dict(),
        "models": {m: regression_metrics(test_true, p, n_boot=args.n_boot, seed=args.seed).to_dict()
                   for m, p in predictions.items()}}

    # conversion (baseline MCI)
    converted = targets.conversion["converted"].astype(bool)
    parts = split(targets.conversion)
    probability, conversion_fit = fit_conversion(
        x(parts["train"]), converted[parts["train"]], x(parts["validation"]), converted[parts["validation"]],
        x(parts["test"]), names, args.seed)
    test_true = converted[parts["test"]].to_numpy()
    probabilities = {
        "bayes_optimal": bayes.loc[[f"sub-{p}" for p in parts["test"]], f"p_convert_m{horizon}"].to_numpy(),
        "sparse_logistic": probability,
        "training_rate": np.full(len(test_true), converted[parts["train"]].mean())}
    result["conversion"] = {
        "n": {r: len(v) for r, v in parts.items()},
        "converters": {r: int(converted[v].sum()) for r, v in parts.items()},
        "classical_fit": conversion_fit.to_dict(),
        "models": {m: conversion_metrics(test_true, p, n_boot=args.n_boot, seed=args.seed).to_dict()
                   for m, p in probabilities.items()}}
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for m, r in result["delta_cdr_sb"]["models"].items():
        print(f"ΔCDR-SB {m:>14}: RMSE {r['rmse']['value']:.3f} [{r['rmse']['ci_low']:.3f}, {r['rmse']['ci_high']:.3f}]"
              f", 0<Δ≤1 {r['rmse_delta_0_1']['value']:.3f}, r {r['pearson_r']['value'] or float('nan'):.3f}")
    for m, r in result["conversion"]["models"].items():
        print(f"conversion {m:>15}: AUC {r['auc']['value']:.3f} [{r['auc']['ci_low']:.3f}, {r['auc']['ci_high']:.3f}]"
              f", balanced accuracy {r['balanced_accuracy']['value']:.3f}")
    print(f"written {out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
