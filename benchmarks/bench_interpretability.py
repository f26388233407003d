"""Truth-known interpretability: are the planted ROIs and genes found through a trained model?

    PYTHONPATH=. python benchmarks/bench_interpretability.py [--run /tmp/rgenima-bench-train]
        [--roi-top-k 10 --gene-top 10 --random-repeats 10] [--json benchmarks/results/interpretability.json]

Starts from a ``bench_training.py`` run (its synthetic cohort with planted ROIs and genes and its trained
``bench`` bundle), and runs what a user runs: ``participant --model`` on every participant (attention
rollout), then ``group --model`` (bootstrap stability, stage-specific ROIs, stable genes). It reports the
recall and precision of the planted ROIs among each stage's stage-specific ROIs and of the planted genes
among the stable genes, next to two references computed on the same participants and the same analysis:

* random attention: each participant's ROI and gene importances permuted at random (the same values,
  no relation to the ROIs), ``--random-repeats`` times (mean and range);
* the attribution methods of ``rgenima_app.inference.attribution`` (``ATTRIBUTIONS``: rollout recomputed in
  process, input x gradient, gradient-weighted attention rollout, integrated gradients with ``--ig-steps``),
  each through the same analysis (``attribution_methods`` in the JSON; ``gradient_saliency`` is input x
  gradient's, the key earlier results used), and each scored for deletion/insertion faithfulness
  (``rgenima_app.inference.faithfulness``) on the first ``--faithfulness-participants``, for ROIs and for
  genes, with a random importance as a method of its own. The reference input (integrated gradients'
  baseline, what deletion puts in) is each ROI's mean RiT token over the analysed participants, and the
  padding token's embedding for the SNP text.

Controls (issue 20), run through the same analysis under every importance method (``METHODS``): a
*positive* control, a multinomial logistic regression on the participants' ROI volumes and SNP dosages
whose per-participant importance is |coefficient of the predicted stage x standardised deviation| (it
demonstrably uses the planted features), and a *negative* control, the same model fitted to permuted
stages (``rgenima_app.analysis.controls``). The analysis must recover the first and not the second.
``--controls-only`` runs just these on the cohort of ``--run`` (no trained model needed):

    PYTHONPATH=. python benchmarks/bench_interpretability.py --run /tmp/rgenima-bench-train --controls-only \
        --json benchmarks/results/interpretability_controls.json

The synthetic generator plants one set of ROIs (atrophy grows with stage) and one set of risk genes, so the
same planted sets are the truth for SMC, MCI and AD.
By default only the held-out test participants of the training split are analysed (``--participants all``
adds the training participants, whose attention the model has fitted). ``--quick`` runs the path on the tiny run of ``bench_training.py --quick`` (numbers meaningless).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from _common import output_path, provenance, quick_dir

from rgenima_app import STAGES
from rgenima_app.analysis.group import AnalysisOptions, analyse_cohort
from rgenima_app.workflows.analyse import _gwas_genes, load_cohort_outputs, roi_names, snps_per_gene

MODEL = "bench"
#: The importance settings compared (``[analysis]`` importance, stage_contrast, reference).
METHODS = {
    "raw (paper)": dict(importance="raw", stage_contrast=False),
    "per_snp (default)": dict(importance="per_snp", stage_contrast=False),
    "relative + contrast vs cohort": dict(importance="relative", stage_contrast=True, reference="cohort"),
    "relative + contrast vs NC": dict(importance="relative", stage_contrast=True, reference="NC"),
}


def latest_run(run: Path, model: str) -> Path:
    runs = sorted(d for d in run.glob("derivatives-*") if (d / "models" / model / "rgenima.json").is_file())
    if not runs:
        raise SystemExit(f"no trained '{model}' bundle under {run}/derivatives-*: run bench_training.py first")
    return runs[-1]


def rgenima(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rgenima_app", *args], check=True)
    return time.perf_counter() - start


def recall_precision(selected: set[str], planted: set[str]) -> dict:
    hits = len(selected & planted)
    return {"selected": len(selected), "hits": hits, "recall": hits / len(planted),
            "precision": hits / len(selected) if selected else None}


def scores(analysis, planted_rois: set[str], planted_genes: set[str]) -> dict:
    """Recall/precision per disease stage (stage-specific ROIs) and for the cohort-wide stable genes."""
    stage = analysis.stage_rois
    out = {"rois": {}, "genes": {}}
    for group in ("SMC", "MCI", "AD"):
        chosen = set(stage.loc[(stage["group"] == group) & stage["selected"], "roi"])
        if (stage["group"] == group).any():
            out["rois"][group] = recall_precision(chosen, planted_rois)
    ranking = analysis.gene_ranking
    for group in ("all", "AD"):
        chosen = set(ranking.loc[(ranking["group"] == group) & ranking["stable"], "gene"])
        if (ranking["group"] == group).any():
            out["genes"][group] = recall_precision(chosen, planted_genes)
    return out


def random_reference(roi, roi_gene, gene, groups, genes, options, planted_rois, planted_genes, repeats, seed):
    """The analysis on each participant's importances permuted over ROIs and over genes."""
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(repeats):
        roi_order = np.argsort(rng.random(roi.shape), axis=1)
        gene_order = np.argsort(rng.random(gene.shape), axis=1)
        rows = np.arange(len(roi))[:, None]
        r_roi, r_gene = roi[rows, roi_order], gene[rows, gene_order]
        r_pair = roi_gene[rows[:, :, None], roi_order[:, :, None], gene_order[:, None, :]]
        analysis = analyse_cohort(r_roi, r_pair, groups, roi_names(), genes, _gwas_genes(), r_gene, options)
        runs.append(scores(analysis, planted_rois, planted_genes))
    return runs


