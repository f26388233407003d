"""FreeSurfer stage: naming, license, installation, reuse, locks, recon-all command lines, plugins."""
from __future__ import annotations

import pytest

from rgenima_app.errors import (
    FreeSurferLicenseError,
    FreeSurferMissingError,
    MissingInputError,
    ProcessingError,
    UsageError,
)
from rgenima_app.imaging.freesurfer import FreeSurferOptions, ensure_freesurfer_subject, find_license, fs_subject_name
from rgenima_app.imaging.workflow import freesurfer_workflow, plugin_settings, recon_all_node


@pytest.fixture
def t1w(tmp_path):
    path = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    path.parent.mkdir(parents=True)
    import nibabel as nib
    import numpy as np

    # checked before recon-all: some signal, 4 mm voxels, a 192 mm field of view
    nib.save(nib.Nifti1Image((np.arange(48 ** 3) % 997).astype(np.int16).reshape(48, 48, 48),
                             np.diag([4.0, 4.0, 4.0, 1.0])), path)
    return path


@pytest.fixture
def license_file(tmp_path):
    path = tmp_path / "license.txt"
    path.write_text("user@example.org\n12345\n")
    return path


def fake_freesurfer(tmp_path):
    """An environment where recon-all is 'installed' (an executable stub on PATH) and FREESURFER_HOME set."""
    home = tmp_path / "freesurfer"
    (home / "bin").mkdir(parents=True)
    recon_all = home / "bin" / "recon-all"
    recon_all.write_text("#!/bin/sh\nexit 1\n")
    recon_all.chmod(0o755)
    return {"PATH": str(home / "bin"), "FREESURFER_HOME": str(home)}


def test_subject_names():
    assert fs_subject_name("01") == "sub-01"
    assert fs_subject_name("sub-01", "ses-bl") == "sub-01_ses-bl"
    assert fs_subject_name("01", "2") == "sub-01_ses-2"


def test_license_lookup_order(tmp_path, license_file):
    home = tmp_path / "fshome"
    home.mkdir()
    (home / "license.txt").write_text("x")
    env_license = tmp_path / "env_license.txt"
    env_license.write_text("x")
    environ = {"FS_LICENSE": str(env_license), "FREESURFER_HOME": str(home)}
    assert find_license(license_file, environ) == license_file.resolve()
    assert find_license(None, environ) == env_license.resolve()
    assert find_license(None, {"FREESURFER_HOME": str(home)}) == (home / "license.txt").resolve()
    with pytest.raises(FreeSurferLicenseError, match="no FreeSurfer license"):
        find_license(None, {})
    with pytest.raises(FreeSurferLicenseError, match="missing.txt"):
        find_license(tmp_path / "missing.txt", environ)


def test_reuse_needs_neither_license_nor_freesurfer(tmp_path, t1w):
    subjects = tmp_path / "fs"
    aparc = subjects / "sub-01_ses-1" / "mri" / "aparc+aseg.mgz"
    aparc.parent.mkdir(parents=True)
    aparc.write_bytes(b"x")
    subject = ensure_freesurfer_subject("01", "1", [t1w], FreeSurferOptions(subjects), tmp_path / "work", environ={})
    assert subject.reused and subject.segmentation == aparc and subject.name == "sub-01_ses-1"


def test_no_reconall_names_the_missing_path(tmp_path, t1w):
    with pytest.raises(MissingInputError, match=r"sub-01/mri/aparc\+aseg.mgz.*--fs-no-reconall"):
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs", no_reconall=True),
                                  tmp_path / "work", environ={})


def test_license_then_installation_errors(tmp_path, t1w, license_file):
    with pytest.raises(FreeSurferLicenseError):
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs"), tmp_path / "work",
                                  environ={"PATH": ""})
    with pytest.raises(FreeSurferMissingError, match="recon-all is not on the PATH"):
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs", license_file=license_file),
                                  tmp_path / "work", environ={"PATH": str(tmp_path)})


def test_stale_lock_reported_with_command(tmp_path, t1w, license_file):
    scripts = tmp_path / "fs" / "sub-01" / "scripts"
    scripts.mkdir(parents=True)
    lock = scripts / "IsRunning.lh+rh"
    lock.write_text("")
    with pytest.raises(ProcessingError, match="IsRunning") as info:
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs", license_file=license_file),
                                  tmp_path / "work", environ=fake_freesurfer(tmp_path))
    assert f"rm -f {lock}" in str(info.value)


def test_failed_recon_all_is_a_processing_error(tmp_path, t1w, license_file, monkeypatch):
    """The nipype workflow really runs (the recon-all stub fails); the error points at the crash files."""
    environ = fake_freesurfer(tmp_path)
    monkeypatch.setenv("PATH", environ["PATH"] + ":" + __import__("os").environ["PATH"])
    crash = tmp_path / "out" / "logs"
    with pytest.raises(ProcessingError, match="FreeSurfer workflow") as info:
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs", license_file=license_file,
                                  nprocs=1, crash_dir=crash), tmp_path / "work", environ=environ)
    assert str(crash) in str(info.value)
    assert list(crash.glob("crash-*"))


