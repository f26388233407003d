"""The cohort-level analysis in one call, and the group tables it writes.

``analyse_cohort`` takes every participant's ROI importance, ROI-gene attention and gene importance (as
arrays in canonical ROI order and panel gene order) with their diagnostic group, and returns all tables
of the group level; ``write_group_tables`` writes them (with JSON sidecars describing the columns and
the settings) into the derivatives dataset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..bids.derivatives import DerivativesWriter
from ..bids.tsv import BIDS_BOOLEAN
from .bootstrap import DEFAULT_N_BOOT, roi_gene_stability_table, roi_stability_table
from .genes import DEFAULT_GENE_THRESHOLD, DEFAULT_TOP_GENES, gene_enrichment, gene_ranking
from .importance import COHORT, DEFAULT_IMPORTANCE, DEFAULT_REFERENCE, comparable_importance, resolve_reference
from .stage_rois import DEFAULT_THRESHOLD, DEFAULT_TOP_K, DISEASE_STAGES, sharing_pattern, stage_specific_rois


@dataclass
class AnalysisOptions:
    """Settings of the group analysis (all are command-line/config options)."""

    n_boot: int = DEFAULT_N_BOOT
    seed: int = 0
    sample_size: int | None = None       # participants per resample; default: the group's size
    roi_top_k: int = DEFAULT_TOP_K
    roi_threshold: float = DEFAULT_THRESHOLD
    gene_top: int = DEFAULT_TOP_GENES
    gene_threshold: float = DEFAULT_GENE_THRESHOLD
    stages: tuple[str, ...] = DISEASE_STAGES
    group_by: str = "auto"               # "diagnosis" or "predicted" (or "auto" until resolved): recorded only
    importance: str = DEFAULT_IMPORTANCE  # what is ranked: "per_snp", "relative" or "raw" (analysis/importance.py)
    reference: str = DEFAULT_REFERENCE    # "cohort" or "NC": of relative importance and stage contrasts
    stage_contrast: bool = False          # stage-specific ROIs: stage minus reference (True) or the paper's mean


@dataclass
class GroupAnalysis:
    """Every table of the group level."""

    roi_stability: pd.DataFrame          # group, n, roi, mean, ci_low, ci_high, stability, frequency, stage_specific
    roi_gene_stability: pd.DataFrame     # group, n, roi, gene, mean, ci_low, ci_high, stability
    stage_rois: pd.DataFrame             # group, roi, mean, frequency, rank, selected
    sharing: pd.DataFrame                # roi, <stage>..., n_stages, pattern
    gene_ranking: pd.DataFrame           # group, gene, rank, mean, ci_low, ci_high, stability, frequency, stable
    enrichment: pd.DataFrame             # group, 2x2 counts, odds_ratio, p_value, ...
    options: AnalysisOptions = field(default_factory=AnalysisOptions)


def analyse_cohort(roi_importance: np.ndarray, roi_gene: np.ndarray, groups: Sequence[str],
                   roi_names: Sequence[str], genes: Sequence[str], gwas_genes: Sequence[str],
                   gene_importance: np.ndarray | None = None,
                   options: AnalysisOptions | None = None,
                   snps_per_gene: Sequence[int] | None = None) -> GroupAnalysis:
    """Bootstrap stability, stage-specific ROIs, gene ranking and enrichment for a cohort.

    Shapes: ``roi_importance`` participants x ROIs, ``roi_gene`` participants x ROIs x genes,
    ``gene_importance`` participants x genes (when None: ROI-gene attention summed over ROIs),
    ``snps_per_gene`` the panel's SNP count of each gene (for ``importance = "per_snp"``).
    Stage-specific ROIs and the gene ranking rank importance made comparable first (``options.importance``,
    analysis/importance.py); the ROI stability columns (mean, CI, stability) and ROI-gene attention are the
    paper's, on the importance as given; the gene ranking's columns are of the comparable importance.
    Genes are ranked over all participants (group ``all``, the paper's enrichment analysis) and within
    each group; the enrichment table has one row per ranking.
    """
    opts = options or AnalysisOptions()
    opts = replace(opts, reference=resolve_reference(groups, opts.reference))  # the reference actually used
    common = dict(n_boot=opts.n_boot, seed=opts.seed, sample_size=opts.sample_size)
    if gene_importance is None:
        gene_importance = np.asarray(roi_gene, dtype=float).sum(axis=1)
    roi_stab = roi_stability_table(roi_importance, groups, roi_names, **common)  # the paper's eqs. on the rollout
    ranked_rois = comparable_importance(roi_importance, groups, opts.importance, opts.reference)
    # over all participants a cohort reference has nothing to contrast: that ranking is per SNP instead
    cohort_wide = "per_snp" if opts.importance == "relative" and opts.reference == COHORT else opts.importance
    ranked_genes_all = comparable_importance(gene_importance, groups, cohort_wide, opts.reference, snps_per_gene)
    gene_importance = comparable_importance(gene_importance, groups, opts.importance, opts.reference, snps_per_gene)
    stage = stage_specific_rois(ranked_rois, groups, roi_names, k=opts.roi_top_k,
                                threshold=opts.roi_threshold, contrast=opts.reference if opts.stage_contrast else None,
                                **common)
    roi_stab = roi_stab.merge(
        stage[["group", "roi", "frequency", "selected"]].rename(columns={"selected": "stage_specific"}),
        on=["group", "roi"], how="left")
    roi_gene_stab = roi_gene_stability_table(roi_gene, groups, roi_names, genes, **common)
    ranking = pd.concat([
        gene_ranking(ranked_genes_all, genes, None, opts.gene_top, opts.gene_threshold, **common),
        gene_ranking(gene_importance, genes, groups, opts.gene_top, opts.gene_threshold, **common),
    ], ignore_index=True)
    enrichment = pd.concat([
        gene_enrichment(part.loc[part["stable"], "gene"], gwas_genes, genes, group=group)
        for group, part in ranking.groupby("group", sort=False)
    ], ignore_index=True)
    return GroupAnalysis(roi_stability=roi_stab, roi_gene_stability=roi_gene_stab, stage_rois=stage,
                         sharing=sharing_pattern(stage, opts.stages), gene_ranking=ranking,
                         enrichment=enrichment, options=opts)


def _sidecar(table: pd.DataFrame, description: str, options: AnalysisOptions, extra: dict) -> dict:
    """The caller's entries are those that name the run's settings; DerivativesWriter.write_tsv adds the other
    columns' entries from bids_spec/derivatives.yaml."""
    return {
        "Description": description,
        "Settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
        **{c: {"Description": extra[c]} for c in table.columns if c in extra},
    }


#: The group tables whose findings (stage-specific ROIs, stable genes, enrichment) depend on the model
#: having learned something: they carry the ``interpretable`` column and sidecar key.
INTERPRETED_TABLES = ("roistability", "generanking", "geneenrichment")


def write_group_tables(analysis: GroupAnalysis, output_dir: Path | str, model: str,
                       chance: dict | None = None) -> dict[str, Path]:
    """Write the group tables (TSV + JSON sidecar, atomically) into ``output_dir``; returns their paths.

    Files: ``desc-<model>_roistability``, ``_roigenestability``, ``_generanking``, ``_geneenrichment``.
    ``chance`` (``{"interpretable": True | False | None, ...}``, the model's chance checks): the tables of
    ``INTERPRETED_TABLES`` get a column ``interpretable`` (true, false, or n/a when unknown) and the
    sidecar keys ``Interpretable`` and ``ChanceCheck``: findings of a model that does not beat chance are
    still computed, and labelled as not interpretable.
    """
    out = Path(output_dir)
    writer = DerivativesWriter(out)  # the sidecars' column entries come from bids_spec/derivatives.yaml
    opts = analysis.options
    specs = {
        "roistability": (analysis.roi_stability, "Bootstrap stability of ROI importance per diagnostic group", {
            "frequency": f"Fraction of bootstrap iterations with the ROI in the top {opts.roi_top_k}" + (
                f" of the group's mean minus the {opts.reference} mean (positive differences only)"
                if opts.stage_contrast else " of the group's mean"),
            "stage_specific": f"frequency > {opts.roi_threshold}: a stage-specific ROI of the group"}),
        "roigenestability": (analysis.roi_gene_stability,
                             "Bootstrap stability of ROI-gene attention per diagnostic group", {}),
        "generanking": (analysis.gene_ranking, "Genes ranked by bootstrap frequency in the top set, then mean", {
            "frequency": f"Fraction of bootstrap iterations with the gene in the top {opts.gene_top}",
            "stable": f"frequency > {opts.gene_threshold}: a stable high-attention gene"}),
        "geneenrichment": (analysis.enrichment,
                           "One-sided Fisher exact test of stable genes vs GWAS-supported AD genes in the panel", {}),
    }
    paths = {}
    for suffix, (table, description, extra) in specs.items():
        path = out / f"desc-{model}_{suffix}.tsv"
        sidecar = _sidecar(table, description, opts, extra)
        if chance is not None and suffix in INTERPRETED_TABLES:
            flag = chance.get("interpretable")
            table = table.assign(interpretable=BIDS_BOOLEAN.get(flag, "n/a"))
            sidecar.update({"Interpretable": flag, "ChanceCheck": chance})
        paths[suffix] = writer.write_tsv(path, table, sidecar)
    return paths
