"""The classical reference of every training run: sparse multinomial logistic regression.

It reads what R-GenIMA reads, as plain numbers: the 109 ROI volumes (when the data configuration has
images) and the dosages of every QC'd panel SNP (when it has genotypes) (not only the screened ones: the L1 penalty does its own
selection). Features are standardised with the training participants' means and SDs. The penalty
(``C`` and the elastic-net mix ``l1_ratio``) is chosen on the validation participants by their log-loss
(by 5-fold cross-validation inside the training participants when the split has no validation set),
the chosen model is the one fitted on the training participants, and it is evaluated on exactly
R-GenIMA's test participants. It is the bar every deep model must clear (docs/training.md).
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from rgenima_app import STAGES
from rgenima_app.imaging.roi_table import roi_names

log = logging.getLogger("rgenima")

NAME = "sparse_logistic"
#: Penalties tried: inverse strengths C, and pure L1 or an even elastic-net mix.
C_GRID = tuple(float(c) for c in np.logspace(-2.5, 1.0, 8))
L1_RATIOS = (1.0, 0.5)


@dataclass
class ClassicalFit:
    """The chosen penalty, the features it kept and its test probabilities."""

    C: float
    l1_ratio: float
    validation_log_loss: float
    n_features: int
    kept: list[str] = field(default_factory=list)       # features with a non-zero weight, strongest first
    proba: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"model": "multinomial logistic regression, elastic-net/L1 (scikit-learn, saga)",
                "C": self.C, "l1_ratio": self.l1_ratio, "selection_log_loss": round(self.validation_log_loss, 6),
                "n_features": self.n_features, "n_nonzero": len(self.kept), "strongest": self.kept[:20]}


def _fit(x: np.ndarray, y: np.ndarray, C: float, l1_ratio: float, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", max_iter=3000, tol=1e-3, random_state=seed)
    with warnings.catch_warnings():  # the weakest penalties may stop at max_iter; their fit is still usable
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _proba(model, x: np.ndarray, labels=STAGES) -> np.ndarray:
    """(n, len(labels)) probabilities in ``labels`` order (a label absent from training gets 0)."""
    out = np.zeros((len(x), len(labels)))
    out[:, [list(labels).index(c) for c in model.classes_]] = model.predict_proba(x)
    return out


def _log_loss(y: np.ndarray, proba: np.ndarray, labels=STAGES) -> float:
    picked = proba[np.arange(len(y)), [list(labels).index(s) for s in y]]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Every array standardised with the training rows' means and SDs (no information from the others)."""
    mean, sd = train.mean(axis=0), train.std(axis=0)
    sd[sd == 0] = 1.0  # a constant feature stays 0 everywhere
    return [(a - mean) / sd for a in (train, *others)]


def _selection_splits(y_train: np.ndarray, n_validation: int, seed: int, stratified: bool = True):
    """(fit rows, score rows) pairs: the validation set (None, None), or 5 folds of the training rows
    (stratified by label for a classifier)."""
    if n_validation:
        yield None, None
        return
    from sklearn.model_selection import KFold, StratifiedKFold

    if not stratified:
        if len(y_train) < 4:
            raise ValueError("too few training participants to choose the penalty")
        yield from KFold(min(5, len(y_train) // 2), shuffle=True, random_state=seed).split(np.zeros(len(y_train)))
        return
    folds = min(5, int(np.bincount(np.unique(y_train, return_inverse=True)[1]).min()))
    if folds < 2:
        raise ValueError("too few training participants per stage to choose the penalty")
    yield from StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y_train)), y_train)


