"""Robustness of the foundation: concurrent participant jobs, and fuzzed user-written input files."""
from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import requires_validator, rgenima_command
from rgenima_app.bids.inputs import load_bids_filters, read_participants
from rgenima_app.errors import RgenimaError


@requires_validator
def test_concurrent_participant_jobs_share_one_output(tiny_cohort, tmp_path):
    """The SLURM-array pattern: 4 jobs start together into one output directory, 5 times over."""
    for attempt in range(5):
        out = tmp_path / f"out{attempt}"
        jobs = [subprocess.Popen([*rgenima_command(), str(tiny_cohort / "bids"), str(out), "participant",
                                  "--skip-bids-validation", "--roi-size", "8", "--nprocs", "1",
                                  "--fs-subjects-dir", str(tiny_cohort / "freesurfer"),
                                  "--participant-label", f"{i + 1:03d}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
        results = [(job.wait(timeout=600), job.stderr.read()) for job in jobs]
        assert [code for code, _ in results] == [0, 0, 0, 0], results
        description = json.loads((out / "dataset_description.json").read_text())
        assert description["DatasetType"] == "derivative"
        assert (out / "desc-rois_dseg.tsv").read_text().count("\n") == 110
        assert "logs/" in (out / ".bidsignore").read_text()
        assert len(list((out / "logs").glob("*.toml"))) == 4
        assert not [p for p in out.rglob(".tmp-*")]
        report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                           capture_output=True, text=True).stdout)
        assert [i for i in report["issues"]["issues"] if i["severity"] == "error"] == []


tsv_text = st.text(alphabet=st.sampled_from(list("sub-0123456789\tabcdeNCSMADnx/_. \n\r\"'")), max_size=300)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=tsv_text, header=st.sampled_from(["participant_id\tdiagnosis\n", "participant_id\tdiagnosis\tage\n",
                                              "participant_id\n", "diagnosis\n", ""]))
def test_participants_tsv_parses_or_fails_cleanly(tmp_path, body, header):
    (tmp_path / "participants.tsv").write_text(header + body)
    try:
        table = read_participants(tmp_path)
    except RgenimaError as exc:
        assert "participants.tsv" in str(exc) or "label" in str(exc)
    else:
        assert table.index.is_unique
        assert set(table["diagnosis"].dropna()) <= {"NC", "SMC", "MCI", "AD"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=80), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8).map(json.dumps)))
def test_bids_filter_file_parses_or_fails_cleanly(tmp_path, text):
    path = tmp_path / "filters.json"
    path.write_text(text)
    try:
        filters = load_bids_filters(path)
    except RgenimaError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(filters, dict) and all(isinstance(v, dict) for v in filters.values())


def test_participants_tsv_that_is_not_text_is_a_clear_error(tmp_path):
    (tmp_path / "participants.tsv").write_bytes(b"\xff\xfe\x00participant_id\n")
    with pytest.raises(RgenimaError, match="participants.tsv"):
        read_participants(tmp_path)
