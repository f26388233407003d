"""The genetic part of the synthetic cohorts' stage liability, where cohort.py and progression.py both need it."""
from __future__ import annotations

import numpy as np


def missing_call_combinations(dosage_row: np.ndarray, betas: np.ndarray,
                              freqs: np.ndarray) -> list[tuple[float, float]]:
    """(genetic score, probability) of each genotype combination of one sample's missing causal calls (HWE).

    The genetic score sum_j beta_j (g_j - 2 p_j) is the liability's mean; with no missing call there is
    one combination of probability 1."""
    missing = np.flatnonzero(np.isnan(dosage_row))
    known = np.nansum(betas * (dosage_row - 2 * freqs)) if len(dosage_row) else 0.0
    combos = [((), 1.0)]
    for j in missing:  # enumerate genotypes of the (few) missing causal calls
        p = freqs[j]
        combos = [(c + ((j, g),), w * pg) for c, w in combos
                  for g, pg in ((0, (1 - p) ** 2), (1, 2 * p * (1 - p)), (2, p ** 2))]
    return [(known + sum(betas[j] * (g - 2 * freqs[j]) for j, g in combo), weight) for combo, weight in combos]