def select_penalty(grid, loss, x_train: np.ndarray, y_train: np.ndarray, x_validation: np.ndarray,
                   y_validation: np.ndarray, seed: int, stratified: bool = True) -> tuple[float, object]:
    """(loss, grid point) of the penalty with the lowest ``loss(point, x_fit, y_fit, x_score, y_score)``:
    scored on the validation rows, or averaged over inner folds of the training rows when there are none.
    The test rows never reach this function. Ties keep the first point of ``grid``."""
    best = None
    for point in grid:
        losses = []
        for fit_rows, score_rows in _selection_splits(y_train, len(y_validation), seed, stratified):
            if fit_rows is None:
                losses.append(loss(point, x_train, y_train, x_validation, y_validation))
            else:
                losses.append(loss(point, x_train[fit_rows], y_train[fit_rows], x_train[score_rows],
                                   y_train[score_rows]))
        value = float(np.mean(losses))
        if best is None or value < best[0] - 1e-9:
            best = (value, point)
    return best


def fit_classical(x_train: np.ndarray, y_train, x_validation: np.ndarray, y_validation, x_test: np.ndarray,
                  feature_names: list[str], seed: int, labels=STAGES) -> ClassicalFit:
    """Choose the penalty on validation (or inner CV), fit on training rows, predict the test rows.

    ``labels``: the classes, in the column order of the test probabilities (the stages by default; the
    conversion target uses ("stable", "converter"))."""
    y_train, y_validation = np.asarray(y_train), np.asarray(y_validation)
    x_train, x_validation, x_test = standardize(np.asarray(x_train, float), np.asarray(x_validation, float),
                                                np.asarray(x_test, float))

    def validation_log_loss(point, x_fit, y_fit, x_score, y_score):
        C, l1_ratio = point
        return _log_loss(y_score, _proba(_fit(x_fit, y_fit, C, l1_ratio, seed), x_score, labels), labels)

    grid = [(C, l1_ratio) for l1_ratio in L1_RATIOS for C in C_GRID]
    loss, (C, l1_ratio) = select_penalty(grid, validation_log_loss, x_train, y_train, x_validation, y_validation,
                                         seed)
    model = _fit(x_train, y_train, C, l1_ratio, seed)
    weight = np.abs(model.coef_).max(axis=0)
    kept = [feature_names[i] for i in np.argsort(-weight, kind="stable") if weight[i] > 0]
    log.info("classical reference: C = %.4g, l1_ratio = %.1f (validation log-loss %.3f), %d of %d features kept",
             C, l1_ratio, loss, len(kept), len(feature_names))
    return ClassicalFit(C=C, l1_ratio=l1_ratio, validation_log_loss=loss, n_features=len(feature_names),
                        kept=kept, proba=_proba(model, x_test, labels))


def features(samples, tables: dict, with_images: bool, with_genes: bool) -> tuple[np.ndarray, list[str]]:
    """(n_samples, n_features) and the feature names: ROI volumes (with images), then QC'd SNP dosages
    (with genes)."""

    first = tables[samples[0].participant]
    names = ([f"volume:{r}" for r in roi_names()] if with_images else []) + \
        ([f"dosage:{snp} ({gene})" for snp, gene in zip(first["snp"], first["gene"])] if with_genes else [])
    rows = []
    for s in samples:
        parts = ([np.asarray(s.volumes_mm3, float)] if with_images else []) + \
            ([tables[s.participant]["dosage"].to_numpy(float)] if with_genes else [])
        rows.append(np.concatenate(parts))
    return np.stack(rows), names


def train_classical(train, validation, test, tables: dict, *, with_images: bool, with_genes: bool = True,
                    seed: int) -> ClassicalFit:
    """The classical reference on a fold's samples (``CohortSample``: volumes and participant) and the
    QC'd panel tables (participant -> table); test probabilities in the order of ``test``."""
    x_train, names = features(train, tables, with_images, with_genes)
    x_validation = features(validation, tables, with_images, with_genes)[0] if validation else \
        np.zeros((0, len(names)))
    x_test = features(test, tables, with_images, with_genes)[0]
    stage = lambda samples: [s.diagnosis for s in samples]  # noqa: E731
    return fit_classical(x_train, stage(train), x_validation, stage(validation), x_test, names, seed)
