"""Truth-known accuracy of a training run (docs/benchmarks.md, section "Training").

    PYTHONPATH=. python benchmarks/bench_training.py [--participants 300 --seed 0 --out /tmp/rgenima-bench-train]

Makes a synthetic cohort (``demo`` preset geometry, planted ROIs and genes, exact Bayes-optimal
posteriors), runs ``rgenima BIDS OUT group --train`` with the tiny LLM on the CPU once per data
configuration (``--data image_gene,gene,mixture``: R-GenIMA, the SNP-only LLM and the paper's mixture; each
run is its own ``derivatives-*-<label>`` with model ``bench``, ``benchgene``, ``benchmixture``) and the
paper's other baselines (SNP-only MLP, BERT+RiT † and ‡, beside the first configuration) on the same
participant-disjoint split, and reports each
model's held-out accuracy, macro-F1 and balanced accuracy with 95% CIs beside the accuracy of the
Bayes-optimal classifier on the same test participants (argmax of the generator's posterior given
everything observable), its gene-only and image-only versions, and chance. Also records the wall time
of each stage from the run log. Writes JSON (default benchmarks/results/training.json) and prints a
markdown table.

``--quick`` (CI, about a minute on 2 cores) runs the same path on 12 participants with 8^3 patches, one
stage-2 epoch, a 2-layer tiny LLM, a 2-epoch stage 1 and no baselines (sizes set on the parsed config, so
the template below stays the full run's); its cohort and run live in ``$TMPDIR/rgenima-bench-quick`` and
its JSON goes to ``$TMPDIR/rgenima-bench-quick/training.json`` unless ``--json`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

from _common import output_path, provenance, quick_dir
from bench_genetics import bench_tokens
from rgenima_app import STAGES
from rgenima_app.training.classical import NAME as CLASSICAL

TRAIN_CONFIG = """
name = "{name}"
data = "{data}"
[imaging]
mode = "{mode}"
[genetics]
snp_selection = "{snp_selection}"
screen_top = {screen_top}
[split]
test = 0.25
validation = 0.15
[stage1]
epochs = 40
batch_size = 16
lr = 1e-3
dim = 128
depth = 2
heads = 4
use_size_feature = true
patience = 8
roi_volume_loss = {roi_volume_loss}
roi_stage_loss = {roi_stage_loss}
[stage2]
epochs = {epochs}
batch_size = 8
lr = {lr}
warmup_ratio = 0.05
checkpoint_every = 0
[baselines]
run = {baselines}
epochs = {baseline_epochs}
wholebrain_size = {wholebrain_size}
"""


def quick_config(text: str) -> str:
    """The full run's config with the --quick sizes (small RiT and LLM, 2 stage-1 epochs)."""
    import tomli_w
    import tomllib

    doc = tomllib.loads(text)
    doc["tiny"] = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "intermediate_size": 128, "vocab_size": 1024}
    doc.setdefault("stage1", {}).update(epochs=2, dim=32, depth=1, heads=4)
    doc.setdefault("stage2", {}).update(batch_size=4)
    return tomli_w.dumps(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15, help="stage-2 epochs")
    parser.add_argument("--roi-size", type=int, default=16)
    parser.add_argument("--roi-mode", choices=("stretch", "fit"), default="fit",
                        help="ROI resampling ([imaging] mode); fit gave the better RiT (bench_roi_modes.py)")
    parser.add_argument("--data", default="image_gene",
                        help="comma-separated data configurations, one group --train run each (image_gene, gene, "
                             "mixture); all are tested on the same participants")
    parser.add_argument("--baselines", default="snp_mlp,bert_rit_concat,bert_rit_cross,llm_wholebrain",
                        help="comma-separated baselines to train beside R-GenIMA ('' for none)")
    parser.add_argument("--baseline-epochs", type=int, default=60, help="[baselines] epochs")
    parser.add_argument("--wholebrain-size", type=int, default=32,
                        help="[baselines] wholebrain_size of llm_wholebrain (the synthetic T1w is 64^3; 32^3 keeps "
                             "its 3D ResNet affordable on a CPU)")
    parser.add_argument("--screen-top", type=int, default=8,
                        help="[genetics] screen_top: SNPs kept by in-fold screening (0: every QC'd SNP, the paper's input)")
    parser.add_argument("--llm", default="tiny", help="--llm of the runs (tiny, smollm2 or a local model directory)")
    parser.add_argument("--finetune", default="full", help="--finetune of the runs")
    parser.add_argument("--lr", type=float, default=1e-3, help="[stage2] lr")
    parser.add_argument("--roi-volume-loss", type=float, default=0.0, help="[stage1] roi_volume_loss (0: the paper's)")
    parser.add_argument("--roi-stage-loss", type=float, default=0.0, help="[stage1] roi_stage_loss (0: the paper's)")
    parser.add_argument("--label-suffix", default="", help="appended to the model names (runs side by side)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/rgenima-bench-train"))
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "training.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, about a minute (CI); not the figures")
    args = parser.parse_args()
    if args.quick:
        args.participants, args.epochs, args.roi_size, args.baselines = 12, 1, 8, ""
        args.out = quick_dir() / "training" if args.out == parser.get_default("out") else args.out
        args.json = output_path(None if args.json == parser.get_default("json") else args.json, True,
                                "training.json", None)

    cohort = args.out / "cohort"
    if not (cohort / "ground_truth.json").exists():
        subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(cohort), "--preset", "demo", "--seed",
                        str(args.seed), "--n-participants", str(args.participants), "--overwrite"], check=True)
    baselines = [b for b in args.baselines.split(",") if b]
    configurations = [d for d in args.data.split(",") if d]
    # the paper's baselines train once, beside image_gene when it runs (llm_wholebrain needs the images that
    # a gene-only run does not prepare), else beside the first configuration; the others ignore it
    host = "image_gene" if "image_gene" in configurations else configurations[0]
    runs = {data: train(args, cohort, data, baselines if data == host else []) for data in configurations}

    truth = json.loads((cohort / "ground_truth.json").read_text())
    posterior = pd.read_csv(cohort / "ground_truth.tsv", sep="\t").set_index("participant_id")
    test_ids = next(iter(runs.values()))["test_ids"]
    if any(run["test_ids"] != test_ids for run in runs.values()):
        raise SystemExit("the data configurations were tested on different participants; their figures "
                         "would not compare")
    post = posterior.loc[test_ids]
    stage_of = post["stage"].to_numpy()

    def bayes(prefix: str) -> float:
        columns = [f"{prefix}{s}" for s in STAGES]
        best = post[columns].to_numpy().argmax(axis=1)
        return float((pd.Series(STAGES).to_numpy()[best] == stage_of).mean())

    result = {
        "benchmark": "training", "date": datetime.now().isoformat(timespec="seconds"),
        "provenance": provenance(args.quick),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "cohort": {"participants": args.participants, "seed": args.seed, "preset": "demo",
                   "planted_rois": truth["planted_rois"], "planted_genes": truth["planted_genes"]},
        "n_test": len(test_ids), "roi_size": args.roi_size, "roi_mode": args.roi_mode, "stage2_epochs": args.epochs,
        "baseline_epochs": args.baseline_epochs, "llm": args.llm, "finetune": args.finetune, "stage2_lr": args.lr,
        "screen_top": args.screen_top or "all", "roi_volume_loss": args.roi_volume_loss,
        "roi_stage_loss": args.roi_stage_loss, "data_configurations": {d: r["label"] for d, r in runs.items()},
        "bayes_optimal_test_accuracy": {"image_gene": bayes("p_"), "gene_only": bayes("p_gene_"),
                                        "image_only": bayes("p_image_")},
        "bayes_optimal_accuracy_expected": truth["bayes_optimal_accuracy"],
        "chance_majority_class": float(post["stage"].value_counts(normalize=True).max()),
        "models": {m: v for run in runs.values() for m, v in run["models"].items()},
        "wall_seconds": round(sum(run["wall"] for run in runs.values()), 1),
        "runs": {d: {"wall_seconds": round(r["wall"], 1), "log_times": r["log_times"], "token_probe": r["token_probe"],
                     "stage1_curve": r["stage1_curve"]} for d, r in runs.items()},
    }
    # the cohort's panel (before QC), as bench_genetics.py counts the real set's
    result["snp_text_tokens"] = bench_tokens(cohort / "genotypes" / "cohort", None, 200)
    if len(runs) == 1:  # the layout of earlier results (one configuration per file)
        result["log_times"] = next(iter(runs.values()))["log_times"]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print("\n| model | accuracy (95% CI) | macro-F1 | balanced accuracy |\n|---|---|---|---|")
    for model, m in result["models"].items():
        a = m["accuracy"]
        print(f"| {model} | {a['value']:.3f} ({a['ci_low']:.3f}-{a['ci_high']:.3f}) | "
              f"{m['macro_f1']['value']:.3f} | {m['balanced_accuracy']['value']:.3f} |")
    b = result["bayes_optimal_test_accuracy"]
    print(f"| Bayes-optimal (same test set) | {b['image_gene']:.3f} | | |")


