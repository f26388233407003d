"""Benchmark of the bootstrap stability analysis (docs/benchmarks.md, section "Group analysis").

    PYTHONPATH=. python benchmarks/bench_bootstrap.py [--participants 500 --rois 109 --genes 100 --boot 1000]
    PYTHONPATH=. python benchmarks/bench_bootstrap.py --quick [--out /tmp/bootstrap.json]   # seconds, CI

1. Speed and memory: ROI-gene stability of participants x 109 ROIs x 100 genes with B = 1000, vectorised
   (multinomial counts @ values, chunked over features) against two per-pair baselines measured in the same
   run: the paper's procedure written as loops (per pair, per iteration: draw N participants, average), and
   a per-pair loop vectorised over the iterations. The baselines are timed on a subset of pairs and
   extrapolated to all pairs (stated in the output).
2. Recovery: fabricated attention (rgenima_app.synthetic.attention) with planted stage ROIs / genes at several
   effect sizes (planted attention + effect x the mean background attention), recall among the
   stage-specific ROIs and stable genes, against attention with no planted signal.
Writes JSON (default benchmarks/results/bootstrap.json) and prints it. ``--quick`` runs the same code on
tiny sizes (40 participants x 10 ROIs x 10 genes, B = 50; recovery with 10 per group) and writes
``$TMPDIR/rgenima-bench-quick/bootstrap.json`` unless ``--out`` is given (never benchmarks/results/).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

from _common import output_path, provenance
from rgenima_app.analysis.bootstrap import bootstrap
from rgenima_app.analysis.genes import gene_ranking
from rgenima_app.analysis.stage_rois import stage_specific_rois
from rgenima_app.synthetic import fabricate_attention


def loop_baseline(flat: np.ndarray, pairs: int, n_boot: int, seed: int) -> float:
    """The paper's procedure, literally: per pair, B times draw N values with replacement and average."""
    rng = np.random.default_rng(seed)
    n = flat.shape[0]
    start = time.perf_counter()
    for f in range(pairs):
        x = flat[:, f]
        means = np.empty(n_boot)
        for b in range(n_boot):
            means[b] = x[rng.integers(0, n, n)].mean()
        low, high = np.percentile(means, (2.5, 97.5))
        _ = means.mean() / (high - low)
    return time.perf_counter() - start


def per_pair_vectorised(flat: np.ndarray, pairs: int, n_boot: int, seed: int) -> float:
    """Per pair, all B resamples at once (an index matrix), the usual first optimisation."""
    rng = np.random.default_rng(seed)
    n = flat.shape[0]
    start = time.perf_counter()
    for f in range(pairs):
        means = flat[rng.integers(0, n, (n_boot, n)), f].mean(axis=1)
        low, high = np.percentile(means, (2.5, 97.5))
        _ = means.mean() / (high - low)
    return time.perf_counter() - start


def speed(participants: int, rois: int, genes: int, n_boot: int, loop_pairs: int, vec_pairs: int) -> dict:
    values = np.random.default_rng(0).gamma(2.0, size=(participants, rois, genes))
    n_pairs = rois * genes
    bootstrap(values[:20, :5, :5], n_boot=10)  # warm up BLAS and imports
    loop_pairs, vec_pairs = min(loop_pairs, n_pairs), min(vec_pairs, n_pairs)
    tracemalloc.start()
    start = time.perf_counter()
    result = bootstrap(values, n_boot=n_boot, seed=0)
    vectorised = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    flat = values.reshape(participants, -1)
    loop = loop_baseline(flat, loop_pairs, n_boot, 0)
    per_pair = per_pair_vectorised(flat, vec_pairs, n_boot, 0)
    loop_all, per_pair_all = loop * n_pairs / loop_pairs, per_pair * n_pairs / vec_pairs
    return {
        "shape": [participants, rois, genes], "n_pairs": n_pairs, "n_boot": n_boot,
        "vectorised_s": round(vectorised, 3),
        "vectorised_peak_mib_beyond_input": round(peak / 2**20, 1),
        "input_mib": round(values.nbytes / 2**20, 1),
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loop_baseline": {"timed_pairs": loop_pairs, "timed_s": round(loop, 3),
                          "extrapolated_all_pairs_s": round(loop_all, 1), "extrapolated": True},
        "per_pair_vectorised_baseline": {"timed_pairs": vec_pairs, "timed_s": round(per_pair, 3),
                                         "extrapolated_all_pairs_s": round(per_pair_all, 1), "extrapolated": True},
        "speedup_vs_loop": round(loop_all / vectorised, 1),
        "speedup_vs_per_pair_vectorised": round(per_pair_all / vectorised, 1),
        "finite_stability_fraction": float(np.isfinite(result.stability).mean()),
    }


