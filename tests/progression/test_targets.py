"""Progression targets from hand-written longitudinal BIDS files: baseline, the follow-up visit nearest the
horizon within the window, conversion of baseline MCI, every exclusion counted, and clear errors."""
from __future__ import annotations

import pytest

from rgenima_app.errors import MissingInputError, UsageError
from rgenima_app.progression.targets import (BASELINE_ONLY, NO_BASELINE_CDR_SB, NO_FOLLOW_UP, NO_FOLLOW_UP_CDR_SB,
                                             NO_TIMED_VISIT, NO_VISITS, NOT_MCI, load_progression_targets,
                                             progression_targets, read_visits)


def write(path, header, *rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def sessions(bids, label, header, *rows):
    return write(bids / f"sub-{label}" / f"sub-{label}_sessions.tsv", header, *rows)


@pytest.fixture
def bids(tmp_path):
    """Six participants, one per situation the targets must handle."""
    root = tmp_path / "bids"
    write(root / "participants.tsv", ["participant_id", "diagnosis"],
          ["sub-01", "MCI"], ["sub-02", "MCI"], ["sub-03", "NC"], ["sub-04", "MCI"], ["sub-05", "AD"],
          ["sub-06", "MCI"], ["sub-07", "MCI"])
    header = ["session_id", "acq_time", "cdr_sb", "diagnosis"]
    # converter: AD at 12 months, seen again at 24 months (still AD)
    sessions(root, "01", header, ["ses-bl", "2010-01-15", 2.0, "MCI"], ["ses-m12", "2011-01-15", 4.5, "AD"],
             ["ses-m24", "2012-01-20T10:00:00", 6.0, "Dementia"])
    # stable MCI; the 24-month visit lacks CDR-SB, the 27-month one has it (both in the window)
    sessions(root, "02", header, ["ses-1", "2010-03-01", 1.5, "LMCI"], ["ses-2", "2012-03-01", "n/a", "MCI"],
             ["ses-3", "2012-06-01", 2.5, "MCI"])
    # NC, visits listed out of order; the 12-month visit is outside a 24 +- 6 window
    sessions(root, "03", header, ["ses-2", "2009-01-10", 0.0, "CN"], ["ses-1", "2008-01-10", 0.0, "CN"])
    # MCI with only a baseline
    sessions(root, "04", header, ["ses-1", "2010-01-01", 3.0, "MCI"])
    # AD, times given as ages; no CDR-SB at baseline
    sessions(root, "05", ["session_id", "age", "cdr_sb"], ["ses-1", 70.0, "n/a"], ["ses-2", 72.0, 9.0])
    # sub-06: no sessions file; sub-07: visits without any time
    sessions(root, "07", ["session_id", "acq_time", "cdr_sb"], ["ses-1", "n/a", 1.0], ["ses-2", "n/a", 2.0])
    return root


def test_targets_of_each_situation(bids):
    t = load_progression_targets(bids, horizon_months=24, window_months=6)
    assert sorted(t.delta.index) == ["01", "02"]
    one = t.delta.loc["01"]
    assert (one.baseline_session, one.followup_session, one.delta_cdr_sb) == ("bl", "m24", 4.0)
    assert one.followup_months == pytest.approx((365 + 365 + 5) / 30.4375, abs=0.05)
    two = t.delta.loc["02"]  # the nearest visit WITH CDR-SB is used, not the nearest visit
    assert (two.followup_session, two.delta_cdr_sb) == ("3", 1.0)
    ages = read_visits(bids, participants=["05"])  # times from ages: 2 years apart
    assert ages["months"].tolist() == pytest.approx([0.0, 24.0])
    assert sorted(t.conversion.index) == ["01", "02"]
    assert bool(t.conversion.loc["01", "converted"]) and t.conversion.loc["01", "conversion_session"] == "m12"
    assert not t.conversion.loc["02", "converted"] and t.conversion.loc["02", "followup_session"] == "2"
    reasons = {(r.participant, r.target): r.reason for r in t.excluded.itertuples()}
    assert reasons == {
        ("03", "delta_cdr_sb"): NO_FOLLOW_UP, ("03", "conversion"): NOT_MCI,
        ("04", "delta_cdr_sb"): BASELINE_ONLY, ("04", "conversion"): BASELINE_ONLY,
        ("05", "delta_cdr_sb"): NO_BASELINE_CDR_SB, ("05", "conversion"): NOT_MCI,
        ("06", "delta_cdr_sb"): NO_VISITS, ("06", "conversion"): NO_VISITS,
        ("07", "delta_cdr_sb"): NO_TIMED_VISIT, ("07", "conversion"): NO_TIMED_VISIT}
    counts = t.exclusion_counts()
    assert counts["delta_cdr_sb"][NO_VISITS] == 1 and sum(counts["conversion"].values()) == 5
    assert t.summary()["conversion"] == {"n": 2, "converters": 1}


def test_baseline_is_the_earliest_visit_whatever_the_row_order(bids):
    visits = read_visits(bids, participants=["03"])
    assert list(visits["session"]) == ["1", "2"] and list(visits["baseline"]) == [True, False]
    assert visits["months"].tolist() == pytest.approx([0.0, 366 / 30.4375])


def test_horizon_and_window_choose_the_visit(bids):
    visits = read_visits(bids)
    twelve = progression_targets(visits, 12, 3)
    assert twelve.delta.loc["01", "followup_session"] == "m12" and twelve.delta.loc["01", "delta_cdr_sb"] == 2.5
    assert twelve.delta.loc["03", "delta_cdr_sb"] == 0.0               # now inside the window
    assert "02" not in twelve.delta.index                               # 24 and 27 months: outside 12 +- 3
    assert bool(twelve.conversion.loc["01", "converted"])
    narrow = progression_targets(visits, 25, 0.5)                       # 24.2 months: outside 25 +- 0.5
    assert "01" not in narrow.delta.index
    with pytest.raises(UsageError, match="narrower than the horizon"):
        progression_targets(visits, 12, 12)
    with pytest.raises(UsageError, match="must be positive"):
        progression_targets(visits, 0, 0)


def test_missing_cdr_sb_in_the_window_is_its_own_reason(tmp_path):
    root = tmp_path / "bids"
    write(root / "participants.tsv", ["participant_id"], ["sub-01"])
    sessions(root, "01", ["session_id", "months_since_baseline", "CDRSB", "DX"],
             ["ses-1", 0, 2.0, "MCI"], ["ses-2", 23, "n/a", "MCI"])
    t = load_progression_targets(root, 24, 6)
    assert t.excluded.set_index("target").loc["delta_cdr_sb", "reason"] == NO_FOLLOW_UP_CDR_SB
    assert not t.conversion.loc["01", "converted"]  # the diagnosis of the same visit still counts


def test_phenotype_tables_add_visits_and_values(tmp_path):
    root = tmp_path / "bids"
    write(root / "participants.tsv", ["participant_id", "diagnosis"], ["sub-01", "MCI"], ["sub-02", "MCI"])
    sessions(root, "01", ["session_id", "acq_time"], ["ses-1", "2010-01-01"], ["ses-2", "2012-01-01"])
    write(root / "phenotype" / "cdr.tsv", ["participant_id", "session_id", "cdr_sb", "diagnosis"],
          ["sub-01", "ses-1", 1.0, "MCI"], ["sub-01", "ses-2", 5.0, "AD"])
    write(root / "phenotype" / "visits.tsv", ["participant_id", "session_id", "days_since_baseline", "cdr_sb"],
          ["sub-02", "ses-a", 0, 0.5], ["sub-02", "ses-b", 700, 1.5])
    write(root / "phenotype" / "demographics.tsv", ["participant_id", "education"], ["sub-01", 16])  # not visits
    t = load_progression_targets(root, 24, 6)
    assert t.delta["delta_cdr_sb"].to_dict() == {"01": 4.0, "02": 1.0}
    assert bool(t.conversion.loc["01", "converted"])
    assert t.excluded.set_index(["participant", "target"]).loc[("02", "conversion"), "reason"] == \
        "no follow-up visit with a diagnosis within the window"


def test_conflicting_values_name_both_files(tmp_path):
    root = tmp_path / "bids"
    sessions(root, "01", ["session_id", "acq_time", "cdr_sb"], ["ses-1", "2010-01-01", 1.0])
    write(root / "phenotype" / "cdr.tsv", ["participant_id", "session_id", "cdr_sb"], ["sub-01", "ses-1", 2.0])
    with pytest.raises(UsageError, match=r"'cdr_sb' differs between .*sub-01_sessions.tsv and .*cdr.tsv"):
        read_visits(root)


@pytest.mark.parametrize("header, row, message", [
    (["session_id", "acq_time", "cdr_sb"], ["ses-1", "01/02/2010", 1.0], r"line 2: column 'acq_time' has '01/02/2010', not a date"),
    (["session_id", "acq_time", "cdr_sb"], ["ses-1", "2010-13-40", 1.0], "not a date"),
    (["session_id", "age", "cdr_sb"], ["ses-1", "seventy", 1.0], "column 'age' has 'seventy', not a number"),
    (["session_id", "acq_time", "cdr_sb"], ["ses-1", "2010-01-01", 19], "CDR-SB 19 is outside 0-18"),
    (["session_id", "acq_time", "cdr_sb"], ["ses-1", "2010-01-01", "mild"], "column 'cdr_sb' has 'mild'"),
    (["session_id", "acq_time", "diagnosis"], ["ses-1", "2010-01-01", "prodromal"], "diagnoses rgenima does not know"),
    (["session", "acq_time"], ["ses-1", "2010-01-01"], "has no 'session_id' column"),
    (["session_id", "acq_time"], ["ses-1/../x", "2010-01-01"], "invalid session label"),
])
def test_bad_sessions_files_are_usage_errors_naming_the_file(tmp_path, header, row, message):
    root = tmp_path / "bids"
    path = sessions(root, "01", header, row)
    with pytest.raises(UsageError, match=message) as caught:
        read_visits(root)
    assert str(path) in str(caught.value)


def test_duplicate_visits_and_mixed_time_columns_are_refused(tmp_path):
    root = tmp_path / "bids"
    sessions(root, "01", ["session_id", "acq_time"], ["ses-1", "2010-01-01"], ["ses-1", "2011-01-01"])
    with pytest.raises(UsageError, match="lists a visit more than once: sub-01 ses-1"):
        read_visits(root)
    sessions(root, "01", ["session_id", "acq_time"], ["ses-1", "2010-01-01"])
    write(root / "phenotype" / "ages.tsv", ["participant_id", "session_id", "age"], ["sub-01", "ses-2", 71.0])
    with pytest.raises(UsageError, match="visit times come from different columns"):
        read_visits(root)


def test_a_dataset_without_visits_says_what_is_needed(tmp_path):
    root = tmp_path / "bids"
    write(root / "participants.tsv", ["participant_id", "diagnosis"], ["sub-01", "MCI"])
    with pytest.raises(MissingInputError, match="no longitudinal visits") as caught:
        load_progression_targets(root)
    assert "sessions.tsv" in caught.value.hint
