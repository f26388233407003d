"""Does each ROI's output token carry its own ROI? A linear probe of the frozen RiT tokens.

The LLM reads one token per ROI, and the interpretation ranks ROIs by the attention their tokens get, so a
token should stand for its ROI. For every ROI r a ridge regression from token r (D values) to ROI r's
standardised log volume is fitted on the training participants and scored (R²) on held-out participants.
The same probe aimed at another ROI's volume (token r → ROI π(r), π a fixed derangement) is the reference:
a token that only carries global information (brain size, stage) predicts other ROIs about as well as its
own. Reported as the median over ROIs of both, and per ROI.

Ridge in its dual form (N×N kernels, one per ROI, solved as one batch): cheap when participants are fewer
than the token width. Features are standardised on the training participants; the penalty is
``RIDGE`` times the mean kernel diagonal, so it does not depend on D or on the tokens' scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RIDGE = 0.1


@dataclass
class TokenProbe:
    """Held-out R² of the own-ROI and the other-ROI probes, per ROI (n_rois,)."""

    own_r2: np.ndarray
    other_r2: np.ndarray
    n_train: int
    n_eval: int

    def to_dict(self, roi_names: list[str] | None = None) -> dict:
        names = roi_names or [str(i) for i in range(len(self.own_r2))]
        return {"definition": "held-out R2 of a ridge probe from each ROI's RiT output token to the standardised "
                              "log volume of its own ROI (own) and of another ROI (other, a fixed derangement)",
                "n_train": self.n_train, "n_eval": self.n_eval,
                "median_own_r2": float(np.nanmedian(self.own_r2)),
                "median_other_r2": float(np.nanmedian(self.other_r2)),
                "own_r2": {n: round(float(v), 4) for n, v in zip(names, self.own_r2)}}

    def summary(self) -> str:
        return (f"ROI tokens: a linear probe of each token predicts its own ROI's volume with median held-out "
                f"R² {np.nanmedian(self.own_r2):.2f} (another ROI's: {np.nanmedian(self.other_r2):.2f}; "
                f"{self.n_train} training, {self.n_eval} held-out participants)")


def _standardise(train: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = train.mean(axis=1, keepdims=True), train.std(axis=1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return (train - mean) / sd, (other - mean) / sd


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray) -> np.ndarray:
    """Held-out R² of one ridge regression per ROI: x (R, N, D) -> y (R, N); returns (R,) (NaN where the
    held-out values are constant)."""
    x_train, x_eval = _standardise(x_train, x_eval)
    y_mean = y_train.mean(axis=1, keepdims=True)
    kernel = x_train @ x_train.transpose(0, 2, 1)  # (R, N, N)
    n = kernel.shape[-1]
    penalty = RIDGE * np.trace(kernel, axis1=1, axis2=2)[:, None, None] / n
    dual = np.linalg.solve(kernel + penalty * np.eye(n), (y_train - y_mean)[..., None])  # (R, N, 1)
    predicted = (x_eval @ x_train.transpose(0, 2, 1) @ dual)[..., 0] + y_mean
    residual = ((y_eval - predicted) ** 2).sum(axis=1)
    total = ((y_eval - y_eval.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return 1.0 - residual / np.where(total > 0, total, np.nan)


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation of range(n) that moves every index (n >= 2)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        if not np.any(order == np.arange(n)):
            return order


def probe_tokens(train_tokens: np.ndarray, train_log_volumes: np.ndarray, eval_tokens: np.ndarray,
                 eval_log_volumes: np.ndarray, seed: int = 0) -> TokenProbe:
    """Probe (N, R, D) tokens for (N, R) log volumes: fitted on ``train_*``, scored on ``eval_*``."""
    x_train = np.asarray(train_tokens, dtype=np.float64).transpose(1, 0, 2)
    x_eval = np.asarray(eval_tokens, dtype=np.float64).transpose(1, 0, 2)
    y_train = np.asarray(train_log_volumes, dtype=np.float64).T
    y_eval = np.asarray(eval_log_volumes, dtype=np.float64).T
    other = derangement(y_train.shape[0], seed)
    return TokenProbe(own_r2=ridge_r2(x_train, y_train, x_eval, y_eval),
                      other_r2=ridge_r2(x_train, y_train[other], x_eval, y_eval[other]),
                      n_train=x_train.shape[1], n_eval=x_eval.shape[1])
