"""Do the planted ROIs / genes rank high in the participant-level attention? (synthetic cohort)

    python benchmarks/bench_planted_attention.py COHORT OUTPUT_DIR MODEL [--k 10] [--stage AD] [--out x.json]
    PYTHONPATH=. python benchmarks/bench_planted_attention.py --quick [--out /tmp/planted_attention.json]   # CI

COHORT is a ``rgenima_app.synthetic`` cohort (``ground_truth.json``, ``bids/participants.tsv``);
OUTPUT_DIR holds ``participant --model`` outputs of the model label MODEL. For the participants of the true
stage ``--stage`` (held out and all), it reports how many planted ROIs are in the top ``k`` of the ROI
importance, against chance (k / 109 per planted ROI), and the same for the planted genes in the gene
importance; with a one-sided binomial p-value over participant × planted-ROI hits.

``--quick`` makes its own inputs in seconds and then runs the same analysis: a 4-participant ``tiny``
synthetic cohort, an *untrained* tiny R-GenIMA bundle (random weights, the cohort's SNP panel; up to two
participants of other stages marked as its training set) and ``rgenima participant --model`` on all 4,
run in this process; the stage is the first participant's. Training a model is what the full measurement
needs and takes minutes, so the quick numbers say nothing about attention: the run checks the path. It
writes ``$TMPDIR/rgenima-bench-quick/planted_attention.json`` unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from _common import REPO, output_path, provenance, quick_dir

QUICK_MODEL = "quick"


def planted_attention(cohort: Path, output_dir: Path, model: str, k: int = 10, stage: str = "AD") -> dict:
    """The benchmark's figures from a cohort's ground truth and the participant outputs of ``model``."""
    truth = json.loads((cohort / "ground_truth.json").read_text())
    planted_rois, planted_genes = set(truth["planted_rois"]), set(truth["planted_genes"])
    participants = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")
    rows = []
    for path in sorted(output_dir.glob(f"sub-*/**/sub-*_desc-{model}_predictions.tsv")):
        participant = path.name.split("_")[0]
        stem = str(path)[: -len("_predictions.tsv")]
        sidecar = json.loads(path.with_suffix(".json").read_text())
        rois = pd.read_csv(stem + "_roiattention.tsv", sep="\t").sort_values("importance", ascending=False)
        genes = pd.read_csv(stem + "_geneattention.tsv", sep="\t").sort_values("importance", ascending=False)
        rows.append({"participant": participant, "diagnosis": participants.loc[participant, "diagnosis"],
                     "held_out": sidecar["HeldOut"], "predicted": pd.read_csv(path, sep="\t")["label"].iloc[0],
                     "roi_hits": len(planted_rois & set(rois["roi"].head(k))),
                     "gene_hits": len(planted_genes & set(genes["gene"].head(k))),
                     "n_genes": len(genes)})
    table = pd.DataFrame(rows)
    result = {"k": k, "stage": stage, "participants": len(table)}
    if table.empty:
        return result
    for subset, part in (("all", table), ("held_out", table[table["held_out"]])):
        part = part[part["diagnosis"] == stage]
        if part.empty:
            continue
        n_genes = int(part["n_genes"].iloc[0])
        roi_trials, gene_trials = len(part) * len(planted_rois), len(part) * len(planted_genes)
        result[subset] = {
            "n": int(len(part)),
            "planted_rois_in_top_k_mean": float(part["roi_hits"].mean()),
            "chance_rois": len(planted_rois) * k / 109,
            "roi_p_value": float(binomtest(int(part["roi_hits"].sum()), roi_trials, k / 109,
                                           alternative="greater").pvalue),
            "planted_genes_in_top_k_mean": float(part["gene_hits"].mean()),
            "chance_genes": len(planted_genes) * k / max(n_genes, 1),
            "gene_p_value": float(binomtest(int(part["gene_hits"].sum()), gene_trials, k / max(n_genes, 1),
                                            alternative="greater").pvalue),
        }
    return result


def quick_inputs(root: Path, n_participants: int = 4, seed: int = 5) -> tuple[Path, Path, str]:
    """(cohort, participant outputs, stage): a tiny cohort and one participant run of an untrained bundle."""
    import torch

    from rgenima_app.cli import main as rgenima_main
    from rgenima_app.genetics.extract import select_panel_snps
    from rgenima_app.genetics.panel import gene_panel
    from rgenima_app.models.bundle import save_bundle, training_summary
    from rgenima_app.models.mllm import RGenIMA
    from rgenima_app.models.rit import RiT, RiTConfig
    from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm
    from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                       generate_cohort)

    cohort = root / "cohort"
    spec = PRESETS["tiny"]
    generate_cohort(cohort, GeneratorParameters(
        preset="tiny", seed=seed, n_participants=n_participants, sessions=1, grid=spec["grid"],
        voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"], planted_rois=list(DEFAULT_PLANTED_ROIS),
        planted_genes=list(DEFAULT_PLANTED_GENES)), progress=False)
    participants = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")
    stage = participants["diagnosis"].iloc[0]
    trained_on = list(participants.loc[participants["diagnosis"] != stage, "participant_id"][:2])

    roi_size, image_dim = 8, 32
    cfg = TinyLLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=128, vocab_size=1024)
    llm, tokenizer = build_tiny_llm(cfg)
    torch.manual_seed(0)
    rit = RiT(RiTConfig(roi_size=roi_size, dim=image_dim, depth=1, heads=4, patch_encoder="strided"))
    model = RGenIMA(llm, tokenizer, image_dim=image_dim, image_encoder=rit,
                    llm_description={"kind": "tiny", "tiny_config": cfg.to_dict(), "dtype": "float32"}).eval()
    bed = cohort / "genotypes" / "cohort.bed"
    panel, _ = select_panel_snps(bed, gene_panel(None, "GRCh37"))
    bundle = save_bundle(root / "models" / QUICK_MODEL, model, genome_build="GRCh37", snp_text_format="compact",
                         training=training_summary(trained_on), snp_panel=panel, name=QUICK_MODEL)
    out = root / "derivatives"
    try:
        rgenima_main([str(cohort / "bids"), str(out), "participant", "--model", str(bundle), "--genotypes", str(bed),
                      "--fs-subjects-dir", str(cohort / "freesurfer"), "--roi-size", str(roi_size),
                      "--skip-bids-validation", "--nprocs", "1", "-w", str(root / "work")])
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise SystemExit(f"rgenima participant failed (exit {exc.code})") from exc
    return cohort, out, stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cohort", type=Path, nargs="?")
    parser.add_argument("output_dir", type=Path, nargs="?")
    parser.add_argument("model", nargs="?")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--stage", default="AD")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true",
                        help="make a tiny cohort and an untrained bundle's participant outputs first (CI)")
    args = parser.parse_args()
    if args.quick:
        out = output_path(args.out, True, "planted_attention.json", None)
        root = Path(tempfile.mkdtemp(prefix="planted-", dir=quick_dir()))
        cohort, output_dir, stage = quick_inputs(root)
        result = planted_attention(cohort, output_dir, QUICK_MODEL, args.k, stage)
        result["model"] = "untrained tiny R-GenIMA (quick mode: the figures say nothing about attention)"
    else:
        if args.cohort is None or args.output_dir is None or args.model is None:
            parser.error("COHORT, OUTPUT_DIR and MODEL are required (or --quick)")
        out = args.out
        result = planted_attention(args.cohort, args.output_dir, args.model, args.k, args.stage)
    result["provenance"] = provenance(args.quick)
    print(json.dumps(result, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