def model_name(data: str) -> str:
    """``bench`` for the paper's image-gene configuration, ``benchgene`` / ``benchmixture`` for the others."""
    return "bench" if data == "image_gene" else "bench" + data.replace("_", "")



def reference_name(model: str, data: str) -> str:
    """Every run has its own classical reference (on its own inputs): named after its data configuration,
    so that the runs' references do not overwrite one another in ``models``."""
    return f"{model}_{data}" if model == CLASSICAL and data != "image_gene" else model


def group_train_command(cohort: Path, out: Path, config: Path, args) -> list[str]:
    """``rgenima COHORT/bids OUT group --train`` on a synthetic cohort (its genotypes and FreeSurfer subjects),
    with the options of ``args`` (roi_size, seed, llm, finetune; the work dir ``args.out/work`` caches the
    ROI patches between runs)."""
    return [sys.executable, "-m", "rgenima_app", str(cohort / "bids"), str(out), "group", "--train",
            "--train-config", str(config), "--genotypes", str(cohort / "genotypes" / "cohort.bed"),
            "--fs-subjects-dir", str(cohort / "freesurfer"), "--roi-size", str(args.roi_size),
            "--seed", str(args.seed), "--skip-bids-validation", "-w", str(args.out / "work"),
            "--llm", args.llm, "--finetune", args.finetune]


