"""Participant-disjoint splits: one stratified train/validation/test split, or stratified k-fold.

The unit of every split is the participant: all sessions of one participant fall on one side, so no
scan of a test participant (nor an augmented copy of one) is ever seen in training. Stratification is
on each participant's label: its stage, or, for the progression targets, the stratum of its target
(``progression.training.split_strata``: converter/stable, or a quantile bin of ΔCDR-SB).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rgenima_app import STAGES
from rgenima_app.errors import MissingInputError, ProcessingError

ROLES = ("train", "validation", "test")


@dataclass
class Fold:
    """One train/validation/test assignment: participant label -> role."""

    index: int
    roles: dict[str, str]

    def participants(self, role: str) -> list[str]:
        return sorted(p for p, r in self.roles.items() if r == role)


def strata_order(labels: pd.Series) -> list[str]:
    """The strata in the order they are drawn: the stages first (in STAGES order, present or not, as the
    stage splits always did), then any other labels, sorted."""
    return list(STAGES) + sorted(set(labels.dropna()) - set(STAGES))


def check_labels(labels: pd.Series, folds: int = 0) -> None:
    """Refuse label sets that cannot be split: none, one class, a class smaller than the folds."""
    labels = labels.dropna()
    if labels.empty:
        raise MissingInputError("no selected participant has a diagnosis in participants.tsv",
                          hint=f"training needs labelled participants ({', '.join(STAGES)})")
    counts = Counter(labels)
    if not set(counts) <= set(STAGES):  # a progression target's strata (progression.training.split_strata)
        if len(counts) < 2 or min(counts.values()) < max(folds, 2):
            listing = ", ".join(f"{c}: {n}" for c, n in sorted(counts.items()))
            raise ProcessingError(f"too few participants with the target for a participant-disjoint split "
                                  f"stratified on it ({listing})",
                                  hint=f"each of converter/stable (or of the ΔCDR-SB bins) needs at least "
                                       f"{max(folds, 2)} participants: add participants with follow-up visits, "
                                       "widen [target] window_months, or set [split] folds lower")
        return
    if len(counts) < 2:
        raise ProcessingError(f"all {len(labels)} labelled participants are {next(iter(counts))}; training needs "
                         "at least 2 stages", hint="add participants of other stages to participants.tsv")
    small = {stage: n for stage, n in counts.items() if n < max(folds, 2)}
    if small:
        listing = ", ".join(f"{stage}: {n} ({', '.join('sub-' + p for p in labels.index[labels == stage][:5])})"
                            for stage, n in small.items())
        raise ProcessingError(f"too few participants per stage for a participant-disjoint split: {listing}",
                         hint=f"each stage needs at least {max(folds, 2)} participants"
                              + (f" for {folds}-fold cross-validation" if folds else "")
                              + "; label more participants or set [split] folds lower")


def train_test_split(labels: pd.Series, test: float, validation: float, seed: int) -> Fold:
    """Stratified split of participants (index: label, values: stage) into train/validation/test.

    In every stage, ``round(n * test)`` participants go to test and ``round(n * validation)`` to
    validation, but at least one stays in training; test gets at least one of every stage that has
    three or more participants.
    """
    check_labels(labels)
    rng = np.random.default_rng(seed)
    roles: dict[str, str] = {}
    for stage in strata_order(labels):
        members = sorted(labels.index[labels == stage])
        if not members:
            continue
        members = [members[i] for i in rng.permutation(len(members))]
        n = len(members)
        n_test = int(round(n * test))
        if n >= 3:
            n_test = max(n_test, 1)
        n_val = int(round(n * validation)) if validation > 0 else 0
        while n_test + n_val > n - 1:  # keep at least one training participant per stage
            if n_val > 0:
                n_val -= 1
            else:
                n_test -= 1
        for i, p in enumerate(members):
            roles[p] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return Fold(0, roles)


def kfold_splits(labels: pd.Series, folds: int, validation: float, seed: int) -> list[Fold]:
    """Stratified k-fold over participants: fold k tests one k-th of every stage; a share of the rest
    (``validation``) is held out of training for early stopping."""
    check_labels(labels, folds)
    rng = np.random.default_rng(seed)
    assignment: dict[str, int] = {}
    for stage in strata_order(labels):
        members = sorted(labels.index[labels == stage])
        offset = int(rng.integers(folds))  # rotate so that small stages do not all land in fold 0
        for i, p in enumerate(members[j] for j in rng.permutation(len(members))):
            assignment[p] = (i + offset) % folds
    result = []
    for k in range(folds):
        roles = {p: "test" for p, f in assignment.items() if f == k}
        rest = labels[[p for p in labels.index if assignment[p] != k]]
        inner = train_test_split(rest, validation, 0.0, seed + k + 1) if validation > 0 else \
            Fold(k, {p: "train" for p in rest.index})
        roles.update({p: ("validation" if r == "test" else "train") for p, r in inner.roles.items()})
        result.append(Fold(k, roles))
    return result


def make_folds(labels: pd.Series, test: float, validation: float, folds: int, seed: int) -> list[Fold]:
    """``folds`` = 0: one train/validation/test split; ``folds`` >= 2: stratified k-fold."""
    labels = labels.dropna()
    if folds:
        return kfold_splits(labels, folds, validation, seed)
    return [train_test_split(labels, test, validation, seed)]


def split_table(samples: pd.DataFrame, folds: list[Fold]) -> pd.DataFrame:
    """The split as written to ``desc-<model>_split.tsv``: one row per sample and fold."""
    rows = []
    for fold in folds:
        for sample in samples.itertuples():
            rows.append({"participant_id": f"sub-{sample.participant}", "session": sample.session or "n/a",
                         "diagnosis": sample.diagnosis, "fold": fold.index,
                         "role": fold.roles.get(sample.participant, "excluded")})
    return pd.DataFrame(rows)
