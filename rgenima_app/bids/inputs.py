"""The input BIDS dataset: participants.tsv with diagnoses, and T1w images found with pybids."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rgenima_app import STAGES
from rgenima_app.bids.derivatives import check_label
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.errors import MissingInputError, NoDataError, UsageError

#: Spellings of each stage found in cohorts (ADNI: CN, EMCI/LMCI, Dementia), case-insensitive.
DIAGNOSIS_ALIASES = {
    "nc": "NC", "cn": "NC", "control": "NC", "normal": "NC",
    "smc": "SMC",
    "mci": "MCI", "emci": "MCI", "lmci": "MCI",
    "ad": "AD", "dementia": "AD", "dem": "AD",
}
_MISSING = {"", "n/a", "na", "nan"}
log = logging.getLogger("rgenima")


def normalize_label(label: str, entity: str = "participant") -> str:
    """``sub-01`` or ``01`` -> ``01`` (``ses-`` likewise); refuses anything that is not a BIDS label."""
    prefix = {"participant": "sub-", "session": "ses-"}[entity]
    label = label.strip()
    if label.startswith(prefix):
        label = label[len(prefix):]
    return check_label(label, entity)


def map_diagnosis(values: pd.Series, source: Path, column: str) -> pd.Series:
    """Map cohort spellings to NC/SMC/MCI/AD; missing values stay missing; unknown ones are an error."""
    def one(value):
        if pd.isna(value) or str(value).strip().lower() in _MISSING:
            return None
        return DIAGNOSIS_ALIASES.get(str(value).strip().lower(), "?")

    mapped = values.map(one)
    unknown = sorted({str(v) for v, m in zip(values, mapped) if m == "?"})
    if unknown:
        raise UsageError(
            f"{source}: column '{column}' has diagnoses rgenima does not know: {', '.join(unknown)}",
            hint=f"use {', '.join(STAGES)} (also accepted: CN, EMCI, LMCI, Dementia) or n/a for unknown",
        )
    return mapped


def read_participants(bids_dir: Path, diagnosis_column: str = "diagnosis", required: bool = False) -> pd.DataFrame:
    """participants.tsv as a table indexed by label (without ``sub-``).

    Columns: ``diagnosis`` (NC/SMC/MCI/AD or None), ``age``, ``sex``, ``genetic_id`` where present.
    ``required`` makes a missing file or a missing diagnosis column an error (training needs labels).
    """
    path = Path(bids_dir) / "participants.tsv"
    if not path.exists():
        if required:
            raise MissingInputError(f"{path} is missing", hint="training needs participants.tsv with a diagnosis column")
        return pd.DataFrame(columns=["diagnosis"]).rename_axis("participant")
    try:
        table = read_tsv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MissingInputError(f"cannot read {path}: {exc}", hint="participants.tsv must be tab-separated text") from exc
    if "participant_id" not in table.columns:
        raise UsageError(f"{path} has no 'participant_id' column", hint="BIDS requires it as the first column")
    duplicated = sorted(set(table["participant_id"][table["participant_id"].duplicated()]))
    if duplicated:
        raise UsageError(f"{path} lists participants more than once: {', '.join(duplicated)}",
                         hint="keep one row per participant")
    labels = [normalize_label(p) for p in table["participant_id"]]
    out = pd.DataFrame(index=pd.Index(labels, name="participant"))
    if diagnosis_column in table.columns:
        out["diagnosis"] = map_diagnosis(table[diagnosis_column], path, diagnosis_column).values
    elif required:
        raise UsageError(f"{path} has no '{diagnosis_column}' column",
                         hint="add the diagnoses (NC/SMC/MCI/AD) or name the column with the training config")
    else:
        out["diagnosis"] = None
    for column in ("age", "sex", "genetic_id"):
        if column in table.columns:
            values = table[column].where(~table[column].str.lower().isin(_MISSING), None)
            out[column] = pd.to_numeric(values, errors="coerce").values if column == "age" else values.values
    return out


@dataclass(frozen=True)
class T1wSample:
    """One T1w image of one participant (and session)."""

    subject: str
    session: str | None
    t1w: Path

    @property
    def name(self) -> str:
        """``sub-01`` or ``sub-01_ses-1``: also the FreeSurfer subject name."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


def load_bids_filters(path: Path | None) -> dict:
    """The ``--bids-filter-file`` JSON (fMRIPrep's format: ``{"t1w": {"acquisition": "mprage"}}``)."""
    if path is None:
        return {}
    try:
        filters = json.loads(Path(path).read_text())
    except OSError as exc:
        raise MissingInputError(f"cannot read --bids-filter-file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--bids-filter-file {path} is not valid JSON: {exc}") from exc
    if not isinstance(filters, dict) or not all(isinstance(v, dict) for v in filters.values()):
        raise UsageError(f"--bids-filter-file {path} must map query names to entity filters",
                         hint='e.g. {"t1w": {"acquisition": "mprage", "reconstruction": null}}')
    return filters


def collect_t1w(
    bids_dir: Path,
    participant_labels: list[str] | None = None,
    session_labels: list[str] | None = None,
    bids_filters: dict | None = None,
) -> list[T1wSample]:
    """Find the T1w images to process: one per participant and session (the first by name when several).

    Raises NoDataError (exit 18) naming the labels found when a requested label does not exist or the
    filters select nothing.
    """
    from bids import BIDSLayout

    layout = BIDSLayout(str(bids_dir), validate=False)
    subjects_found = sorted(layout.get_subjects())
    if not subjects_found:
        raise NoDataError(f"{bids_dir} holds no sub-<label> folders", hint="point BIDS_DIR at the dataset root")
    if participant_labels:
        unknown = [s for s in participant_labels if s not in subjects_found]
        if unknown:
            raise NoDataError(
                f"participant label(s) not in {bids_dir}: {', '.join(unknown)}",
                hint=f"labels found: {', '.join(subjects_found[:50])}" + (" ..." if len(subjects_found) > 50 else ""),
            )
    query = {"datatype": "anat", "suffix": "T1w", "extension": [".nii", ".nii.gz"], "return_type": "object"}
    query.update(bids_filters.get("t1w", {}) if bids_filters else {})
    if participant_labels:
        query["subject"] = participant_labels
    if session_labels:
        query["session"] = session_labels
    files = layout.get(**query)
    samples: dict[tuple, T1wSample] = {}
    for f in sorted(files, key=lambda f: f.path):
        entities = f.get_entities()
        key = (entities["subject"], entities.get("session"))
        if key in samples:
            log.warning("%s: several T1w images; using %s, not %s (choose with --bids-filter-file)",
                        samples[key].name, samples[key].t1w.name, Path(f.path).name)
            continue
        samples[key] = T1wSample(key[0], key[1], Path(f.path))
    if not samples:
        raise NoDataError(
            f"no T1w image in {bids_dir} matches the selection",
            hint="check --participant-label, --session-label and --bids-filter-file",
        )
    return list(samples.values())