def controls(cohort: Path, participants: list[str], options: AnalysisOptions, planted_rois: set[str],
             planted_genes: set[str], seed: int = 0) -> dict:
    """Recall/precision of the positive and the label-permuted linear control under every method of ``METHODS``."""
    from rgenima_app.analysis.controls import linear_control
    from rgenima_app.synthetic.features import cohort_features

    features = cohort_features(cohort, participants)
    out = {"participants": len(participants)}
    for name, permute in (("positive", False), ("negative", True)):
        control = linear_control(features.volumes, features.dosages, features.snp_genes, features.diagnosis,
                                 permute=permute, seed=seed)
        pairs = np.zeros((len(participants), 109, len(control.genes)))
        out[name] = {"in_sample_accuracy": control.accuracy, "C": control.C, "genes": len(control.genes)}
        for method, settings in METHODS.items():
            analysis = analyse_cohort(control.roi_importance, pairs, features.diagnosis, roi_names(), control.genes,
                                      _gwas_genes(), control.gene_importance, replace(options, **settings),
                                      snps_per_gene=control.snps_per_gene)
            out[name][method] = scores(analysis, planted_rois, planted_genes)
    return out


#: The per-participant attributions compared (inference.attribution), besides the group run's own rollout.
ATTRIBUTIONS = ("rollout", "input_gradient", "attention_gradient", "integrated_gradients")


def cohort_samples(output_dir: Path, model: str, cohort: Path, work: Path, roi_size: int, participants: list[str]):
    """The bundle's model and each participant's model input, as ``participant --model`` built it (the ROI
    patches read back from the work dir's cache)."""
    from rgenima_app.genetics.extract import panel_genotypes
    from rgenima_app.imaging.freesurfer import FreeSurferOptions
    from rgenima_app.imaging.participant import process_participant_imaging
    from rgenima_app.inference.predict import PredictionInput, build_sample
    from rgenima_app.models.bundle import load_bundle

    bundle = load_bundle(output_dir / "models" / model)
    tables = panel_genotypes(cohort / "genotypes" / "cohort.bed", bundle.snp_panel,
                             {p: _genetic_id(cohort, p) for p in participants})
    extraction = bundle.roi_extraction
    samples = []
    for p in participants:
        subject = p.removeprefix("sub-")
        imaging = process_participant_imaging(
            subject, None, next((cohort / "bids" / p / "anat").glob("*_T1w.nii*")),
            FreeSurferOptions(cohort / "freesurfer", no_reconall=True), work,
            roi_size=roi_size, mode=extraction["mode"], normalization=extraction["normalization"], device="cpu")
        samples.append(build_sample(bundle, PredictionInput(subject, None, imaging, tables[p]))[0])
    return bundle.model.eval(), samples


