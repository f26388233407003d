"""The end of a training fold with a progression target (``[target] kind = "progression" | "conversion"``),
and the run's progression outputs.

``workflows/train.py`` trains the fold exactly as for the stage (RiT, tokens, connector + LLM), with the
progression target's prompt and head (``RGenIMA.set_target``); here the fold is evaluated: R-GenIMA's test
predictions and the classical reference (``progression.classical``, on the fold's baseline ROI volumes and
QC'd SNP dosages, penalty on the validation participants) on the same test participants, the metrics with
participant-bootstrap CIs, the predicted change with a split-conformal interval (from the validation
participants' residuals), and the bundle, which records the target, its horizon and window and the
exclusions. Outputs: ``desc-<m>_targets.tsv`` (every participant: its target or why it has none),
``desc-<m>_progressionevaluation.tsv`` and ``desc-<m>_progressionpredictions.tsv``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.bids.tsv import BIDS_BOOLEAN, read_tsv, to_tsv
from rgenima_app.progression.classical import fit_conversion, fit_delta_regression
from rgenima_app.progression.metrics import ProgressionReport
from rgenima_app.progression.training import (
    INTERVAL_COVERAGE,
    ProgressionCohort,
    conformal_half_width,
    evaluate_target,
    prediction_table,
)
from rgenima_app.training.classical import features
from rgenima_app.training.stage2 import evaluation_sample

log = logging.getLogger("rgenima")

#: The classical reference's name in the outputs, per target.
CLASSICAL = {"progression": "sparse_linear", "conversion": "sparse_logistic"}
HEADLINE = {"progression": "rmse", "conversion": "auc"}


def predict_targets(model, items, data: str, fmt: str, batch_size: int) -> np.ndarray:
    """R-GenIMA's predicted change (or probability of converting) of each item, in order."""
    out = []
    for i in range(0, len(items), batch_size):
        chunk = [evaluation_sample(it, data, fmt, sep=model.dosage_separator) for it in items[i:i + batch_size]]
        out.append(model.predict_targets(chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def classical_reference(progression: ProgressionCohort, train, validation, test, qc_tables: dict, *,
                        with_images: bool, with_genes: bool, seed: int):
    """The sparse linear reference of the target: (validation predictions, test predictions, fit record)."""
    x_train, names = features(train, qc_tables, with_images, with_genes)
    x_validation = features(validation, qc_tables, with_images, with_genes)[0] if validation else \
        np.zeros((0, len(names)))
    x_test = features(test, qc_tables, with_images, with_genes)[0]
    y = lambda samples: progression.values[[s.participant for s in samples]].to_numpy()  # noqa: E731
    # the validation rows choose the penalty; predicting them again, with the test rows, gives the conformal residuals
    x_held_out = np.vstack([x_validation, x_test])
    if progression.kind == "progression":
        fit = fit_delta_regression(x_train, y(train), x_validation, y(validation), x_held_out, names, seed)
        predicted, record = fit.prediction, fit.to_dict()
    else:
        predicted, fit = fit_conversion(x_train, y(train) > 0.5, x_validation, y(validation) > 0.5, x_held_out,
                                        names, seed)
        record = fit.to_dict()
    return predicted[:len(x_validation)], predicted[len(x_validation):], record


def finish_fold(*, progression: ProgressionCohort, settings, config, fold, bundle_name: str, model, items_of,
                samples_of, roles: dict, fold_genes, curves: dict, state_dir: Path, save) -> dict:
    """Evaluate R-GenIMA and the classical reference on the fold's test participants, write the bundle
    (through ``save(metrics, notes)``) and return the fold's result."""
    kind, data, fmt = progression.kind, settings.data, settings.genetics.snp_text_format
    batch = settings.stage2.eval_batch_size
    test_items, validation_items = items_of(roles["test"]), items_of(roles["validation"])
    truth = lambda items: np.array([it.target for it in items], float)  # noqa: E731
    test_true = truth(test_items)
    predictions = {bundle_name: (predict_targets(model, validation_items, data, fmt, batch),
                                 predict_targets(model, test_items, data, fmt, batch))}
    reference = classical_reference(progression, samples_of(roles["train"]), samples_of(roles["validation"]),
                                    samples_of(roles["test"]), fold_genes.qc_tables,
                                    with_images=data != "gene", with_genes=data != "image", seed=config.seed)
    predictions[CLASSICAL[kind]] = reference[:2]
    reports, tables = [], []
    for name, (validation_predicted, test_predicted) in predictions.items():
        report = evaluate_target(kind, test_true, test_predicted, n_boot=1000, seed=config.seed)
        half_width = conformal_half_width(truth(validation_items) - validation_predicted) \
            if kind == "progression" else float("nan")
        reports.append((name, report))
        tables.append(prediction_table([it.participant for it in test_items], test_true, test_predicted,
                                       half_width, kind, fold.index, name))
        log.info("fold %d: %s test %s %.3f (%d participants)", fold.index, name, HEADLINE[kind],
                 report.value(HEADLINE[kind]), len(test_items))
    metrics = {"target": progression.summary(), "test": reports[0][1].to_dict(), "n_test": len(test_items),
               "classical_reference": {CLASSICAL[kind]: reports[1][1].to_dict(), "fit": reference[2]},
               "interval": {"method": "split conformal, validation absolute residuals",
                            "coverage": INTERVAL_COVERAGE} if kind == "progression" else None}
    result = {"fold": fold.index, "reports": reports, "predictions": pd.concat(tables, ignore_index=True),
              "curves": curves, "bundle": config.output_dir / "models" / bundle_name}
    save_result(state_dir / "result", result)  # before the bundle: a bundle always has its result
    save(metrics, card_notes(progression, reports, len(test_items)))
    return result


def card_notes(progression: ProgressionCohort, reports: list[tuple[str, ProgressionReport]], n_test: int) -> str:
    """The model card's held-out figures of a progression model beside the classical reference's."""
    s = progression.summary()
    what = "ΔCDR-SB" if progression.kind == "progression" else "MCI-to-AD conversion"
    lines = [f"Target: {what} at {s['horizon_months']:g} ± {s['window_months']:g} months from the baseline visit "
             f"(docs/progression.md); {s['n_participants']} participants with the target, {s['n_excluded']} "
             f"excluded (never imputed): {json.dumps(s['excluded'])}.", "",
             f"Held-out test set: {n_test} participants (participant-disjoint split).", "",
             "| metric | " + " | ".join(name for name, _ in reports) + " |", "|---|" + "---|" * len(reports)]
    for metric in reports[0][1].table["metric"]:
        cells = []
        for _, report in reports:
            row = report.table.set_index("metric").loc[metric]
            cells.append("n/a" if pd.isna(row["value"]) else
                         f"{row['value']:.3f} ({row['ci_low']:.3f}–{row['ci_high']:.3f})")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_result(directory: Path, result: dict) -> None:
    """A progression fold's evaluation in the work dir, so that a rerun rewrites the outputs without training."""
    directory.mkdir(parents=True, exist_ok=True)
    to_tsv(result["predictions"], directory / "testpredictions.tsv")
    (directory / "result.json").write_text(json.dumps(
        {"fold": result["fold"], "target": True, "curves": result["curves"],
         "reports": [[name, {"table": r.table.to_dict("list"), "n": r.n, "n_boot": r.n_boot, "ci": r.ci}]
                     for name, r in result["reports"]]}, default=str))


def load_result(directory: Path, bundle: Path) -> dict:
    saved = json.loads((directory / "result.json").read_text())
    reports = [(name, ProgressionReport(table=pd.DataFrame(r["table"]), n=r["n"], n_boot=r["n_boot"], ci=r["ci"]))
               for name, r in saved["reports"]]
    return {"fold": saved["fold"], "reports": reports, "curves": saved["curves"], "bundle": bundle,
            "predictions": read_tsv(directory / "testpredictions.tsv")}


def is_progression_result(directory: Path) -> bool:
    return bool(json.loads((directory / "result.json").read_text()).get("target"))


TARGETS_SIDECAR = {"Description": "The training run's progression target per participant: its value, or why the "
                                  "participant has none (excluded from training and evaluation, never imputed)"}
EVALUATION_SIDECAR = {"Description": "Held-out (test-set) metrics of a progression target, with participant-bootstrap "
                                     "95% CIs; one row per model (R-GenIMA and the classical reference), fold and metric"}
PREDICTIONS_SIDECAR = {"Description": "Predictions of the held-out test participants of each fold (training-time "
                                      "evaluation): the predicted change with its split-conformal interval, or the "
                                      "probability of converting"}


def target_name(kind: str) -> str:
    return "delta_cdr_sb" if kind == "progression" else "conversion"


def write_targets(writer: DerivativesWriter, label: str, settings, progression: ProgressionCohort) -> None:
    """desc-<label>_targets.tsv: every participant of the training cohort, its target or why it has none."""
    table = progression.table.copy()
    table["included"] = table["included"].map(BIDS_BOOLEAN)
    table.insert(2, "target", target_name(progression.kind))
    table["horizon_months"], table["window_months"] = settings.target.horizon_months, settings.target.window_months
    writer.write_tsv(writer.path(None, desc=label, suffix="targets", extension=".tsv"), table, TARGETS_SIDECAR)


def write_outputs(writer: DerivativesWriter, label: str, settings, results: list[dict]) -> None:
    """desc-<label>_progressionevaluation.tsv and desc-<label>_progressionpredictions.tsv."""
    rows = [report.table.assign(model=name, fold=r["fold"], data=settings.data,
                                target=target_name(settings.target.kind))
            for r in results for name, report in r["reports"]]
    evaluation = pd.concat(rows, ignore_index=True)[["model", "data", "target", "fold", "metric", "value", "ci_low",
                                                      "ci_high", "n"]]
    writer.write_tsv(writer.path(None, desc=label, suffix="progressionevaluation", extension=".tsv"), evaluation,
                     EVALUATION_SIDECAR)
    predictions = pd.concat([r["predictions"] for r in results], ignore_index=True)
    writer.write_tsv(writer.path(None, desc=label, suffix="progressionpredictions", extension=".tsv"), predictions,
                     PREDICTIONS_SIDECAR)
