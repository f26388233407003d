"""The group level with ``--model``: gather every participant's outputs of one model, analyse the cohort.

Reads what the participant level wrote for the model (``*_desc-<model>_predictions.tsv/.json``,
``*_roiattention.tsv``, ``*_roigeneattention.tsv``), joins the true diagnoses of participants.tsv, and
writes the cohort predictions, the held-out metrics, the stability/enrichment tables and ``group.html``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app import STAGES
from rgenima_app.errors import NoDataError, ProcessingError
from rgenima_app.imaging.roi_table import roi_names

log = logging.getLogger("rgenima")


@dataclass
class CohortOutputs:
    """Every participant/session's outputs of one model, aligned: rows of ``predictions`` = first axes."""

    predictions: pd.DataFrame      # participant_id, session, label, p_NC..p_AD, held_out, model_hash
    roi_importance: np.ndarray     # (n, 109), canonical ROI order
    roi_gene: np.ndarray           # (n, 109, G)
    genes: list[str]


def _entities(path: Path) -> tuple[str, str | None]:
    parts = dict(p.split("-", 1) for p in path.name.split("_") if "-" in p)
    return f"sub-{parts['sub']}", parts.get("ses")


def load_cohort_outputs(output_dir: Path, model: str) -> CohortOutputs:
    """Read the participant outputs of ``model``; refuse none found, or outputs of different model files."""
    prediction_files = sorted(Path(output_dir).glob(f"sub-*/**/sub-*_desc-{model}_predictions.tsv"))
    if not prediction_files:
        found = sorted({p.name.split("_desc-")[1].split("_")[0]
                        for p in Path(output_dir).glob("sub-*/**/*_predictions.tsv")})
        raise NoDataError(
            f"no participant outputs of model '{model}' in {output_dir}"
            + (f" (outputs found for: {', '.join(found)})" if found else ""),
            hint="run the participant level with the same --model first")
    rows, roi_rows, pair_tables = [], [], []
    names = roi_names()
    for path in prediction_files:
        participant, session = _entities(path)
        table = pd.read_csv(path, sep="\t")
        sidecar = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
        row = {"participant_id": participant, "session": session, "label": table["label"].iloc[0],
               **{f"p_{s}": float(table[f"p_{s}"].iloc[0]) for s in STAGES},
               "held_out": bool(sidecar.get("HeldOut", sidecar.get("held_out", True))),
               "model_hash": sidecar.get("ModelHash", sidecar.get("model_hash"))}
        rows.append(row)
        stem = str(path)[: -len("_predictions.tsv")]
        rois = pd.read_csv(stem + "_roiattention.tsv", sep="\t").set_index("roi")["importance"]
        roi_rows.append(rois.reindex(names).to_numpy(float))
        pair_tables.append(pd.read_csv(stem + "_roigeneattention.tsv", sep="\t"))
    predictions = pd.DataFrame(rows)
    hashes = predictions["model_hash"].dropna().unique()
    if len(hashes) > 1:
        by_hash = predictions.groupby("model_hash")["participant_id"].apply(lambda s: ", ".join(s[:5]))
        raise ProcessingError(
            f"outputs of '{model}' in {output_dir} come from {len(hashes)} different models: "
            + "; ".join(f"{h[:12]}: {who}" for h, who in by_hash.items()),
            hint="rerun the participant level of all participants with one --model")
    genes = sorted(set().union(*(set(t["gene"]) for t in pair_tables)))
    roi_gene = np.zeros((len(pair_tables), len(names), len(genes)))
    roi_index, gene_index = {n: i for i, n in enumerate(names)}, {g: j for j, g in enumerate(genes)}
    for k, pairs in enumerate(pair_tables):
        roi_gene[k, pairs["roi"].map(roi_index).to_numpy(), pairs["gene"].map(gene_index).to_numpy()] = pairs["attention"]
    return CohortOutputs(predictions, np.nan_to_num(np.vstack(roi_rows)), roi_gene, genes)
