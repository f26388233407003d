"""Writes stay inside OUTPUT_DIR, the work dir and the FreeSurfer subjects dir, links or not (issue 21)."""
from __future__ import annotations

import pytest

from rgenima_app.confinement import check_write, escaping_link, register_root
from rgenima_app.errors import OutputNotWritableError


def test_links_that_leave_the_root_are_refused_and_others_allowed(tmp_path):
    out, fs, elsewhere = tmp_path / "out", tmp_path / "linked-fs", tmp_path / "elsewhere"
    for folder in (out / "sub-01", fs, elsewhere):
        folder.mkdir(parents=True)
    (out / "sourcedata").mkdir()
    (out / "sourcedata" / "freesurfer").symlink_to(fs)      # the root itself may be a link
    (out / "sub-02").symlink_to(out / "sub-01")             # a link that stays inside is harmless
    (out / "sub-03").symlink_to(elsewhere)
    (fs / "sub-01").symlink_to(elsewhere)
    register_root(out, "OUTPUT_DIR")
    register_root(out / "sourcedata" / "freesurfer", "the FreeSurfer subjects dir")
    assert check_write(out / "sub-02" / "anat" / "x.tsv") == out / "sub-02" / "anat" / "x.tsv"
    check_write(out / "sourcedata" / "freesurfer" / "sub-02" / "mri")
    check_write(tmp_path / "not-a-root" / "x")
    with pytest.raises(OutputNotWritableError, match=r"sub-03 is a symbolic link to .*elsewhere, outside OUTPUT_DIR"):
        check_write(out / "sub-03" / "anat" / "x.tsv")
    with pytest.raises(OutputNotWritableError, match="outside the FreeSurfer subjects dir"):
        check_write(out / "sourcedata" / "freesurfer" / "sub-01" / "mri" / "orig")
    assert escaping_link(out / "sub-04" / "x", out) is None


def test_recon_all_into_a_linked_subject_is_refused_before_it_starts(tmp_path):
    from rgenima_app.imaging.freesurfer import FreeSurferOptions, ensure_freesurfer_subject

    fs, elsewhere = tmp_path / "fs", tmp_path / "elsewhere"
    fs.mkdir()
    elsewhere.mkdir()
    (fs / "sub-01").symlink_to(elsewhere)
    register_root(fs, "the FreeSurfer subjects dir")
    home = tmp_path / "fshome"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "recon-all").write_text("#!/bin/sh\nexit 1\n")
    (home / "bin" / "recon-all").chmod(0o755)
    (home / "license.txt").write_text("x\n")
    t1w = tmp_path / "t1w.nii.gz"
    import nibabel as nib
    import numpy as np

    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((40, 40, 40)).astype(np.float32),
                             np.diag([4.0, 4.0, 4.0, 1.0])), t1w)
    environ = {"FREESURFER_HOME": str(home), "PATH": str(home / "bin")}
    with pytest.raises(OutputNotWritableError, match=r"sub-01 is a symbolic link"):
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(fs), tmp_path / "work", environ=environ)
    assert not list(elsewhere.iterdir())
