"""Gene ranking, stable genes and the one-sided Fisher enrichment test."""
from __future__ import annotations

import numpy as np
import pytest

from rgenima_app.analysis.genes import fisher_enrichment, gene_enrichment, gene_ranking

from .planted import GWAS, OPTIONS, PLANTED_GENES, make_cohort


def test_paper_enrichment_values():
    odds_ratio, p = fisher_enrichment(7, 2, 37, 59)
    assert p == pytest.approx(0.027, abs=5e-4)
    assert odds_ratio == pytest.approx(5.58, abs=5e-3)


def test_enrichment_table_builds_the_paper_2x2_from_gene_sets():
    universe = [f"G{i}" for i in range(105)]
    gwas = universe[:44] + ["OUTSIDE1", "OUTSIDE2"]
    stable = universe[:7] + universe[50:52]
    row = gene_enrichment(stable, gwas, universe).iloc[0]
    assert (row.stable_gwas, row.stable_not_gwas, row.other_gwas, row.other_not_gwas) == (7, 2, 37, 59)
    assert row.n_universe == 105 and row.n_gwas == 44 and row.gwas_outside_universe == 2
    assert row.p_value == pytest.approx(0.0272, abs=1e-4) and row.odds_ratio == pytest.approx(5.581, abs=1e-3)
    assert row.overlap_genes.split(",") == universe[:7]
    with pytest.raises(ValueError, match="NOT_A_PANEL_GENE"):
        gene_enrichment(["NOT_A_PANEL_GENE"], gwas, universe)


def test_ranking_columns_and_order():
    importance = np.tile(np.arange(10, dtype=float), (20, 1)) + np.random.default_rng(0).random((20, 10)) * 0.01
    genes = [f"G{i}" for i in range(10)]
    table = gene_ranking(importance, genes, top=3, n_boot=100, seed=0)
    assert list(table.columns) == ["group", "gene", "rank", "mean", "ci_low", "ci_high", "stability", "frequency", "stable"]
    assert list(table["gene"][:3]) == ["G9", "G8", "G7"] and table["stable"].sum() == 3
    assert gene_ranking(importance, genes, top=45, n_boot=10)["stable"].all()  # panel smaller than the top set


def test_planted_genes_recovered_and_enriched(planted_analysis):
    ranking = planted_analysis.gene_ranking
    stable = set(ranking[(ranking["group"] == "all") & ranking["stable"]]["gene"])
    recall = len(stable & set(PLANTED_GENES)) / len(PLANTED_GENES)

    random = make_cohort(effect=0.0)
    random_rank = gene_ranking(random.gene_importance, random.genes, top=OPTIONS.gene_top, n_boot=OPTIONS.n_boot,
                               seed=OPTIONS.seed)
    random_recall = len(set(random_rank[random_rank["stable"]]["gene"]) & set(PLANTED_GENES)) / len(PLANTED_GENES)
    assert recall == 1.0 and random_recall <= 0.4
    enrichment = planted_analysis.enrichment.set_index("group").loc["all"]
    assert enrichment.stable_gwas >= 4 and enrichment.p_value < 0.05
