"""The cohort-level analysis in one call, and the group tables it writes.

``analyse_cohort`` takes every participant's ROI importance, ROI-gene attention and gene importance (as
arrays in canonical ROI order and panel gene order) with their diagnostic group, and returns all tables
of the group level; ``write_group_tables`` writes them (with JSON sidecars describing the columns and
the settings) into the derivatives dataset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..bids.derivatives import DerivativesWriter
from .bootstrap import DEFAULT_N_BOOT, roi_gene_stability_table, roi_stability_table
from .genes import DEFAULT_GENE_THRESHOLD, DEFAULT_TOP_GENES, gene_enrichment, gene_ranking
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
                   options: AnalysisOptions | None = None) -> GroupAnalysis:
    """Bootstrap stability, stage-specific ROIs, gene ranking and enrichment for a cohort.

    Shapes: ``roi_importance`` participants x ROIs, ``roi_gene`` participants x ROIs x genes,
    ``gene_importance`` participants x genes (when None: ROI-gene attention summed over ROIs).
    Genes are ranked over all participants (group ``all``, the paper's enrichment analysis) and within
    each group; the enrichment table has one row per ranking.
    """
    opts = options or AnalysisOptions()
    common = dict(n_boot=opts.n_boot, seed=opts.seed, sample_size=opts.sample_size)
    roi_stab = roi_stability_table(roi_importance, groups, roi_names, **common)
    stage = stage_specific_rois(roi_importance, groups, roi_names, k=opts.roi_top_k,
                                threshold=opts.roi_threshold, **common)
    roi_stab = roi_stab.merge(
        stage[["group", "roi", "frequency", "selected"]].rename(columns={"selected": "stage_specific"}),
        on=["group", "roi"], how="left")
    roi_gene_stab = roi_gene_stability_table(roi_gene, groups, roi_names, genes, **common)
    if gene_importance is None:
        gene_importance = np.asarray(roi_gene, dtype=float).sum(axis=1)
    ranking = pd.concat([
        gene_ranking(gene_importance, genes, None, opts.gene_top, opts.gene_threshold, **common),
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
            "frequency": f"Fraction of bootstrap iterations with the ROI in the top {opts.roi_top_k}",
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
            table = table.assign(interpretable={True: "true", False: "false"}.get(flag, "n/a"))
            sidecar.update({"Interpretable": flag, "ChanceCheck": chance})
        paths[suffix] = writer.write_tsv(path, table, sidecar)
    return paths
