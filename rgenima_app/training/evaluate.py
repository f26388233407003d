"""Held-out evaluation of a trained R-GenIMA: class probabilities of test samples and their metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from rgenima_app import STAGES
from rgenima_app.analysis.metrics import ChanceCheck, MetricsReport, chance_check, classification_metrics
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.training.stage2 import Stage2Item, evaluation_sample


@torch.no_grad()
def predict_items(model: RGenIMA, items: list[Stage2Item], data: str, fmt: str, batch_size: int = 8) -> np.ndarray:
    """(n, 4) probabilities of NC, SMC, MCI, AD, using every modality the data configuration uses (SNP
    text with the model's dosage separator)."""
    model.eval()
    out = []
    for i in tqdm(range(0, len(items), batch_size), desc="evaluation", unit="batch", disable=None):
        samples = [evaluation_sample(it, data, fmt, sep=model.dosage_separator) for it in items[i:i + batch_size]]
        out.append(model.answer_probabilities(samples).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(STAGES)))


def prediction_table(items: list[Stage2Item], proba: np.ndarray, fold: int, model: str) -> pd.DataFrame:
    """One row per test sample: who, true and predicted stage, probabilities."""
    table = pd.DataFrame({
        "model": model, "fold": fold,
        "sample": [it.name for it in items], "participant_id": [f"sub-{it.participant}" for it in items],
        "diagnosis": [it.diagnosis for it in items],
        "label": [STAGES[int(k)] for k in proba.argmax(axis=1)],
    })
    for k, stage in enumerate(STAGES):
        table[f"p_{stage}"] = proba[:, k]
    return table


def evaluate_probabilities(items: list[Stage2Item], proba: np.ndarray, n_boot: int, seed: int) -> MetricsReport:
    """Metrics with participant-bootstrap CIs (sessions of one participant are resampled together)."""
    return classification_metrics([it.diagnosis for it in items], proba, n_boot=n_boot, seed=seed,
                                  groups=[it.participant for it in items])


def evaluate_chance(items: list[Stage2Item], proba: np.ndarray, n_permutations: int, alpha: float,
                    seed: int) -> ChanceCheck:
    """The chance check on the test samples: majority-class rate and a label-permutation test whose unit
    is the participant (sessions keep their participant's label together)."""
    return chance_check([it.diagnosis for it in items], proba, n_permutations=n_permutations, alpha=alpha,
                        seed=seed, groups=[it.participant for it in items])
