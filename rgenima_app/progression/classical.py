"""The classical reference of the progression targets: sparse linear models on baseline ROI volumes and
SNP dosages (the stage classifier's reference, training/classical.py, adapted to the two targets).

- ΔCDR-SB: elastic-net / L1 linear regression (scikit-learn ``ElasticNet``) of the change on the
  standardised features; ``fit_delta_regression``.
- conversion: the stage reference's sparse logistic regression with the labels ("stable", "converter");
  ``fit_conversion``, which returns the probability of converting.

Both share the stage reference's machinery: features standardised with the training participants' means
and SDs (``standardize``), the penalty chosen by ``select_penalty`` on the validation participants only
(by 5-fold cross-validation inside the training participants when the split has none), the chosen
penalty refitted on the training participants and applied to the test participants. The regression's
penalty is chosen by validation mean squared error over ``alpha = alpha_max * ALPHA_FRACTIONS`` (alpha_max:
the smallest penalty that keeps every weight at zero, as in scikit-learn's path) for each l1_ratio.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from rgenima_app.progression.metrics import CONVERSION_LABELS
from rgenima_app.training.classical import L1_RATIOS, ClassicalFit, fit_classical, select_penalty, standardize

log = logging.getLogger("rgenima")

#: Penalties tried, as fractions of alpha_max (1 keeps no feature: the training mean).
ALPHA_FRACTIONS = tuple(float(a) for a in np.logspace(0.0, -3.0, 13))


@dataclass
class RegressionFit:
    """The chosen penalty, the features it kept and the test predictions of ΔCDR-SB."""

    alpha: float
    l1_ratio: float
    validation_mse: float
    n_features: int
    kept: list[str] = field(default_factory=list)       # non-zero weights, strongest first
    prediction: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"model": "linear regression, elastic-net/L1 (scikit-learn ElasticNet)", "alpha": self.alpha,
                "l1_ratio": self.l1_ratio, "selection_mse": round(self.validation_mse, 6),
                "n_features": self.n_features, "n_nonzero": len(self.kept), "strongest": self.kept[:20]}


def _fit_elastic_net(x: np.ndarray, y: np.ndarray, alpha: float, l1_ratio: float, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=5000, tol=1e-4, random_state=seed)
    with warnings.catch_warnings():  # the weakest penalties may stop at max_iter; their fit is still usable
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def fit_delta_regression(x_train: np.ndarray, y_train, x_validation: np.ndarray, y_validation, x_test: np.ndarray,
                         feature_names: list[str], seed: int) -> RegressionFit:
    """Elastic-net regression of ΔCDR-SB: penalty on validation (or inner CV), fit on training, predict test."""
    y_train, y_validation = np.asarray(y_train, float), np.asarray(y_validation, float)
    x_train, x_validation, x_test = standardize(np.asarray(x_train, float), np.asarray(x_validation, float),
                                                np.asarray(x_test, float))
    alpha_max = float(np.abs(x_train.T @ (y_train - y_train.mean())).max()) / len(y_train) or 1.0

    def validation_mse(point, x_fit, y_fit, x_score, y_score):
        alpha, l1_ratio = point
        model = _fit_elastic_net(x_fit, y_fit, alpha, l1_ratio, seed)
        return float(np.mean((model.predict(x_score) - y_score) ** 2))

    grid = [(alpha_max / l1_ratio * fraction, l1_ratio) for l1_ratio in L1_RATIOS for fraction in ALPHA_FRACTIONS]
    mse, (alpha, l1_ratio) = select_penalty(grid, validation_mse, x_train, y_train, x_validation, y_validation,
                                            seed, stratified=False)
    model = _fit_elastic_net(x_train, y_train, alpha, l1_ratio, seed)
    weight = np.abs(model.coef_)
    kept = [feature_names[i] for i in np.argsort(-weight, kind="stable") if weight[i] > 0]
    log.info("classical ΔCDR-SB reference: alpha = %.4g, l1_ratio = %.1f (validation MSE %.3f), %d of %d features",
             alpha, l1_ratio, mse, len(kept), len(feature_names))
    return RegressionFit(alpha=alpha, l1_ratio=l1_ratio, validation_mse=mse, n_features=len(feature_names),
                         kept=kept, prediction=model.predict(x_test))


def fit_conversion(x_train: np.ndarray, converted_train, x_validation: np.ndarray, converted_validation,
                   x_test: np.ndarray, feature_names: list[str], seed: int) -> tuple[np.ndarray, ClassicalFit]:
    """Sparse logistic regression of MCI-to-AD conversion; (P(converter) of each test row, the fit)."""
    def labels(converted):
        return np.array(CONVERSION_LABELS)[np.asarray(converted, dtype=bool).astype(int)]

    fit = fit_classical(x_train, labels(converted_train), x_validation, labels(converted_validation), x_test,
                        feature_names, seed, labels=CONVERSION_LABELS)
    return fit.proba[:, CONVERSION_LABELS.index("converter")], fit
