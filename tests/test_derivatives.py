"""The derivatives writer: BIDS paths, atomic writes, create-once shared files, sidecars."""
from __future__ import annotations

import json
import multiprocessing
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from derivatives_spec import unlisted_files

from rgenima_app.bids.derivatives import DerivativesWriter, atomic_path, create_once, sidecar_path, write_tsv
from rgenima_app.errors import OutputNotWritableError, UsageError
from rgenima_app.imaging.roi_table import load_roi_table


def test_paths_follow_the_layout(tmp_path):
    writer = DerivativesWriter(tmp_path)
    assert writer.path("01", "1", datatype="anat", desc="rois", suffix="dseg", extension=".nii.gz") == \
        tmp_path / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_desc-rois_dseg.nii.gz"
    assert writer.path("01", datatype="anat", stat="attention", desc="m1", suffix="statmap", extension=".nii.gz").name == \
        "sub-01_desc-m1_stat-attention_statmap.nii.gz"
    assert writer.path(None, desc="m1", suffix="predictions", extension=".tsv") == tmp_path / "desc-m1_predictions.tsv"
    assert writer.path("01", datatype="genotype", desc="panel", suffix="genotypes", extension=".tsv") == \
        tmp_path / "sub-01" / "genotype" / "sub-01_desc-panel_genotypes.tsv"
    with pytest.raises(UsageError):
        writer.path("../../etc", suffix="x", extension=".tsv")
    with pytest.raises(ValueError):
        writer.path("01", colour="red", suffix="x", extension=".tsv")


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "sub-01" / "x.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(target.parent.iterdir()) == []
    write_tsv(target, pd.DataFrame({"a": [1.0, None]}))
    assert target.read_text() == "a\n1.0\nn/a\n"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # readable by collaborators


def _race(args):
    path, text = args
    return create_once(path, text)


def test_create_once_has_one_winner(tmp_path):
    target = tmp_path / "dataset_description.json"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        wins = pool.map(_race, [(target, f"writer {i}\n") for i in range(8)])
    assert sum(wins) == 1
    assert target.read_text() == f"writer {wins.index(True)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_description.json"]


def test_initialize_is_idempotent_and_valid(tmp_path):
    writer = DerivativesWriter(tmp_path / "out")
    writer.initialize(load_roi_table())
    first = (tmp_path / "out" / "dataset_description.json").read_text()
    writer.initialize(load_roi_table())
    assert (tmp_path / "out" / "dataset_description.json").read_text() == first
    rois = pd.read_csv(tmp_path / "out" / "desc-rois_dseg.tsv", sep="\t")
    assert list(rois["index"]) == list(range(1, 110))
    assert unlisted_files(tmp_path / "out") == []


def test_sidecars_are_written_with_the_data(tmp_path):
    writer = DerivativesWriter(tmp_path, source_dir=tmp_path / "bids")
    (tmp_path / "bids" / "sub-01" / "anat").mkdir(parents=True)
    t1w = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    path = writer.path("01", datatype="anat", desc="rois", suffix="dseg", extension=".nii.gz")
    writer.write_nifti(path, nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)),
                       sidecar={"Sources": [writer.source_uri(t1w)]})
    assert sidecar_path(path).name == "sub-01_desc-rois_dseg.json"
    assert json.loads(sidecar_path(path).read_text())["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert writer.source_uri(path) == "bids::sub-01/anat/sub-01_desc-rois_dseg.nii.gz"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only directories")
def test_read_only_output(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    with pytest.raises(OutputNotWritableError):
        DerivativesWriter(out).check_writable()


def test_unwritable_output_is_reported(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputNotWritableError, match="not writable"):
        DerivativesWriter(tmp_path / "file" / "out").check_writable()


def test_output_set_is_complete_or_absent(tmp_path, monkeypatch):
    """A failure in the middle of an output set (a full disk) leaves none of its files (issue 21)."""
    import errno

    from rgenima_app.bids import derivatives
    from rgenima_app.errors import OutputNotWritableError

    writer = DerivativesWriter(tmp_path / "out")
    table = pd.DataFrame({"a": [1, 2]})
    first = writer.path("01", suffix="predictions", extension=".tsv", desc="m")
    second = writer.path("01", suffix="roiattention", extension=".tsv", desc="m")
    real = derivatives.write_tsv

    def full(target, frame):
        if target == second:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(target, frame)

    monkeypatch.setattr(derivatives, "write_tsv", full)
    with pytest.raises(OutputNotWritableError, match="No space left on device.*free"):
        with writer.output_set():
            writer.write_tsv(first, table, sidecar={"Description": "x"})
            assert not first.exists()  # staged until the set is whole
            writer.write_tsv(second, table, sidecar={"Description": "y"})
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []
    monkeypatch.setattr(derivatives, "write_tsv", real)
    with writer.output_set():
        writer.write_tsv(first, table, sidecar={"Description": "x"})
        writer.write_tsv(second, table, sidecar={"Description": "y"})
    assert sorted(p.name for p in first.parent.iterdir()) == [
        "sub-01_desc-m_predictions.json", "sub-01_desc-m_predictions.tsv",
        "sub-01_desc-m_roiattention.json", "sub-01_desc-m_roiattention.tsv"]


def test_each_failed_sample_counts_once(tmp_path):
    """A sample whose imaging, prediction and report all failed is one failed sample, not three (issue 21)."""
    from rgenima_app.errors import MissingInputError, ProcessingError
    from rgenima_app.workflows.samples import SampleGuard

    names = [f"sub-0{i}" for i in range(1, 9)]
    guard = SampleGuard(False, tmp_path / "logs", names)

    def fail(why):
        raise MissingInputError(why)

    for step in ["sub-01", "sub-01, sub-02", "sub-02", "sub-01 report", "sub-02 report", "sub-03"]:
        guard(step, fail, "broken")
    assert guard.failed_samples() == ["sub-01", "sub-02", "sub-03"]
    assert sorted(guard.failed_subjects()) == ["01", "02", "03"]
    with pytest.raises(ProcessingError, match=r"^3 of 8 sample\(s\) failed"):
        guard.finish()


def test_tsv_values_with_double_quotes_round_trip(tmp_path):
    """Written without quoting, as BIDS defines TSV, so read_tsv gives the same values back (issue 21)."""
    from rgenima_app.bids.tsv import read_tsv

    table = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "note": ['"quoted" note', 'a "b'],
                          "age": [70.5, None]})
    path = write_tsv(tmp_path / "t.tsv", table)
    assert path.read_text() == 'participant_id\tnote\tage\nsub-01\t"quoted" note\t70.5\nsub-02\ta "b\tn/a\n'
    back = read_tsv(path, na_values=["n/a"], keep_default_na=False)
    assert list(back["note"]) == list(table["note"]) and back["age"].isna().tolist() == [False, True]
