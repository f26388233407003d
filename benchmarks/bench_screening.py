"""SNP-only accuracy against the number of screened SNPs (docs/benchmarks.md, section "Genotype input").

    PYTHONPATH=. python benchmarks/bench_screening.py --run /tmp/rgenima-bench-1000 [--top 5,8,16,32,64,all]

Reads a ``bench_training.py`` run folder (its synthetic cohort and the participant-disjoint split of its
first derivatives folder) and, on exactly that split, fits the fold's genotype QC and in-fold SNP screening
(``rgenima_app.training.data.fold_genotypes``, training participants only) for each ``--top``, then trains
the SNP-only models on the screened dosages and tests them on the held-out participants:

- ``snp_mlp``: the paper's SNP-only MLP (``training/baselines.py``, ``[baselines]`` defaults);
- ``sparse_logistic``: the classical reference's model (``training/classical.py``) on the dosages alone.

Also records how many of the generator's planted causal SNPs are among the screened ones, and the
genotype-only Bayes-optimal accuracy on the same test participants. ``all`` is the paper's input (every
QC'd SNP). ``--quick`` makes a 60-participant cohort and runs two sizes (CI; the numbers mean nothing).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import output_path, provenance, quick_dir

from rgenima_app import STAGES
from rgenima_app.analysis.metrics import classification_metrics
from rgenima_app.genetics.participant import GenotypeInput
from rgenima_app.training.baselines import train_baseline
from rgenima_app.training.classical import fit_classical
from rgenima_app.training.data import Cohort, CohortSample, fold_genotypes
from rgenima_app.training.settings import BaselineSettings, TrainSettings
from rgenima_app.training.stage2 import Stage2Item


def load_split(run: Path) -> pd.DataFrame:
    splits = sorted(run.glob("derivatives-*/desc-*_split.tsv"))
    if not splits:
        raise SystemExit(f"no derivatives-*/desc-*_split.tsv in {run}: run bench_training.py --out {run} first")
    return pd.read_csv(splits[0], sep="\t")


def cohort_of(cohort_dir: Path, split: pd.DataFrame) -> Cohort:
    table = pd.read_csv(cohort_dir / "bids" / "participants.tsv", sep="\t").set_index("participant_id")
    labels = [p.removeprefix("sub-") for p in split["participant_id"]]
    samples = [CohortSample(f"sub-{p}", p, None, d) for p, d in zip(labels, split["diagnosis"])]
    return Cohort(samples, genetic_ids={p: str(table.loc[f"sub-{p}", "genetic_id"]) for p in labels})


def accuracy_with_ci(truth: list[str], proba: np.ndarray, seed: int) -> dict:
    table = classification_metrics(truth, proba, n_boot=1000, seed=seed).table.set_index("metric")
    return {m: {k: round(float(table.loc[m, k]), 4) for k in ("value", "ci_low", "ci_high")}
            for m in ("accuracy", "balanced_accuracy", "macro_f1")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("/tmp/rgenima-bench-1000"))
    parser.add_argument("--top", default="5,8,16,32,64,all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.run, args.top = quick_dir() / "screening", "8,all"
        if not (args.run / "cohort" / "ground_truth.json").exists():
            subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(args.run / "cohort"), "--preset",
                            "tiny", "--seed", "5", "--n-participants", "60", "--overwrite"], check=True)
            roles = ["train"] * 36 + ["validation"] * 9 + ["test"] * 15
            ids = pd.read_csv(args.run / "cohort" / "bids" / "participants.tsv", sep="\t")
            folder = args.run / "derivatives-quick"
            folder.mkdir(exist_ok=True)
            ids.assign(role=roles)[["participant_id", "diagnosis", "role"]].to_csv(
                folder / "desc-quick_split.tsv", sep="\t", index=False)
    out = output_path(args.json, args.quick, "screening.json",
                      Path(__file__).parent / "results" / "screening.json")
    cohort_dir = args.run / "cohort"
    split = load_split(args.run)
    cohort = cohort_of(cohort_dir, split)
    role = dict(zip((p.removeprefix("sub-") for p in split["participant_id"]), split["role"]))
    members = {r: [s for s in cohort.samples if role[s.participant] == r] for r in ("train", "validation", "test")}
    truth = json.loads((cohort_dir / "ground_truth.json").read_text())
    planted = {s["snp"] for s in truth["planted_snps"]}
    posterior = pd.read_csv(cohort_dir / "ground_truth.tsv", sep="\t").set_index("participant_id")
    test_ids = [f"sub-{s.participant}" for s in members["test"]]
    test_truth = [s.diagnosis for s in members["test"]]
    bayes_gene = posterior.loc[test_ids, [f"p_gene_{s}" for s in STAGES]].to_numpy().argmax(axis=1)
    genotypes = GenotypeInput(cohort_dir / "genotypes" / "cohort.bed")

    result = {"benchmark": "screening", "provenance": provenance(args.quick), "run": str(args.run),
              "n": {r: len(v) for r, v in members.items()}, "planted_snps": sorted(planted),
              "bayes_optimal_gene_only_test_accuracy": round(float(
                  (np.array(STAGES)[bayes_gene] == np.array(test_truth)).mean()), 4),
              "majority_test_accuracy": round(float(pd.Series(test_truth).value_counts(normalize=True).max()), 4),
              "sizes": {}}
    for top in args.top.split(","):
        settings = TrainSettings()
        if top == "all":
            settings.genetics.snp_selection = "all"
        else:
            settings.genetics.screen_top = int(top)
        start = time.perf_counter()
        genes = fold_genotypes(genotypes, settings, cohort, [s.participant for s in members["train"]])
        items = {r: [Stage2Item(s.name, s.participant, s.diagnosis, genes.tables[s.participant], None) for s in v]
                 for r, v in members.items()}
        mlp = train_baseline("snp_mlp", items["train"], items["validation"], items["test"], BaselineSettings(),
                             "compact", None, args.seed)
        dosage = {r: np.stack([genes.tables[s.participant]["dosage"].to_numpy(float) for s in v])
                  for r, v in members.items()}
        classical = fit_classical(dosage["train"], [s.diagnosis for s in members["train"]], dosage["validation"],
                                  [s.diagnosis for s in members["validation"]], dosage["test"],
                                  list(genes.snp_panel["snp"]), args.seed)
        selected = set(genes.snp_panel["snp"])
        result["sizes"][top] = {
            "n_snps": len(selected), "n_genes": int(genes.snp_panel["gene"].nunique()),
            "planted_snps_selected": len(planted & selected),
            "snp_mlp": accuracy_with_ci(test_truth, mlp, args.seed),
            "sparse_logistic": accuracy_with_ci(test_truth, classical.proba, args.seed),
            "seconds": round(time.perf_counter() - start, 1)}
        row = result["sizes"][top]
        print(f"top {top:>4}: {row['n_snps']:4d} SNPs, planted {row['planted_snps_selected']}/{len(planted)}, "
              f"snp_mlp {row['snp_mlp']['accuracy']['value']:.3f}, "
              f"sparse_logistic {row['sparse_logistic']['accuracy']['value']:.3f}", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"Bayes-optimal (genotypes only) {result['bayes_optimal_gene_only_test_accuracy']:.3f}; "
          f"majority {result['majority_test_accuracy']:.3f}; written {out}")


if __name__ == "__main__":
    main()
