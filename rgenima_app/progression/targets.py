"""Progression targets from longitudinal BIDS: ΔCDR-SB at a horizon, and MCI-to-AD conversion within it.

Where the visits come from (both may be used; a visit is one session of one participant):

- ``sub-<label>/sub-<label>_sessions.tsv``: BIDS sessions files, one row per session (``session_id``);
- ``phenotype/*.tsv`` tables with ``participant_id`` and ``session_id`` columns (tables without
  ``session_id`` hold per-participant data and are not read here).

Columns read (names matched case-insensitively; the first one present in a file, in this order, is used):

- time of the visit: a date ``acq_time``, ``visit_date`` or ``date`` (ISO 8601: ``2012-03-01`` or
  ``2012-03-01T10:30:00``), or a number ``months_since_baseline``, ``days_since_baseline``,
  ``years_since_baseline``, or ``age`` (years at the visit). Only differences between a participant's
  visits are used, so any origin works; one participant's visits must take their times from one column.
- CDR Sum of Boxes: ``cdr_sb``, ``cdrsb``, ``cdr_sob`` (0 to 18);
- diagnosis: ``diagnosis``, ``dx`` (NC/SMC/MCI/AD and the aliases of participants.tsv: CN, EMCI, LMCI,
  Dementia, ...). The baseline diagnosis falls back on participants.tsv's ``diagnosis`` when the baseline
  visit has none.

``n/a`` (or an empty cell) is a missing value. A visit listed in several files takes each value from the
first file that has it (the sessions file, then the phenotype tables by name); two different values for
the same visit are an error.

Definitions (months = days / 30.4375):

- baseline: the participant's earliest visit with a time (ties: the first session label); its images and
  genotypes are the model's input, so the tables name ``baseline_session``;
- follow-up visit of a target: a later visit with ``|months since baseline - horizon| <= window`` that has
  the target's value (CDR-SB; diagnosis), the one nearest the horizon (ties: the earlier);
- ``delta_cdr_sb`` = CDR-SB at that follow-up visit - CDR-SB at baseline;
- ``converted`` (participants whose baseline diagnosis is MCI): the diagnosis is AD at any visit after
  baseline up to and including the conversion follow-up visit.

Participants without a follow-up visit in the window are excluded from that target and counted with the
reason (``ProgressionTargets.excluded``), never imputed. This holds for early converters too: a conversion
seen at 12 months by a participant without a visit in the 24-month window excludes them, so that who is
included never depends on the outcome.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app.bids.inputs import map_diagnosis, normalize_label, read_participants
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.errors import MissingInputError, UsageError

DAYS_PER_MONTH = 30.4375
#: Time columns in the order they are looked for: name -> (kind, months per unit; None: a date).
TIME_COLUMNS = {"acq_time": ("date", None), "visit_date": ("date", None), "date": ("date", None),
                "months_since_baseline": ("since baseline", 1.0),
                "days_since_baseline": ("since baseline", 1.0 / DAYS_PER_MONTH),
                "years_since_baseline": ("since baseline", 12.0), "age": ("age", 12.0)}
CDR_SB_COLUMNS = ("cdr_sb", "cdrsb", "cdr_sob")
DIAGNOSIS_COLUMNS = ("diagnosis", "dx")
CDR_SB_RANGE = (0.0, 18.0)
_MISSING = {"", "n/a", "na", "nan"}

# Why a participant is left out of a target (ProgressionTargets.excluded.reason).
NO_VISITS = "no visit listed"
NO_TIMED_VISIT = "no visit with a time"
BASELINE_ONLY = "baseline visit only"
NO_FOLLOW_UP = "no follow-up visit within the window"
NO_BASELINE_CDR_SB = "no CDR-SB at baseline"
NO_FOLLOW_UP_CDR_SB = "no follow-up visit with CDR-SB within the window"
NO_BASELINE_DIAGNOSIS = "no diagnosis at baseline"
NOT_MCI = "baseline diagnosis not MCI"
NO_FOLLOW_UP_DIAGNOSIS = "no follow-up visit with a diagnosis within the window"


@dataclass
class ProgressionTargets:
    """The targets of one horizon and window.

    ``delta``: index participant (label without ``sub-``); columns baseline_session, followup_session,
    followup_months, baseline_cdr_sb, followup_cdr_sb, delta_cdr_sb.
    ``conversion``: index participant; columns baseline_session, followup_session, followup_months,
    converted (bool), conversion_session (first AD visit, None for the stable), conversion_months.
    ``excluded``: participant, target ("delta_cdr_sb" or "conversion"), reason (the constants above).
    """

    horizon_months: float
    window_months: float
    delta: pd.DataFrame
    conversion: pd.DataFrame
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["participant", "target", "reason"]))

    def exclusion_counts(self) -> dict[str, dict[str, int]]:
        """``{target: {reason: participants}}``."""
        return {target: {str(k): int(v) for k, v in group["reason"].value_counts().sort_index().items()}
                for target, group in self.excluded.groupby("target")}

    def summary(self) -> dict:
        """What a bundle or report records about the targets (JSON-ready)."""
        return {"horizon_months": self.horizon_months, "window_months": self.window_months,
                "delta_cdr_sb": {"n": len(self.delta)},
                "conversion": {"n": len(self.conversion), "converters": int(self.conversion["converted"].sum())},
                "excluded": self.exclusion_counts()}


# -- reading the visits --------------------------------------------------------------------------------------
def _find(columns, wanted) -> str | None:
    """The first of ``wanted`` among ``columns`` (case-insensitive): the file's own spelling, or None."""
    lower = {c.lower(): c for c in columns}
    return next((lower[w] for w in wanted if w in lower), None)


