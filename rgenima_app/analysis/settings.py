"""The group analysis's settings: the ``[analysis]`` table of ``--train-config``, checked.

``rgenima_app.config.RunConfig.analysis`` reads it (the configuration's one reader of that file).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rgenima_app.analysis.group import AnalysisOptions
from rgenima_app.analysis.importance import IMPORTANCE_METHODS, REFERENCES
from rgenima_app.errors import UsageError

# Which label defines the groups of the stability analysis; "auto" resolves per run (workflows/analyse.py).
GROUPINGS = ("auto", "diagnosis", "predicted")

ANALYSIS_KEYS = {
    "n_boot": "bootstrap resamples for stability, stage ROIs, gene ranking and metric CIs (1000)",
    "seed": "seed of every resample (default: --seed)",
    "sample_size": "participants per stability resample (default: the group's size)",
    "roi_top_k": "top-set size of stage-specific ROIs (10)",
    "roi_threshold": "top-set frequency above which an ROI is stage-specific (0.5)",
    "gene_top": "top-set size of stable genes (45)",
    "gene_threshold": "top-set frequency above which a gene is stable (0.5)",
    "group_by": "'auto' (default: diagnosis where participants.tsv has any, else predicted), 'diagnosis' "
                "(participants.tsv) or 'predicted' (the model's label); --group-by overrides it",
    "diagnosis_column": "participants.tsv column with the diagnoses ('diagnosis')",
    "ci": "confidence level of the metric intervals (0.95)",
    "importance": "what stage ROIs and genes rank: 'per_snp' (default: gene importance per SNP of the gene), "
                  "'relative' (each ROI's and gene's importance standardised against the reference) or 'raw' "
                  "(the paper's rollout, genes summed over their tokens)",
    "reference": "reference of relative importance and stage contrasts: 'cohort' (default) or 'NC'",
    "stage_contrast": "stage-specific ROIs rank the stage's mean minus the reference's (true) or the stage's own "
                      "mean (false, default, the paper)",
}


@dataclass
class CohortSettings:
    """What ``[analysis]`` sets: the analysis options plus the diagnosis column and the metric CI level."""

    options: AnalysisOptions
    diagnosis_column: str = "diagnosis"
    ci: float = 0.95


def analysis_settings(table: dict | None, source: Path | None, default_seed: int = 0,
                      group_by: str | None = None) -> CohortSettings:
    """Defaults, overridden by the ``[analysis]`` table of ``--train-config`` (``source``; unknown keys refused),
    and ``group_by`` (``--group-by``) over both."""
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise UsageError(f"--train-config {source}: 'analysis' must be a table ([analysis])")
    where = f"--train-config {source} [analysis]"
    unknown = sorted(set(table) - set(ANALYSIS_KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}",
                         hint="known keys: " + "; ".join(f"{k} ({v})" for k, v in ANALYSIS_KEYS.items()))
    values = dict(table)
    diagnosis_column = values.pop("diagnosis_column", "diagnosis")
    ci = values.pop("ci", 0.95)
    values.setdefault("seed", default_seed)
    integer = {"n_boot": 1, "seed": 0, "roi_top_k": 1, "gene_top": 1}
    for key, minimum in integer.items():
        if key in values and (isinstance(values[key], bool) or not isinstance(values[key], int) or values[key] < minimum):
            raise UsageError(f"{where}: {key} = {values[key]!r} must be a whole number >= {minimum}")
    if values.get("sample_size") is not None and (not isinstance(values["sample_size"], int) or values["sample_size"] < 1):
        raise UsageError(f"{where}: sample_size = {values['sample_size']!r} must be a whole number >= 1")
    for key in ("roi_threshold", "gene_threshold"):
        if key in values and (isinstance(values[key], bool) or not isinstance(values[key], (int, float))
                              or not 0 <= values[key] < 1):
            raise UsageError(f"{where}: {key} = {values[key]!r} must be a number in [0, 1)")
    for key, allowed in (("importance", IMPORTANCE_METHODS), ("reference", REFERENCES)):
        if key in values and values[key] not in allowed:
            raise UsageError(f"{where}: {key} = {values[key]!r}", hint=" or ".join(map(repr, allowed)))
    if "stage_contrast" in values and not isinstance(values["stage_contrast"], bool):
        raise UsageError(f"{where}: stage_contrast = {values['stage_contrast']!r} must be true or false")
    if values.get("group_by", "auto") not in GROUPINGS:
        raise UsageError(f"{where}: group_by = {values['group_by']!r}", hint=" or ".join(map(repr, GROUPINGS)))
    if group_by is not None:
        values["group_by"] = group_by
    if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not 0 < ci < 1:
        raise UsageError(f"{where}: ci = {ci!r} must be a number between 0 and 1, e.g. 0.95")
    if not isinstance(diagnosis_column, str) or not diagnosis_column:
        raise UsageError(f"{where}: diagnosis_column must be a column name")
    return CohortSettings(AnalysisOptions(**values), diagnosis_column, float(ci))
