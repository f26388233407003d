"""What ``group --train`` needs for a progression target (``[target] kind = "progression" | "conversion"``).

- ``progression_cohort``: the targets read from the BIDS dataset (``progression.targets``), the training
  cohort cut to the baseline session of every participant with a target, and every other participant kept
  in a table with the reason it was excluded (never imputed);
- ``split_strata``: what the participant-disjoint split stratifies on: converter/stable, or quantile bins
  of ΔCDR-SB (equal-sized, so each has enough participants to be split);
- ``conformal_half_width``: the half-width of a split-conformal prediction interval of ΔCDR-SB from the
  validation participants' absolute residuals;
- ``evaluate_target`` and ``prediction_table``: the held-out metrics and the test predictions of one model.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app.errors import NoDataError
from rgenima_app.progression.metrics import CONVERSION_LABELS, ProgressionReport, conversion_metrics, regression_metrics
from rgenima_app.progression.targets import ProgressionTargets, load_progression_targets

log = logging.getLogger("rgenima")

#: The target table of each kind (``ProgressionTargets`` attribute) and its value column.
TARGET_COLUMNS = {"progression": ("delta", "delta_cdr_sb"), "conversion": ("conversion", "converted")}
#: Coverage of the split-conformal interval of the predicted change.
INTERVAL_COVERAGE = 0.9
#: At most this many ΔCDR-SB strata for the split, and at least this many participants in each.
DELTA_STRATA, PARTICIPANTS_PER_STRATUM = 4, 6


@dataclass
class ProgressionCohort:
    """A progression target's participants: their value (ΔCDR-SB, or 1.0 / 0.0 for converted / stable),
    their split stratum, and the table of every participant of the training cohort (included or not)."""

    kind: str
    targets: ProgressionTargets
    values: pd.Series       # participant label -> target value
    strata: pd.Series       # participant label -> split stratum
    table: pd.DataFrame     # participant_id, session, included, value, followup_session, followup_months, reason

    def summary(self) -> dict:
        """What the bundle records: kind, horizon, window, participants with a target, exclusions."""
        excluded = self.table[~self.table["included"]]
        return {"kind": self.kind, "horizon_months": self.targets.horizon_months,
                "window_months": self.targets.window_months, "n_participants": int(self.table["included"].sum()),
                "n_excluded": int(len(excluded)),
                "excluded": {str(k): int(v) for k, v in excluded["reason"].value_counts().sort_index().items()}}


def split_strata(values: pd.Series, kind: str) -> pd.Series:
    """Strata of the split: converter/stable, or equal-sized quantile bins of ΔCDR-SB (ties by label order)."""
    if kind == "conversion":
        return values.map(lambda v: CONVERSION_LABELS[int(v)])
    bins = max(2, min(DELTA_STRATA, len(values) // PARTICIPANTS_PER_STRATUM))
    ranks = values.rank(method="first")
    codes = pd.qcut(ranks, bins, labels=False) if len(values) >= bins else pd.Series(0, index=values.index)
    return codes.map(lambda c: f"delta_q{int(c) + 1}")


def progression_cohort(bids_dir: Path, kind: str, horizon_months: float, window_months: float, cohort) -> ProgressionCohort:
    """Read the target and cut ``cohort`` (``training.data.Cohort``) to the baseline sample of every
    participant who has it; participants without it are logged with their reason and counted."""
    participants = sorted({s.participant for s in cohort.samples})
    targets = load_progression_targets(bids_dir, horizon_months, window_months, participants=participants)
    attribute, column = TARGET_COLUMNS[kind]
    table = getattr(targets, attribute)
    reasons = targets.excluded[targets.excluded["target"] == ("delta_cdr_sb" if kind == "progression" else kind)]
    reason = dict(zip(reasons["participant"], reasons["reason"]))
    by_participant: dict[str, list] = {}
    for s in cohort.samples:
        by_participant.setdefault(s.participant, []).append(s)
    kept, rows = [], []
    for p in participants:
        samples = by_participant[p]
        included = p in table.index
        row = {"participant_id": f"sub-{p}", "session": "n/a", "included": included, "value": float("nan"),
               "followup_session": "n/a", "followup_months": float("nan"), "reason": reason.get(p, "n/a")}
        if included:
            target = table.loc[p]
            baseline = [s for s in samples if (s.session or None) == (target["baseline_session"] or None)
                        or (s.session is None and len(samples) == 1)]
            if not baseline:  # the model reads the baseline image: a later session alone does not do
                row.update(included=False, reason="no T1w image at the baseline session")
            else:
                kept.append(baseline[0])
                row.update(session=target["baseline_session"] or "n/a", value=float(target[column]),
                           followup_session=target["followup_session"], followup_months=float(target["followup_months"]))
        rows.append(row)
    summary = pd.DataFrame(rows)
    excluded = summary[~summary["included"]]
    if len(excluded):
        log.warning("%s target (horizon %g ± %g months): %d of %d participant(s) excluded, never imputed: %s", kind,
                    horizon_months, window_months, len(excluded), len(summary),
                    "; ".join(f"{n} {r}" for r, n in excluded["reason"].value_counts().sort_index().items()))
    if not kept:
        raise NoDataError(f"no participant has the {kind} target (horizon {horizon_months:g} ± {window_months:g} "
                          "months) and a baseline T1w image",
                          hint="the target needs a follow-up visit in the window (sessions files or phenotype/ "
                               "tables, docs/progression.md); widen [target] window_months or change horizon_months")
    cohort.samples = kept
    values = pd.Series({s.participant: float(summary.set_index("participant_id").loc[f"sub-{s.participant}", "value"])
                        for s in kept})
    return ProgressionCohort(kind, targets, values, split_strata(values, kind), summary)


def conformal_half_width(residuals: np.ndarray, coverage: float = INTERVAL_COVERAGE) -> float:
    """Split-conformal half-width: the ceil((n + 1) coverage)-th smallest absolute validation residual
    (NaN when there are too few validation participants for that coverage)."""
    residuals = np.sort(np.abs(np.asarray(residuals, float)))
    rank = math.ceil((len(residuals) + 1) * coverage)
    return float(residuals[rank - 1]) if 0 < rank <= len(residuals) else float("nan")


def evaluate_target(kind: str, true: np.ndarray, predicted: np.ndarray, n_boot: int, seed: int) -> ProgressionReport:
    """RMSE/MAE/r (ΔCDR-SB) or balanced accuracy/AUC/sensitivity/specificity (conversion), with CIs."""
    if kind == "conversion":
        return conversion_metrics(np.asarray(true) > 0.5, predicted, n_boot=n_boot, seed=seed)
    return regression_metrics(true, predicted, n_boot=n_boot, seed=seed)


def prediction_table(participants: list[str], true: np.ndarray, predicted: np.ndarray, half_width: float,
                     kind: str, fold: int, model: str) -> pd.DataFrame:
    """The test predictions of one model: observed and predicted value, and the interval of a change."""
    interval = half_width if kind == "progression" else float("nan")
    return pd.DataFrame({"model": model, "fold": fold, "participant_id": [f"sub-{p}" for p in participants],
                         "target": "delta_cdr_sb" if kind == "progression" else "conversion",
                         "observed": np.asarray(true, float), "predicted": np.asarray(predicted, float),
                         "interval_low": np.asarray(predicted, float) - interval,
                         "interval_high": np.asarray(predicted, float) + interval})
