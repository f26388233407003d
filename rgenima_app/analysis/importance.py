"""Importance that compares across ROIs and genes: what the group analysis ranks (``[analysis] importance``).

Attention rollout of a causal LM is not comparable across positions: early tokens collect attention
whatever they hold (a position effect), and a gene's importance is summed over its SNP-text tokens, so long
gene blocks win whatever the model reads. Ranking raw means therefore finds large, early ROIs and long gene
blocks in every stage (docs/benchmarks.md, "Group analysis"). The methods:

* ``raw`` (the paper's): ROI importance as the rollout gives it, gene importance summed over the gene's tokens;
* ``per_snp`` (the default): gene importance divided by the gene's number of SNPs in the model's panel (an ROI
  is one token, so ROI importance is as given);
* ``relative``: every feature's importance standardised against the *reference* participants
  (the NC group, or the whole cohort): (x - reference mean) / SD of all participants, per feature. 0 means "as in the
  reference", 1 "one SD more". A position or size effect the model applies to everyone (a constant
  factor or offset per feature) cancels, and so does the number of SNPs of a gene. A ratio to the reference
  mean was tried first and rejected: features the reference hardly attends to get huge, noisy ratios.

Why ``per_snp`` is the default and ``relative`` is not: through the linear controls (analysis/controls.py,
docs/benchmarks.md) ``relative`` importance ranks what *differs* between groups, which loses features a model
uses for every stage (the positive control weighs the hippocampus for NC as much as for AD) and finds the
planted ROIs in a label-permuted model (its importance follows the input's group differences). ``relative``
removes a position effect only where the model's position effect is the same for everyone.

With the NC reference a group's mean relative importance is its standardised difference from NC, so the
cohort-wide gene ranking (group ``all``) ranks genes by how much more the cohort attends to them than NC
does; with the ``cohort`` reference that ranking is all zeros, and only the per-group rankings mean anything.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

log = logging.getLogger("rgenima")

IMPORTANCE_METHODS = ("per_snp", "relative", "raw")
DEFAULT_IMPORTANCE = "per_snp"
#: The reference of ``relative`` importance and of stage contrasts: a group name, or the whole cohort.
REFERENCES = ("cohort", "NC")
DEFAULT_REFERENCE = "cohort"
COHORT = "cohort"


def resolve_reference(groups: Sequence[str], reference: str, min_size: int = 2) -> str:
    """``reference`` when it is ``cohort`` or a group with at least ``min_size`` participants; otherwise
    ``cohort``, with a warning (a cohort without NC participants has no NC reference)."""
    if reference == COHORT:
        return COHORT
    size = int(np.sum(np.asarray(groups, dtype=object) == reference))
    if size >= min_size:
        return reference
    log.warning("the reference group %s has %d participant(s) (fewer than %d): importance and stage contrasts "
                "are relative to the whole cohort instead", reference, size, min_size)
    return COHORT


def reference_rows(groups: Sequence[str], reference: str) -> np.ndarray:
    """Boolean mask of the reference participants (every participant for ``cohort``)."""
    labels = np.asarray(groups, dtype=object)
    return np.ones(len(labels), dtype=bool) if reference == COHORT else labels == reference


def per_snp(gene_importance: np.ndarray, snps_per_gene: Sequence[int]) -> np.ndarray:
    """Gene importance (participants x genes) divided by each gene's number of SNPs (at least 1)."""
    units = np.maximum(np.asarray(snps_per_gene, dtype=float), 1.0)
    values = np.asarray(gene_importance, dtype=float)
    if values.shape[-1] != len(units):
        raise ValueError(f"{len(units)} SNP counts for {values.shape[-1]} genes")
    return values / units


def relative_to(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` (participants x features...) standardised by the mean and SD of the ``rows`` participants.

    A feature constant in the reference (SD 0) is only centred: there is no spread to measure in.
    """
    values = np.asarray(values, dtype=float)
    sd = values.std(axis=0)  # of every participant: a reference SD near 0 would blow up its noise
    return (values - values[np.asarray(rows, dtype=bool)].mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def comparable_importance(values: np.ndarray, groups: Sequence[str], method: str, reference: str,
                          snps_per_gene: Sequence[int] | None = None) -> np.ndarray:
    """``values`` (participants x features) as ``method`` ranks them; ``snps_per_gene`` marks gene importance.

    ``reference`` must be resolved (:func:`resolve_reference`). ``per_snp`` without SNP counts (a bundle without
    a SNP panel) leaves gene importance as it is.
    """
    if method not in IMPORTANCE_METHODS:
        raise ValueError(f"importance method {method!r}: one of {', '.join(IMPORTANCE_METHODS)}")
    values = np.asarray(values, dtype=float)
    if method == "raw":
        return values
    if method == "per_snp":
        return per_snp(values, snps_per_gene) if snps_per_gene is not None else values
    return relative_to(values, reference_rows(groups, reference))