def _missing(value) -> bool:
    return pd.isna(value) or str(value).strip().lower() in _MISSING


def _number(value: str, path: Path, column: str, where: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not np.isfinite(number):
        raise UsageError(f"{path}: {where}: column '{column}' has {value!r}, not a number",
                         hint=f"write {what} as a number, or n/a when unknown")
    return number


def _months(value: str, path: Path, column: str, where: str) -> float:
    """The visit time of one cell in months (from an arbitrary origin)."""
    kind, per_unit = TIME_COLUMNS[column.lower()]
    if per_unit is not None:
        return _number(value, path, column, where, f"'{column}'") * per_unit
    try:
        stamp = pd.to_datetime(value.strip(), format="ISO8601", utc=True)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise UsageError(f"{path}: {where}: column '{column}' has {value!r}, not a date",
                         hint="write dates as ISO 8601, e.g. 2012-03-01 or 2012-03-01T10:30:00 (BIDS acq_time)")
    return stamp.value / 86400e9 / DAYS_PER_MONTH


def _visit_rows(table: pd.DataFrame, path: Path, participant: str | None) -> pd.DataFrame:
    """One source table -> participant, session, time_kind, months, cdr_sb, diagnosis, source."""
    if "session_id" not in table.columns:
        raise UsageError(f"{path} has no 'session_id' column",
                         hint="a sessions file lists one visit per row with its ses-<label> in 'session_id'")
    time_column = _find(table.columns, TIME_COLUMNS)
    cdr_column = _find(table.columns, CDR_SB_COLUMNS)
    dx_column = _find(table.columns, DIAGNOSIS_COLUMNS)
    rows = []
    for i, row in enumerate(table.to_dict("records"), start=2):  # line 1 is the header
        where = f"line {i}"
        try:
            subject = participant or normalize_label(str(row["participant_id"]))
            session = normalize_label(str(row["session_id"]), "session")
        except UsageError as exc:
            raise UsageError(f"{path}: {where}: {exc.message}", hint=exc.hint) from exc
        cdr = None
        if cdr_column and not _missing(row[cdr_column]):
            cdr = _number(row[cdr_column], path, cdr_column, where, "CDR-SB")
            if not CDR_SB_RANGE[0] <= cdr <= CDR_SB_RANGE[1]:
                raise UsageError(f"{path}: {where}: CDR-SB {cdr:g} is outside 0-18",
                                 hint="the CDR Sum of Boxes is the sum of six boxes scored 0-3")
        months = None if not time_column or _missing(row[time_column]) else \
            _months(row[time_column], path, time_column, where)
        rows.append({"participant": subject, "session": session,
                     "time_kind": time_column.lower() if months is not None else None, "months": months,
                     "cdr_sb": cdr, "diagnosis": row[dx_column] if dx_column else None, "source": str(path)})
    out = pd.DataFrame(rows, columns=["participant", "session", "time_kind", "months", "cdr_sb", "diagnosis",
                                      "source"])
    if dx_column:
        out["diagnosis"] = map_diagnosis(out["diagnosis"], path, dx_column).values
    duplicated = out[out.duplicated(["participant", "session"], keep=False)]
    if not duplicated.empty:
        pairs = sorted({f"sub-{p} ses-{s}" for p, s in zip(duplicated["participant"], duplicated["session"])})
        raise UsageError(f"{path} lists a visit more than once: {', '.join(pairs[:5])}", hint="keep one row per visit")
    return out


def _read(path: Path) -> pd.DataFrame:
    try:
        return read_tsv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MissingInputError(f"cannot read {path}: {exc}", hint="it must be tab-separated text with a header") \
            from exc


def _sources(bids_dir: Path, participants: list[str] | None) -> list[pd.DataFrame]:
    """The visit rows of every sessions file, then of every phenotype table with session_id."""
    found = []
    for path in sorted(bids_dir.glob("sub-*/sub-*_sessions.tsv")):
        label = path.parent.name.removeprefix("sub-")
        if participants is None or label in participants:
            found.append(_visit_rows(_read(path), path, label))
    for path in sorted((bids_dir / "phenotype").glob("*.tsv")):
        table = _read(path)
        if "session_id" not in table.columns:
            continue  # per-participant data
        if "participant_id" not in table.columns:
            raise UsageError(f"{path} has 'session_id' but no 'participant_id' column",
                             hint="a phenotype table of visits needs both (BIDS phenotype files start with participant_id)")
        rows = _visit_rows(table, path, None)
        found.append(rows if participants is None else rows[rows["participant"].isin(participants)])
    return found


def _merge(sources: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per visit; each value from the first source that has it; conflicting values are an error."""
    stacked = pd.concat(sources, ignore_index=True)
    merged = []
    for (participant, session), rows in stacked.groupby(["participant", "session"], sort=True):
        visit = {"participant": participant, "session": session}
        for column, partner in (("months", "time_kind"), ("cdr_sb", None), ("diagnosis", None)):
            given = rows[rows[column].notna()]
            if partner:  # times of different kinds (a date, an age) are not comparable
                given = given[given[partner] == given[partner].iloc[0]] if len(given) else given
            values = given[column].unique()
            if len(values) > 1 and (column != "months" or np.ptp(values.astype(float)) > 1e-6):
                raise UsageError(f"sub-{participant} ses-{session}: '{column}' differs between "
                                 f"{' and '.join(dict.fromkeys(given['source']))} ({', '.join(map(str, values))})",
                                 hint="give each visit one value, or n/a in all but one file")
            visit[column] = values[0] if len(values) else None
            if partner:
                visit[partner] = given[partner].iloc[0] if len(given) else None
                visit["time_source"] = given["source"].iloc[0] if len(given) else None
        merged.append(visit)
    return pd.DataFrame(merged)


def read_visits(bids_dir: Path, participants: list[str] | None = None) -> pd.DataFrame:
    """Every visit of the dataset (or of ``participants``, labels without ``sub-``): one row per participant
    and session with ``months`` since that participant's baseline (NaN without a time), ``cdr_sb``,
    ``diagnosis`` and ``baseline`` (bool), sorted by participant and time."""
    bids_dir = Path(bids_dir)
    participants = None if participants is None else [normalize_label(p) for p in participants]
    sources = _sources(bids_dir, participants)
    if not sources or all(s.empty for s in sources):
        raise MissingInputError(f"{bids_dir} has no longitudinal visits",
                                hint="progression targets need sub-<label>/sub-<label>_sessions.tsv files, or "
                                     "phenotype/*.tsv tables with participant_id and session_id, giving each "
                                     "visit's time, CDR-SB and diagnosis (see docs/progression.md)")
    visits = _merge(sources)
    for participant, rows in visits.groupby("participant"):
        kinds = rows["time_kind"].dropna().unique()
        if len(kinds) > 1:
            raise UsageError(f"sub-{participant}: visit times come from different columns ({', '.join(kinds)} in "
                             f"{', '.join(rows['time_source'].dropna().unique())})",
                             hint="give every visit of a participant its time in one column")
    visits["months"] = visits["months"].astype(float)
    visits["months"] -= visits.groupby("participant")["months"].transform("min")
    visits = visits.sort_values(["participant", "months", "session"], na_position="last", kind="stable")
    first = visits["months"].notna() & ~visits.duplicated("participant") & (visits["months"] == 0)
    visits["baseline"] = first
    return visits.reset_index(drop=True)[["participant", "session", "months", "cdr_sb", "diagnosis", "baseline"]]


# -- the targets -----------------------------------------------------------------------------------------
def _follow_up(rows: pd.DataFrame, column: str, horizon: float, window: float) -> pd.Series | None:
    """The visit after baseline nearest the horizon within the window that has ``column``; ties: the earlier."""
    candidates = rows[(rows["months"] > 0) & ((rows["months"] - horizon).abs() <= window) & rows[column].notna()]
    if candidates.empty:
        return None
    distance = (candidates["months"] - horizon).abs()
    return candidates.loc[distance.sort_values(kind="stable").index[0]]


def _follow_up_reason(rows: pd.DataFrame, horizon: float, window: float, missing_value: str) -> str:
    later = rows[rows["months"] > 0]
    if later.empty:
        return BASELINE_ONLY
    return missing_value if ((later["months"] - horizon).abs() <= window).any() else NO_FOLLOW_UP


def progression_targets(visits: pd.DataFrame, horizon_months: float, window_months: float,
                        baseline_diagnosis: dict[str, str | None] | None = None,
                        participants: list[str] | None = None) -> ProgressionTargets:
    """The ΔCDR-SB and conversion targets of ``read_visits``'s visits (module docstring: definitions).

    ``baseline_diagnosis``: participant -> diagnosis used when the baseline visit has none (participants.tsv).
    ``participants``: everyone who should have targets (e.g. all of participants.tsv); those without any
    visit are counted as excluded ("no visit listed")."""
    if not horizon_months > 0:
        raise UsageError(f"progression horizon {horizon_months} months: it must be positive",
                         hint="e.g. a horizon of 24 months")
    if not 0 <= window_months < horizon_months:
        raise UsageError(f"progression window ±{window_months} months around a horizon of {horizon_months} months",
                         hint="the window must be at least 0 and narrower than the horizon, so that the baseline "
                              "is never the follow-up visit")
    baseline_diagnosis = baseline_diagnosis or {}
    delta, conversion, excluded = [], [], []
    everyone = sorted(set(visits["participant"]) | set(participants or []))
    by_participant = dict(tuple(visits.groupby("participant")))

    def exclude(participant, reason, targets=("delta_cdr_sb", "conversion")):
        excluded.extend({"participant": participant, "target": t, "reason": reason} for t in targets)

    for participant in everyone:
        rows = by_participant.get(participant)
        if rows is None:
            exclude(participant, NO_VISITS)
            continue
        rows = rows[rows["months"].notna()]
        if rows.empty:
            exclude(participant, NO_TIMED_VISIT)
            continue
        baseline = rows[rows["baseline"]].iloc[0]
        # ΔCDR-SB
        visit = _follow_up(rows, "cdr_sb", horizon_months, window_months)
        if pd.isna(baseline["cdr_sb"]):
            exclude(participant, NO_BASELINE_CDR_SB, ("delta_cdr_sb",))
        elif visit is None:
            exclude(participant, _follow_up_reason(rows, horizon_months, window_months, NO_FOLLOW_UP_CDR_SB),
                    ("delta_cdr_sb",))
        else:
            delta.append({"participant": participant, "baseline_session": baseline["session"],
                          "followup_session": visit["session"], "followup_months": float(visit["months"]),
                          "baseline_cdr_sb": float(baseline["cdr_sb"]), "followup_cdr_sb": float(visit["cdr_sb"]),
                          "delta_cdr_sb": float(visit["cdr_sb"]) - float(baseline["cdr_sb"])})
        # conversion
        stage = baseline_diagnosis.get(participant) if pd.isna(baseline["diagnosis"]) else baseline["diagnosis"]
        visit = _follow_up(rows, "diagnosis", horizon_months, window_months)
        if stage is None:
            exclude(participant, NO_BASELINE_DIAGNOSIS, ("conversion",))
        elif stage != "MCI":
            exclude(participant, NOT_MCI, ("conversion",))
        elif visit is None:
            exclude(participant, _follow_up_reason(rows, horizon_months, window_months, NO_FOLLOW_UP_DIAGNOSIS),
                    ("conversion",))
        else:
            until = rows[(rows["months"] > 0) & (rows["months"] <= visit["months"]) & (rows["diagnosis"] == "AD")]
            first_ad = until.iloc[0] if len(until) else None
            conversion.append({"participant": participant, "baseline_session": baseline["session"],
                               "followup_session": visit["session"], "followup_months": float(visit["months"]),
                               "converted": first_ad is not None,
                               "conversion_session": None if first_ad is None else first_ad["session"],
                               "conversion_months": np.nan if first_ad is None else float(first_ad["months"])})
    delta_columns = ["baseline_session", "followup_session", "followup_months", "baseline_cdr_sb", "followup_cdr_sb",
                     "delta_cdr_sb"]
    conversion_columns = ["baseline_session", "followup_session", "followup_months", "converted",
                          "conversion_session", "conversion_months"]
    return ProgressionTargets(
        horizon_months=float(horizon_months), window_months=float(window_months),
        delta=pd.DataFrame(delta, columns=["participant", *delta_columns]).set_index("participant"),
        conversion=pd.DataFrame(conversion, columns=["participant", *conversion_columns]).set_index("participant"),
        excluded=pd.DataFrame(excluded, columns=["participant", "target", "reason"]))


def load_progression_targets(bids_dir: Path, horizon_months: float = 24.0, window_months: float = 6.0,
                             participants: list[str] | None = None) -> ProgressionTargets:
    """``read_visits`` + ``progression_targets`` for a BIDS dataset; everyone in participants.tsv (or
    ``participants``) gets targets or a counted exclusion, and participants.tsv's diagnosis backs up a
    baseline visit without one."""
    table = read_participants(Path(bids_dir))
    wanted = [normalize_label(p) for p in participants] if participants is not None else list(table.index)
    visits = read_visits(bids_dir, participants=wanted if participants is not None else None)
    fallback = {p: d for p, d in table["diagnosis"].items() if d is not None and not pd.isna(d)}
    return progression_targets(visits, horizon_months, window_months, baseline_diagnosis=fallback,
                               participants=wanted)
