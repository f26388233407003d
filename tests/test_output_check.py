"""Outputs checked, not hidden: every TSV gets a sidecar describing its columns from bids_spec/derivatives.yaml,
and rgenima's own check (``bids.spec.check_outputs``) catches what the BIDS validator is told to skip."""
from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from helpers import requires_validator
from rgenima_app import STAGES
from rgenima_app.bids.derivatives import BIDSIGNORE, DerivativesWriter
from rgenima_app.bids.spec import SPEC_PATH, check_outputs, load_spec
from rgenima_app.imaging.roi_table import load_roi_table

MODEL = "m1"
PREDICTIONS = f"sub-01/sub-01_desc-{MODEL}_predictions"


@pytest.fixture
def written(tmp_path):
    """A participant's prediction (written as the participant level writes it) in a fresh output dataset."""
    out = tmp_path / "out"
    writer = DerivativesWriter(out)
    writer.initialize(load_roi_table())
    table = pd.DataFrame([{"participant_id": "sub-01", "label": "AD", **{f"p_{s}": 0.25 for s in STAGES},
                           "ood_score": "n/a", "ood_flag": "n/a"}])
    writer.write_tsv(out / f"{PREDICTIONS}.tsv", table, {
        "Description": "a prediction", "Sources": [], "Model": MODEL, "ModelHash": "h", "ImputedSNPs": 0,
        "Modalities": ["T1w"], "HeldOut": True, "OutOfDistribution": {"Available": False}})
    return out


def test_the_packaged_spec_is_bids_spec(tmp_path):
    # the run-time copy (rgenima_app/data/derivatives.yaml) is a link, so the two never differ
    assert SPEC_PATH.read_text() == (SPEC_PATH.parents[2] / "bids_spec" / "derivatives.yaml").read_text()


def test_sidecar_describes_every_column_from_the_spec(written):
    sidecar = json.loads((written / f"{PREDICTIONS}.json").read_text())
    assert sidecar["Model"] == MODEL                                     # the writer's own keys are kept
    assert set(sidecar["label"]["Levels"]) == set(STAGES)                # the spec's entry, Levels included
    for column in ("participant_id", *(f"p_{s}" for s in STAGES)):
        assert sidecar[column]["Description"]
    assert "session_id" not in sidecar and "optional" not in json.dumps(sidecar)
    lookup = json.loads((written / "desc-rois_dseg.json").read_text())  # the ROI lookup table has one too
    assert {"index", "name", "hemisphere", "kind"} <= set(lookup)
    assert check_outputs(written) == []


def test_a_writer_entry_overrides_the_spec(tmp_path):
    writer = DerivativesWriter(tmp_path)
    path = writer.write_tsv(tmp_path / "desc-x_metrics.tsv", pd.DataFrame({"metric": ["a"], "value": [1.0],
                                                                           "ci_low": [0.5], "ci_high": [1.5]}),
                            {"Description": "m", "ci_low": {"Description": "the run's 90% interval"}})
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["ci_low"]["Description"] == "the run's 90% interval"
    assert sidecar["ci_high"]["Description"] == load_spec().match("desc-x_metrics.tsv").columns["ci_high"]["Description"]


def _problems(out):
    return [str(p) for p in check_outputs(out)]


def test_a_removed_column_is_caught(written):
    path = written / f"{PREDICTIONS}.tsv"
    pd.read_csv(path, sep="\t").drop(columns="p_AD").to_csv(path, sep="\t", index=False)
    assert _problems(written) == [f"{PREDICTIONS}.tsv: lacks the column(s) p_AD"]


def test_an_undeclared_column_is_caught(written):
    path = written / f"{PREDICTIONS}.tsv"
    pd.read_csv(path, sep="\t").assign(score=1).to_csv(path, sep="\t", index=False)
    problems = _problems(written)
    assert f"{PREDICTIONS}.tsv: has column(s) not declared in bids_spec/derivatives.yaml: score" in problems
    assert f"{PREDICTIONS}.json: has no Description of the column(s) score" in problems


def test_a_misnamed_file_is_caught(written):
    for ext in (".tsv", ".json"):
        (written / f"{PREDICTIONS}{ext}").rename(written / f"sub-01/sub-01_desc-{MODEL}_prediction{ext}")
    assert _problems(written) == [f"sub-01/sub-01_desc-{MODEL}_prediction{ext}: matches no pattern of "
                                  "bids_spec/derivatives.yaml" for ext in (".json", ".tsv")]


def test_a_missing_sidecar_key_and_sidecar_are_caught(written):
    path = written / f"{PREDICTIONS}.json"
    sidecar = json.loads(path.read_text())
    del sidecar["ModelHash"], sidecar["p_NC"]
    path.write_text(json.dumps(sidecar))
    assert sorted(_problems(written)) == [f"{PREDICTIONS}.json: has no Description of the column(s) p_NC",
                                          f"{PREDICTIONS}.json: lacks the sidecar key(s) ModelHash"]
    path.unlink()
    assert _problems(written) == [f"{PREDICTIONS}.tsv: has no JSON sidecar ({PREDICTIONS}.json)"]


def test_a_value_outside_levels_is_caught(written):
    path = written / f"{PREDICTIONS}.tsv"
    pd.read_csv(path, sep="\t").assign(label="Dementia").to_csv(path, sep="\t", index=False)
    assert len(_problems(written)) == 1 and "column label has value(s) outside its Levels" in _problems(written)[0]


def test_the_participant_level_checks_its_own_participants_only(written):
    (written / "sub-02").mkdir()  # another job's participant, with a file of no pattern
    shutil.copy(written / f"{PREDICTIONS}.tsv", written / "sub-02" / "notes.tsv")
    assert check_outputs(written, subjects={"01"}) == []
    assert [str(p) for p in check_outputs(written, subjects={"02"})] == [
        "sub-02/notes.tsv: matches no pattern of bids_spec/derivatives.yaml"]


def test_every_tsv_pattern_declares_its_columns():
    spec = yaml.safe_load(SPEC_PATH.read_text())
    opaque = tuple(spec["opaque"])
    for entry in spec["files"]:
        if "tsv" in entry["pattern"] and not entry["pattern"].startswith(opaque):
            assert entry.get("columns"), entry["pattern"]
            for column, described in entry["columns"].items():
                assert described.get("Description"), (entry["pattern"], column)


def test_bidsignore_hides_nothing_the_validator_accepts():
    # the ROI index images and the ROI lookup table have a BIDS convention (dseg): never hidden
    ignored = BIDSIGNORE.split()
    assert not any(p in ignored for p in ("*_dseg.nii.gz", "*_dseg.tsv", "*_dseg.json"))
    assert "*.json" not in ignored and "*.tsv" not in ignored


@requires_validator
def test_validator_accepts_the_dseg_lookup_and_its_sidecar(written):
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(written)],
                                       capture_output=True, text=True, timeout=300).stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []
    undefined = [i for i in report["issues"]["issues"] if i["code"] == "TSV_ADDITIONAL_COLUMNS_UNDEFINED"]
    assert undefined == []  # desc-rois_dseg.json describes the lookup table's extra columns