PLANTED_ROIS = {
    "SMC": ["Left-Thalamus", "ctx-rh-insula", "Left-Caudate", "Left-Putamen", "ctx-rh-transversetemporal"],
    "MCI": ["Left-Thalamus", "ctx-rh-insula", "ctx-rh-temporalpole", "ctx-rh-frontalpole", "ctx-rh-transversetemporal"],
    "AD": ["Left-Thalamus", "ctx-rh-insula", "Left-Caudate", "Left-Hippocampus", "ctx-lh-entorhinal"],
}


def recovery(per_group: int, genes: int, n_boot: int, effects: tuple[float, ...], k: int, top_genes: int) -> dict:
    gene_names = [f"GENE{i:03d}" for i in range(genes)]
    planted_genes = gene_names[::max(1, genes // 9)][:9]
    sizes = {"NC": per_group, "SMC": per_group, "MCI": per_group, "AD": per_group}
    out = {"per_group": per_group, "genes": genes, "roi_top_k": k, "gene_top": top_genes,
           "n_boot": n_boot, "planted_genes": len(planted_genes)}
    for name, eff in [*((f"effect_{e:g}", e) for e in effects), ("random", 0.0)]:
        c = fabricate_attention(sizes, gene_names, PLANTED_ROIS, planted_genes, None, effect=eff, seed=1)
        stage = stage_specific_rois(c.roi_importance, c.groups, c.roi_names, k=k, n_boot=n_boot, seed=0)
        ranking = gene_ranking(c.gene_importance, gene_names, top=top_genes, n_boot=n_boot, seed=0)
        stable = set(ranking[ranking["stable"]]["gene"])
        recall = {}
        for s, rois in PLANTED_ROIS.items():
            chosen = set(stage[(stage["group"] == s) & stage["selected"]]["roi"])
            recall[f"roi_recall_{s}"] = len(chosen & set(rois)) / len(rois)
            recall[f"n_stage_rois_{s}"] = len(chosen)
        recall["gene_recall"] = len(stable & set(planted_genes)) / len(planted_genes)
        recall["n_stable_genes"] = len(stable)
        out[name] = recall
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--rois", type=int, default=109)
    parser.add_argument("--genes", type=int, default=100)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--loop-pairs", type=int, default=10, help="pairs timed for the loop baseline")
    parser.add_argument("--vec-pairs", type=int, default=200, help="pairs timed for the per-pair baseline")
    parser.add_argument("--out", type=Path, help="JSON to write (default benchmarks/results/bootstrap.json)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI); not the recorded figures")
    args = parser.parse_args()
    out = output_path(args.out, args.quick, "bootstrap.json", Path(__file__).parent / "results" / "bootstrap.json")
    if args.quick:
        args.participants, args.rois, args.genes, args.boot = 40, 10, 10, 50
        args.loop_pairs, args.vec_pairs = 2, 5
    report = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "numpy": np.__version__,
                    "threads": os.environ.get("OMP_NUM_THREADS", "default")},
        "provenance": provenance(args.quick),
        "speed": speed(args.participants, args.rois, args.genes, args.boot, args.loop_pairs, args.vec_pairs),
        "recovery": recovery(per_group=10 if args.quick else 100, genes=args.genes, n_boot=args.boot,
                             effects=(1.0, 0.3, 0.1), k=10, top_genes=5 if args.quick else 15),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