def test_recon_all_command_line(tmp_path, t1w, license_file):
    subjects = tmp_path / "fs"
    subjects.mkdir()
    node = recon_all_node("sub-01_ses-1", [t1w], subjects, license_file, omp_nthreads=4)
    cmd = node.interface.cmdline
    assert cmd.startswith("recon-all -all")
    for part in (f"-i {t1w.resolve()}", "-subjid sub-01_ses-1", f"-sd {subjects.resolve()}", "-openmp 4"):
        assert part in cmd
    assert node.inputs.environ["FS_LICENSE"] == str(license_file)
    assert node.n_procs == 4
    # resume: once the subject exists, -i is dropped (nipype then skips finished steps)
    (subjects / "sub-01_ses-1" / "mri").mkdir(parents=True)
    resumed = recon_all_node("sub-01_ses-1", [t1w], subjects, license_file, omp_nthreads=4).interface.cmdline
    assert resumed.startswith("recon-all -all") and " -i " not in resumed and "-subjid sub-01_ses-1" in resumed


def test_two_t1w_runs_and_missing_t1w(tmp_path, t1w, license_file):
    second = t1w.with_name("sub-01_run-2_T1w.nii.gz")
    second.write_bytes(b"x")
    (tmp_path / "fs").mkdir()
    cmd = recon_all_node("sub-01", [t1w, second], tmp_path / "fs", license_file).interface.cmdline
    assert f"-i {t1w.resolve()} -i {second.resolve()}" in cmd
    with pytest.raises(MissingInputError, match="nothere"):
        recon_all_node("sub-01", [tmp_path / "nothere.nii.gz"], tmp_path / "fs", license_file)


def test_workflow_config(tmp_path, t1w, license_file):
    (tmp_path / "fs").mkdir()
    workflow = freesurfer_workflow("sub-01", [t1w], tmp_path / "fs", tmp_path / "work", license_file,
                                   omp_nthreads=2, crash_dir=tmp_path / "out" / "logs")
    assert workflow.base_dir == str(tmp_path / "work")
    assert workflow.config["execution"]["crashdump_dir"] == str(tmp_path / "out" / "logs")
    assert [n.name for n in workflow._graph.nodes()] == ["recon_all_sub01"]


def test_plugin_settings(tmp_path):
    assert plugin_settings(nprocs=3, mem_gb=8) == (
        "MultiProc", {"n_procs": 3, "raise_insufficient": False, "maxtasksperchild": 1, "memory_gb": 8.0})
    slurm = tmp_path / "slurm.yml"
    slurm.write_text("plugin: SLURM\nplugin_args:\n  sbatch_args: --time=24:00:00 --mem=8G\n")
    assert plugin_settings(use_plugin=slurm) == ("SLURM", {"sbatch_args": "--time=24:00:00 --mem=8G"})
    multiproc = tmp_path / "mp.yml"
    multiproc.write_text("plugin: MultiProc\n")
    assert plugin_settings(nprocs=2, use_plugin=multiproc)[1]["n_procs"] == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("plugin: Telepathy\n")
    with pytest.raises(UsageError, match="Telepathy"):
        plugin_settings(use_plugin=bad)
    with pytest.raises(MissingInputError):
        plugin_settings(use_plugin=tmp_path / "absent.yml")


@pytest.mark.parametrize("shape, voxel, message", [
    ((40, 40, 40), (0.004, 0.004, 0.004), r"voxel size 0\.004 x 0\.004 x 0\.004 mm"),   # metres in the header
    ((40, 40, 40), (12.0, 12.0, 12.0), r"voxel size 12 x 12 x 12 mm"),
    ((200, 200, 8), (1.0, 1.0, 1.0), r"covers 200 x 200 x 8 mm"),                     # a slab
    ((40, 40, 40), (1.0, 1.0, 1.0), r"covers 40 x 40 x 40 mm"),
])
def test_t1w_with_implausible_geometry_is_refused_before_the_license(tmp_path, shape, voxel, message):
    """Issue 21: each T1w is checked (signal, voxel size, field of view) before the license is asked for."""
    import nibabel as nib
    import numpy as np

    from rgenima_app.imaging.freesurfer import check_t1w

    t1w = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random(shape).astype(np.float32),
                             np.diag([*voxel, 1.0])), t1w)
    with pytest.raises(MissingInputError, match=message):
        check_t1w(t1w)
    with pytest.raises(MissingInputError, match=rf"{t1w}.*{message}"):  # not FreeSurferLicenseError (126)
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs"), tmp_path / "work", environ={})
    nib.save(nib.Nifti1Image(np.full((40, 40, 40), np.nan, dtype=np.float32), np.diag([4.0, 4.0, 4.0, 1.0])), t1w)
    with pytest.raises(MissingInputError, match="no usable signal"):
        ensure_freesurfer_subject("01", None, [t1w], FreeSurferOptions(tmp_path / "fs"), tmp_path / "work", environ={})


def test_unusable_reused_subject_is_named_before_any_stage(tmp_path):
    import nibabel as nib
    import numpy as np

    from rgenima_app.imaging.freesurfer import check_sample_inputs

    mri = tmp_path / "fs" / "sub-01" / "mri"
    mri.mkdir(parents=True)
    nib.save(nib.MGHImage(np.zeros((8, 8, 8), np.int32), np.eye(4)), mri / "aparc+aseg.mgz")
    with pytest.raises(MissingInputError, match=r"aparc\+aseg\.mgz holds no label"):
        check_sample_inputs("sub-01", [], tmp_path / "fs")
    (mri / "aparc+aseg.mgz").write_bytes(b"\x00" * 10)
    with pytest.raises(MissingInputError, match=r"aparc\+aseg\.mgz"):
        check_sample_inputs("sub-01", [], tmp_path / "fs")