def train(args, cohort: Path, data: str, baselines: list[str]) -> dict:
    """One ``group --train`` run of one data configuration; its test metrics, test participants and times."""
    label = model_name(data) + args.label_suffix
    out = args.out / f"derivatives-{datetime.now():%Y%m%d-%H%M%S}-{label}"
    config = args.out / f"train-{label}.toml"
    config.write_text(TRAIN_CONFIG.format(name=label, data=data, epochs=args.epochs, baselines=json.dumps(baselines),
                                          snp_selection="screen" if args.screen_top else "all",
                                          screen_top=max(args.screen_top, 1), lr=args.lr,
                                          mode=args.roi_mode, baseline_epochs=args.baseline_epochs,
                                          wholebrain_size=args.wholebrain_size,
                                          roi_volume_loss=args.roi_volume_loss, roi_stage_loss=args.roi_stage_loss))
    if args.quick:
        config.write_text(quick_config(config.read_text()))
    start = time.perf_counter()
    subprocess.run(group_train_command(cohort, out, config, args), check=True)
    wall = time.perf_counter() - start

    predictions = pd.read_csv(out / f"desc-{label}_testpredictions.tsv", sep="\t")
    evaluation = pd.read_csv(out / f"desc-{label}_evaluation.tsv", sep="\t")
    models = {}
    for model, part in evaluation.groupby("model"):
        metrics = part.set_index("metric")
        models[reference_name(model, data)] = {m: {k: float(metrics.loc[m, k]) for k in ("value", "ci_low", "ci_high")}
                         for m in ("accuracy", "macro_f1", "balanced_accuracy", "macro_auc")}
    log = "\n".join(p.read_text() for p in (out / "logs").glob("*.log"))
    stamps = {name: re.search(rf"(\d\d:\d\d:\d\d),\d+ INFO: {pattern}", log)
              for name, pattern in {"start": "rgenima", "stage1": "fold 0:", "stage2": "stage 2:",
                                    "evaluated": "fold 0: test accuracy", "finished": "training finished"}.items()}
    training = json.loads((out / "models" / label / "rgenima.json").read_text())["training"]
    probe = training.get("token_probe") or {}
    return {"label": label, "models": models, "wall": wall,
            "token_probe": {k: probe[k] for k in ("median_own_r2", "median_other_r2", "own_r2") if k in probe},
            "stage1_curve": training.get("curves", {}).get("stage1"),
            "test_ids": predictions.loc[predictions["model"] == label, "participant_id"].tolist(),
            "log_times": {k: v.group(1) for k, v in stamps.items() if v}}


if __name__ == "__main__":
    main()