def attributions(model, samples, genes: list[str], methods, reference, steps: int, faithful: int, seed: int):
    """Per method: (participants x ROIs, participants x genes, participants x ROIs x genes) importances in the
    group run's gene columns, and the mean deletion/insertion faithfulness over the first ``faithful``
    participants (ROIs and genes), with a random importance as a method of its own."""
    from rgenima_app.inference.attribution import attribute
    from rgenima_app.inference.faithfulness import faithfulness

    column = {g: j for j, g in enumerate(genes)}
    found = {m: (np.zeros((len(samples), 109)), np.zeros((len(samples), len(genes))),
                 np.zeros((len(samples), 109, len(genes)))) for m in methods}
    rows: dict[str, dict[str, list[dict]]] = {m: {"roi": [], "gene": []} for m in (*methods, "random")}
    rng = np.random.default_rng(seed)
    for i, sample in enumerate(tqdm(samples, desc="attributions", unit="participant", disable=None)):
        per_method = {m: attribute(model, [sample], m, reference=reference, steps=steps)[0] for m in methods}
        for m, result in per_method.items():
            roi, gene, pair = found[m]
            roi[i] = result.roi_importance
            for k, g in enumerate(result.genes):
                if g in column:
                    gene[i, column[g]] = result.gene_importance[k]
                    pair[i, :, column[g]] = result.roi_gene[:, k]
        if i < faithful:
            for kind in ("roi", "gene"):
                values = {m: getattr(r, f"{kind}_importance") for m, r in per_method.items()}
                if any(v is None for v in values.values()):  # a participant without that modality
                    continue
                values["random"] = rng.random(len(next(iter(values.values()))))
                scored = faithfulness(model, sample, values, kind, reference, random_orders=3, seed=seed + i)
                for m, score in scored.items():
                    rows[m][kind].append(score)
    means = {m: {kind: ({k: float(np.mean([r[k] for r in runs])) for k in runs[0]} | {"participants": len(runs)}
                        if runs else None) for kind, runs in by_kind.items()} for m, by_kind in rows.items()}
    return found, means


def _genetic_id(cohort: Path, participant: str) -> str:
    table = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t", dtype=str).set_index("participant_id")
    return table.loc[participant, "genetic_id"] if "genetic_id" in table.columns else participant.removeprefix("sub-")


