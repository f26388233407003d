"""Gene ranking by attention importance, stable genes, and their enrichment for GWAS-supported AD genes.

Stable genes (paper section 2.2): bootstrap the participants' gene importance (B = 1000), rank the genes
in each replicate, and keep the genes in the top ``top`` (paper: 45 of 105) in more than half of the
replicates. Enrichment: a one-sided Fisher exact test ("greater") of the 2x2 table

                    GWAS-supported   not GWAS
    stable               a               b
    not stable           c               d

within the panel's gene universe (paper: [[7, 2], [37, 59]] -> P = 0.027, OR = 5.58).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from .bootstrap import DEFAULT_N_BOOT, bootstrap, bootstrap_by_group, summarize_replicates
from .stage_rois import stable_features

DEFAULT_TOP_GENES = 45
DEFAULT_GENE_THRESHOLD = 0.5


def _ranking(names: Sequence[str], replicates: np.ndarray, top: int, threshold: float) -> pd.DataFrame:
    k = min(top, replicates.shape[1])  # a panel smaller than ``top`` keeps every gene in the top set
    table = stable_features(names, replicates, k, threshold).rename(columns={"name": "gene"})
    _, low, high, stab = summarize_replicates(replicates)
    by_name = pd.DataFrame({"gene": list(names), "ci_low": low, "ci_high": high, "stability": stab})
    table = table.merge(by_name, on="gene", how="left")
    table = table.rename(columns={"selected": "stable"})
    return table[["gene", "rank", "mean", "ci_low", "ci_high", "stability", "frequency", "stable"]]


def gene_ranking(gene_importance: np.ndarray, genes: Sequence[str], groups: Sequence[str] | None = None,
                 top: int = DEFAULT_TOP_GENES, threshold: float = DEFAULT_GENE_THRESHOLD,
                 n_boot: int = DEFAULT_N_BOOT, seed: int = 0, sample_size: int | None = None) -> pd.DataFrame:
    """Rank genes by bootstrap mean importance and mark the stable ones.

    ``gene_importance`` is participants x genes. With ``groups`` the ranking is per group (a ``group``
    column); without, over all participants (group ``all``, as the paper's enrichment analysis).
    Columns: group, gene, rank, mean, ci_low, ci_high, stability, frequency (in the top set), stable.
    """
    gene_importance = np.asarray(gene_importance, dtype=float)
    if gene_importance.ndim != 2 or gene_importance.shape[1] != len(genes):
        raise ValueError(f"gene importance must be participants x {len(genes)} genes, got {gene_importance.shape}")
    if groups is None:
        results = {"all": bootstrap(gene_importance, n_boot, seed, "all", sample_size, keep_replicates=True)}
    else:
        results = bootstrap_by_group(gene_importance, groups, n_boot, seed, sample_size, keep_replicates=True)
    frames = []
    for group, res in results.items():
        table = _ranking(genes, res.replicates, top, threshold)
        table.insert(0, "group", group)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def fisher_enrichment(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """One-sided ("greater") Fisher exact test of [[a, b], [c, d]]: (odds ratio, p)."""
    result = fisher_exact([[a, b], [c, d]], alternative="greater")
    return float(result.statistic), float(result.pvalue)


def gene_enrichment(stable_genes: Iterable[str], gwas_genes: Iterable[str], universe: Iterable[str],
                    group: str = "all") -> pd.DataFrame:
    """``desc-<model>_geneenrichment.tsv``: one row with the 2x2 counts, odds ratio and one-sided p.

    Only genes of ``universe`` (the panel) count; GWAS genes outside it are left out and counted in
    ``gwas_outside_universe``. Stable genes outside the universe are an error (they cannot come from
    this panel).
    """
    universe = list(dict.fromkeys(universe))
    in_universe = set(universe)
    stable = [g for g in dict.fromkeys(stable_genes)]
    stray = [g for g in stable if g not in in_universe]
    if stray:
        raise ValueError(f"stable genes not in the gene universe: {', '.join(stray)}")
    gwas_all = set(gwas_genes)
    gwas = gwas_all & in_universe
    stable_set = set(stable)
    a = len(stable_set & gwas)
    b = len(stable_set - gwas)
    c = len(gwas - stable_set)
    d = len(universe) - a - b - c
    odds_ratio, p_value = fisher_enrichment(a, b, c, d)
    return pd.DataFrame([{
        "group": group,
        "n_universe": len(universe), "n_stable": len(stable_set), "n_gwas": len(gwas),
        "stable_gwas": a, "stable_not_gwas": b, "other_gwas": c, "other_not_gwas": d,
        "odds_ratio": odds_ratio, "p_value": p_value, "alternative": "greater",
        "stable_genes": ",".join(g for g in universe if g in stable_set),
        "overlap_genes": ",".join(g for g in universe if g in stable_set and g in gwas),
        "gwas_outside_universe": len(gwas_all - in_universe),
    }])
