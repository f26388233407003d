"""BIDS inputs: participants.tsv, diagnosis mapping, label handling and T1w discovery with pybids."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from rgenima_app.bids.inputs import collect_t1w, load_bids_filters, normalize_label, read_participants
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.errors import NoDataError, UsageError


def write_participants(bids, text):
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "participants.tsv").write_text(text)


def test_diagnosis_mapping_accepts_adni_spellings(tmp_path):
    write_participants(tmp_path, "participant_id\tdiagnosis\tage\tgenetic_id\n"
                                 "sub-01\tCN\t70\tNA1\nsub-02\tEMCI\tn/a\tNA2\nsub-03\tLMCI\t71\tn/a\n"
                                 "sub-04\tDementia\t80\tNA4\nsub-05\tsmc\t66\tNA5\nsub-06\tn/a\t60\tNA6\n")
    table = read_participants(tmp_path)
    assert list(table.index) == ["01", "02", "03", "04", "05", "06"]
    assert list(table["diagnosis"][:5]) == ["NC", "MCI", "MCI", "AD", "SMC"]
    assert pd.isna(table.loc["06", "diagnosis"]) and pd.isna(table.loc["02", "age"])
    assert pd.isna(table.loc["03", "genetic_id"]) and table.loc["04", "genetic_id"] == "NA4"


def test_values_with_double_quotes_are_read_as_bids_defines_them(tmp_path):
    """A BIDS TSV has no quoting: a cell may start with a double quote or hold one (issue 21)."""
    write_participants(tmp_path, 'participant_id\tdiagnosis\tsex\tgenetic_id\tnote\n'
                                 'sub-01\tAD\tF\t"G01\t"quoted" note\n'
                                 'sub-02\tNC\tM\tG02"\ta "b\n'
                                 'sub-03\tMCI\t"\tG03\t""\n')
    table = read_participants(tmp_path)
    assert list(table.index) == ["01", "02", "03"]
    assert list(table["genetic_id"]) == ['"G01', 'G02"', "G03"]
    assert list(table["diagnosis"]) == ["AD", "NC", "MCI"] and table.loc["03", "sex"] == '"'
    raw = read_tsv(tmp_path / "participants.tsv", dtype=str)
    assert list(raw["note"]) == ['"quoted" note', 'a "b', '""']


def test_unknown_diagnoses_are_listed(tmp_path):
    write_participants(tmp_path, "participant_id\tdiagnosis\nsub-01\tCN\nsub-02\tFTD\nsub-03\tPD\nsub-04\tFTD\n")
    with pytest.raises(UsageError) as err:
        read_participants(tmp_path)
    assert "FTD, PD" in str(err.value) and "participants.tsv" in str(err.value)


@pytest.mark.parametrize("text,message", [
    ("subject\tdiagnosis\nsub-01\tNC\n", "no 'participant_id' column"),
    ("participant_id\tdiagnosis\nsub-01\tNC\nsub-01\tAD\n", "more than once: sub-01"),
    ("participant_id\tdiagnosis\n../x\tNC\n", "only letters and digits"),
])
def test_malformed_participants_tsv(tmp_path, text, message):
    write_participants(tmp_path, text)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_participants(tmp_path)


def test_training_requires_the_diagnosis_column(tmp_path):
    write_participants(tmp_path, "participant_id\tage\nsub-01\t70\n")
    assert read_participants(tmp_path)["diagnosis"].isna().all()
    with pytest.raises(UsageError, match="no 'diagnosis' column"):
        read_participants(tmp_path, required=True)


def test_normalize_label():
    assert normalize_label("sub-01") == "01" and normalize_label("01") == "01"
    assert normalize_label("ses-bl", "session") == "bl"
    with pytest.raises(UsageError):
        normalize_label("sub-01_ses-1")


def test_collect_t1w_with_sessions_and_filters(tmp_path, tiny_cohort, caplog):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    for sub in ("001", "002"):  # move to a two-session layout with an extra acquisition
        anat = bids / f"sub-{sub}" / "anat"
        for ses in ("1", "2"):
            target = bids / f"sub-{sub}" / f"ses-{ses}" / "anat"
            target.mkdir(parents=True)
            shutil.copy(anat / f"sub-{sub}_T1w.nii.gz", target / f"sub-{sub}_ses-{ses}_T1w.nii.gz")
            shutil.copy(anat / f"sub-{sub}_T1w.nii.gz", target / f"sub-{sub}_ses-{ses}_acq-fast_T1w.nii.gz")
        shutil.rmtree(anat)
    samples = collect_t1w(bids, ["001", "002"])
    assert [(s.subject, s.session) for s in samples] == [("001", "1"), ("001", "2"), ("002", "1"), ("002", "2")]
    assert samples[1].name == "sub-001_ses-2"
    assert [s.t1w.name for s in samples[:2]] == ["sub-001_ses-1_T1w.nii.gz", "sub-001_ses-2_T1w.nii.gz"]
    assert "several T1w images; using sub-001_ses-1_T1w.nii.gz, not sub-001_ses-1_acq-fast_T1w.nii.gz" in caplog.text
    filters_file = tmp_path / "filters.json"
    filters_file.write_text(json.dumps({"t1w": {"acquisition": "fast"}}))
    fast = collect_t1w(bids, ["001"], ["2"], load_bids_filters(filters_file))
    assert [s.t1w.name for s in fast] == ["sub-001_ses-2_acq-fast_T1w.nii.gz"]
    with pytest.raises(NoDataError, match="labels found: 001, 002"):
        collect_t1w(bids, ["042"])
    with pytest.raises(NoDataError, match="matches the selection"):
        collect_t1w(bids, ["001"], ["3"])


def test_bad_filter_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_bids_filters(path)
    path.write_text('{"t1w": "mprage"}')
    with pytest.raises(UsageError, match="entity filters"):
        load_bids_filters(path)