def summary(runs: list[dict]) -> dict:
    """Mean and range of recall/precision over the random-attention repeats."""
    out: dict = {"rois": {}, "genes": {}}
    for kind in out:
        for group in runs[0][kind]:
            values = {m: [r[kind][group][m] for r in runs if r[kind][group][m] is not None]
                      for m in ("recall", "precision")}
            out[kind][group] = {m: {"mean": float(np.mean(v)) if v else None,
                                    "min": float(np.min(v)) if v else None, "max": float(np.max(v)) if v else None}
                                for m, v in values.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("/tmp/rgenima-bench-train"),
                        help="the --out of bench_training.py")
    parser.add_argument("--model", default=MODEL, help="the bundle's name in the run (bench_training's --label-suffix "
                                                       "appended to 'bench')")
    parser.add_argument("--methods", type=lambda text: tuple(text.split(",")), default=ATTRIBUTIONS,
                        help=f"comma-separated attribution methods (default: all of {', '.join(ATTRIBUTIONS)})")
    parser.add_argument("--roi-top-k", type=int, default=10)
    parser.add_argument("--gene-top", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--random-repeats", type=int, default=10)
    parser.add_argument("--roi-size", type=int, default=16)
    parser.add_argument("--participants", choices=("test", "all"), default="test",
                        help="the held-out test participants of the training split (default) or everyone")
    parser.add_argument("--ig-steps", type=int, default=16, help="integrated gradients' path steps")
    parser.add_argument("--faithfulness-participants", type=int, default=40,
                        help="deletion/insertion curves on this many participants (the first, in label order)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="the tiny bench_training --quick run (CI)")
    parser.add_argument("--controls-only", action="store_true",
                        help="only the linear positive and negative controls on the cohort of --run (all participants)")
    args = parser.parse_args()
    if args.quick:
        args.run = quick_dir() / "training" if args.run == parser.get_default("run") else args.run
        args.roi_size, args.n_boot, args.random_repeats, args.participants = 8, 50, 1, "all"
        args.ig_steps, args.faithfulness_participants = 4, 2
    json_path = output_path(args.json, args.quick, "interpretability.json",
                            Path(__file__).parent / "results" / "interpretability.json")

    cohort = args.run / "cohort"
    truth = json.loads((cohort / "ground_truth.json").read_text())
    planted_rois, planted_genes = set(truth["planted_rois"]), set(truth["planted_genes"])
    options = AnalysisOptions(n_boot=args.n_boot, roi_top_k=args.roi_top_k, gene_top=args.gene_top)
    if args.controls_only:
        start = time.perf_counter()
        everyone = list(pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")["participant_id"])
        result = {"benchmark": "interpretability controls", "date": datetime.now().isoformat(timespec="seconds"),
                  "provenance": provenance(args.quick), "cohort": str(cohort),
                  "planted_rois": sorted(planted_rois), "planted_genes": sorted(planted_genes),
                  "settings": {"roi_top_k": args.roi_top_k, "gene_top": args.gene_top, "n_boot": args.n_boot},
                  "methods": METHODS,
                  "controls": controls(cohort, everyone, options, planted_rois, planted_genes)}
        result["seconds"] = round(time.perf_counter() - start, 1)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2, default=float))
        print(json.dumps(result, indent=2, default=float))
        return
    out = latest_run(args.run, args.model)
    config = args.run / "analysis-bench.toml"
    config.write_text(f"[analysis]\nroi_top_k = {args.roi_top_k}\ngene_top = {args.gene_top}\n"
                      f"n_boot = {args.n_boot}\n")
    common = ["--fs-subjects-dir", str(cohort / "freesurfer"), "--skip-bids-validation",
              "-w", str(args.run / "work"), "--roi-size", str(args.roi_size)]
    model = str(out / "models" / args.model)
    split = pd.read_csv(out / f"desc-{args.model}_split.tsv", sep="\t")
    chosen = split if args.participants == "all" else split[split["role"] == "test"]
    labels = sorted(chosen["participant_id"].str.removeprefix("sub-").unique())
    times = {"participant": rgenima(str(cohort / "bids"), str(out), "participant", "--model", model,
                                    "--genotypes", str(cohort / "genotypes" / "cohort.bed"),
                                    "--participant-label", *labels, *common)}
    times["participant_per_participant"] = times["participant"] / len(labels)
    times["group"] = rgenima(str(cohort / "bids"), str(out), "group", "--model", model,
                             "--train-config", str(config), *common)

    # the group run's own tables, then the same analysis on the references
    outputs = load_cohort_outputs(out, args.model)
    predictions = outputs.predictions
    diagnosis = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")["diagnosis"]
    groups = predictions["participant_id"].map(diagnosis)
    keep = (groups.map(groups.value_counts()) >= 2).to_numpy()  # as the group run: groups of 2 or more
    participants, groups = list(predictions["participant_id"][keep]), list(groups[keep])
    for name in ("roi_importance", "roi_gene", "gene_importance"):
        if getattr(outputs, name) is not None:
            setattr(outputs, name, getattr(outputs, name)[keep])
    gene = outputs.gene_importance if outputs.gene_importance is not None else outputs.roi_gene.sum(axis=1)
    rollout_analysis = analyse_cohort(outputs.roi_importance, outputs.roi_gene, groups, roi_names(), outputs.genes,
                                      _gwas_genes(), gene, options)
    group_table = pd.read_csv(out / f"desc-{args.model}_roistability.tsv", sep="\t", keep_default_na=False)
    ad_group_run = set(group_table.loc[(group_table["group"] == "AD")
                                       & (group_table["stage_specific"].astype(str) == "True"), "roi"])
    result_rollout = scores(rollout_analysis, planted_rois, planted_genes)
    snps = snps_per_gene(Path(model), list(outputs.genes))
    by_method = {"attention rollout": {}, "gradient saliency": {}}
    for method, settings in METHODS.items():
        analysis = analyse_cohort(outputs.roi_importance, outputs.roi_gene, groups, roi_names(), outputs.genes,
                                  _gwas_genes(), gene, replace(options, **settings), snps_per_gene=snps)
        by_method["attention rollout"][method] = scores(analysis, planted_rois, planted_genes)
    random_runs = random_reference(outputs.roi_importance, outputs.roi_gene, gene, groups, outputs.genes, options,
                                   planted_rois, planted_genes, args.random_repeats, seed=0)
    start = time.perf_counter()
    model, samples = cohort_samples(out, args.model, cohort, args.run / "work", args.roi_size, participants)
    # the reference of integrated gradients and of deletion: each ROI's mean RiT token over these participants
    reference = torch.stack([s.image_tokens for s in samples]).mean(0)
    found, faithful = attributions(model, samples, list(outputs.genes), args.methods, reference, args.ig_steps,
                                   min(args.faithfulness_participants, len(samples)), seed=0)
    times["attributions"] = time.perf_counter() - start
    per_attribution = {}
    for method, (roi, gene_values, pair) in found.items():
        per_attribution[method] = {"default": scores(analyse_cohort(roi, pair, groups, roi_names(), outputs.genes,
                                                                    _gwas_genes(), gene_values, options),
                                                     planted_rois, planted_genes),
                                   "by_importance_method": {}, "faithfulness": faithful[method]}
        for name, settings in METHODS.items():
            analysis = analyse_cohort(roi, pair, groups, roi_names(), outputs.genes, _gwas_genes(), gene_values,
                                      replace(options, **settings), snps_per_gene=snps)
            per_attribution[method]["by_importance_method"][name] = scores(analysis, planted_rois, planted_genes)
    per_attribution["random"] = {"default": summary(random_runs), "faithfulness": faithful["random"]}
    if "input_gradient" in per_attribution:
        by_method["gradient saliency"] = per_attribution["input_gradient"]["by_importance_method"]
    result = {
        "benchmark": "interpretability", "date": datetime.now().isoformat(timespec="seconds"),
        "provenance": provenance(args.quick),
        "run": str(out), "participants": len(participants), "participant_set": args.participants,
        "groups": pd.Series(groups).value_counts().to_dict(),
        "planted_rois": sorted(planted_rois), "planted_genes": sorted(planted_genes),
        "settings": {"roi_top_k": args.roi_top_k, "gene_top": args.gene_top, "n_boot": args.n_boot,
                     "threshold": options.roi_threshold, "gene_threshold": options.gene_threshold,
                     "random_repeats": args.random_repeats, "methods": list(args.methods),
                     "ig_steps": args.ig_steps, "faithfulness_participants": args.faithfulness_participants},
        "ad_stage_rois_of_the_group_run": sorted(ad_group_run),
        "attention_rollout": result_rollout,
        "random_attention": summary(random_runs),
        "gradient_saliency": per_attribution.get("input_gradient", {}).get("default"),
        "attribution_methods": per_attribution,
        "reference": "each ROI's mean RiT token over the analysed participants (integrated gradients, deletion); "
                     "SNP-text tokens: the padding token's embedding",
        "by_importance_method": by_method,
        "controls": controls(cohort, participants, options, planted_rois, planted_genes),
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, default=float))
    print(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
