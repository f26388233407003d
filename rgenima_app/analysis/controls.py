"""Controls of the interpretation: importances known to fall on the truth (positive) or on nothing (negative).

The group analysis (stage-specific ROIs, stable genes) is only evidence when it recovers what a model
demonstrably uses and does not recover what a model cannot have learned. The controls are a multinomial
logistic regression on standardised ROI volumes and SNP dosages (L2 penalty chosen by 5-fold cross-validated
log-loss): fitted on the true stages it is the *positive* control, fitted on permuted stages the *negative*
control. A participant's importance of feature j is its contribution to the logit of the predicted stage c,
|w_cj * (z_j - mean z_j)| (coefficient times the deviation from the cohort mean; z standardised), so it is
large exactly where the model's weight meets a participant who deviates. An ROI is one feature; a gene's
importance is the sum over its SNPs (as rollout sums a gene's tokens), so gene length matters as it does
for the model, and the analysis's ``importance`` setting has to undo it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass
class LinearControl:
    roi_importance: np.ndarray    # participants x ROIs
    gene_importance: np.ndarray   # participants x genes
    genes: list[str]
    snps_per_gene: list[int]
    accuracy: float               # in-sample accuracy on the labels it was fitted to
    C: float


def linear_control(volumes: np.ndarray, dosages: np.ndarray, snp_genes: Sequence[str], stages: Sequence[str],
                   permute: bool = False, seed: int = 0) -> LinearControl:
    """Fit the control on ``volumes`` (participants x ROIs) and ``dosages`` (participants x SNPs) and return
    per-participant importances; ``permute`` fits it to a random permutation of ``stages`` (negative control)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV

    x = np.hstack([np.asarray(volumes, float), np.asarray(dosages, float)])
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    y = np.asarray(stages, dtype=object)
    if permute:
        y = np.random.default_rng(seed).permutation(y)
    folds = int(max(2, min(5, np.unique(y, return_counts=True)[1].min())))  # a small cohort has small stages
    model = LogisticRegressionCV(Cs=np.logspace(-3, 1, 7), cv=folds, scoring="neg_log_loss", max_iter=3000,
                                 random_state=seed, l1_ratios=(0.0,), use_legacy_attributes=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(z, y)
    predicted = model.predict(z)
    weight = model.coef_[np.searchsorted(model.classes_, predicted)]   # the predicted stage's weights
    contribution = np.abs(weight * z)
    n_rois = np.shape(volumes)[1]
    genes = list(dict.fromkeys(snp_genes))
    owner = np.array([genes.index(g) for g in snp_genes])
    gene_importance = np.zeros((len(z), len(genes)))
    np.add.at(gene_importance.T, owner, contribution[:, n_rois:].T)
    return LinearControl(roi_importance=contribution[:, :n_rois], gene_importance=gene_importance, genes=genes,
                         snps_per_gene=list(np.bincount(owner, minlength=len(genes))),
                         accuracy=float(np.mean(predicted == np.asarray(stages, dtype=object))),
                         C=float(np.atleast_1d(model.C_)[0]))
