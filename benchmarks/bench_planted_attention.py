"""Do the planted ROIs / genes rank high in the participant-level attention? (synthetic cohort)

    python benchmarks/bench_planted_attention.py COHORT OUTPUT_DIR MODEL [--k 10] [--stage AD] [--out x.json]

COHORT is a ``rgenima_app.synthetic`` cohort (``ground_truth.json``, ``bids/participants.tsv``);
OUTPUT_DIR holds ``participant --model`` outputs of the model label MODEL. For the participants of the true
stage ``--stage`` (held out and all), it reports how many planted ROIs are in the top ``k`` of the ROI
importance, against chance (k / 109 per planted ROI), and the same for the planted genes in the gene
importance; with a one-sided binomial p-value over participant × planted-ROI hits.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("model")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--stage", default="AD")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    truth = json.loads((args.cohort / "ground_truth.json").read_text())
    planted_rois, planted_genes = set(truth["planted_rois"]), set(truth["planted_genes"])
    participants = pd.read_csv(args.cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")
    rows = []
    for path in sorted(args.output_dir.glob(f"sub-*/**/sub-*_desc-{args.model}_predictions.tsv")):
        participant = path.name.split("_")[0]
        stem = str(path)[: -len("_predictions.tsv")]
        sidecar = json.loads(path.with_suffix(".json").read_text())
        rois = pd.read_csv(stem + "_roiattention.tsv", sep="\t").sort_values("importance", ascending=False)
        genes = pd.read_csv(stem + "_geneattention.tsv", sep="\t").sort_values("importance", ascending=False)
        rows.append({"participant": participant, "diagnosis": participants.loc[participant, "diagnosis"],
                     "held_out": sidecar["HeldOut"], "predicted": pd.read_csv(path, sep="\t")["label"].iloc[0],
                     "roi_hits": len(planted_rois & set(rois["roi"].head(args.k))),
                     "gene_hits": len(planted_genes & set(genes["gene"].head(args.k))),
                     "n_genes": len(genes)})
    table = pd.DataFrame(rows)
    result = {"k": args.k, "stage": args.stage, "participants": len(table)}
    for subset, part in (("all", table), ("held_out", table[table["held_out"]])):
        part = part[part["diagnosis"] == args.stage]
        if part.empty:
            continue
        n_genes = int(part["n_genes"].iloc[0])
        roi_trials, gene_trials = len(part) * len(planted_rois), len(part) * len(planted_genes)
        result[subset] = {
            "n": int(len(part)),
            "planted_rois_in_top_k_mean": float(part["roi_hits"].mean()),
            "chance_rois": len(planted_rois) * args.k / 109,
            "roi_p_value": float(binomtest(int(part["roi_hits"].sum()), roi_trials, args.k / 109,
                                           alternative="greater").pvalue),
            "planted_genes_in_top_k_mean": float(part["gene_hits"].mean()),
            "chance_genes": len(planted_genes) * args.k / max(n_genes, 1),
            "gene_p_value": float(binomtest(int(part["gene_hits"].sum()), gene_trials, args.k / max(n_genes, 1),
                                            alternative="greater").pvalue),
        }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
