"""Helpers for tests that run the real ``rgenima`` console script."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from derivatives_spec import unlisted_files


def rgenima_command() -> list[str]:
    """The installed console script (as users run it); ``python -m rgenima_app`` if not on PATH."""
    exe = shutil.which("rgenima", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return [exe] if exe else [sys.executable, "-m", "rgenima_app"]


def run_rgenima(*args, check_spec: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``rgenima ARGS``; after a run that wrote an output dataset, check every file against the spec."""
    result = subprocess.run([*rgenima_command(), *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=900)
    positional = [a for a in map(str, args) if not a.startswith("-")]
    if check_spec and len(positional) >= 2 and Path(positional[1]).is_dir():
        unlisted = unlisted_files(Path(positional[1]))
        assert not unlisted, f"files not in bids_spec/derivatives.yaml: {unlisted}"
    return result


def validator_available() -> bool:
    return shutil.which("bids-validator-deno") is not None


requires_validator = pytest.mark.skipif(not validator_available(), reason="bids-validator-deno is not installed")


def make_tiny_cohort(out: Path, n_participants: int, seed: int) -> Path:
    """A synthetic cohort of the ``tiny`` preset (bids/, freesurfer/, genotypes/, ground truth) at ``out``."""
    from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                       generate_cohort)

    spec = PRESETS["tiny"]
    params = GeneratorParameters(preset="tiny", seed=seed, n_participants=n_participants, sessions=1,
                                 grid=spec["grid"], voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
                                 planted_rois=list(DEFAULT_PLANTED_ROIS), planted_genes=list(DEFAULT_PLANTED_GENES))
    generate_cohort(out, params, progress=False)
    return out


KILL_ON_REPLACE = """
import fnmatch, os, signal

_pattern, _replace = os.environ.get("RGENIMA_TEST_KILL_ON_REPLACE"), os.replace


def _replace_or_die(src, dst, *args, **kwargs):
    # SIGKILL this process when an atomic write is about to rename its finished temporary file onto a
    # target matching the pattern: the kill falls in the middle of that derivative's write
    if os.path.basename(str(src)).startswith(".tmp-") and fnmatch.fnmatch(os.path.basename(str(dst)), _pattern):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)


if _pattern:
    os.replace = _replace_or_die
"""


def kill_on_replace_env(folder: Path, pattern: str) -> dict:
    """Environment for a run that SIGKILLs itself in the middle of writing the first file whose name
    matches ``pattern`` (a ``sitecustomize`` on ``PYTHONPATH``; rgenima itself has no test hook)."""
    site = folder / "kill-site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(KILL_ON_REPLACE)
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"PYTHONPATH": path, "RGENIMA_TEST_KILL_ON_REPLACE": pattern}


def real_freesurfer_bids(shared_data: Path, root: Path, subjects: dict[str, tuple[str, str, str]],
                         name: str = "real FreeSurfer subjects") -> tuple[Path, Path]:
    """Real FreeSurfer subjects of ``shared_data/freesurfer`` as a BIDS dataset (their conformed intensity
    image as the T1w) and a SUBJECTS_DIR of links to them. ``subjects``: label -> (version, subject,
    intensity file under mri/)."""
    import json

    import nibabel as nib
    import numpy as np

    bids, subjects_dir = root / "bids", root / "freesurfer"
    subjects_dir.mkdir(parents=True)
    for label, (version, subject, intensity) in subjects.items():
        source = shared_data / "freesurfer" / version / subject
        (subjects_dir / f"sub-{label}").symlink_to(source)
        anat = bids / f"sub-{label}" / "anat"
        anat.mkdir(parents=True)
        image = nib.load(source / "mri" / intensity)
        nifti = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
        nifti.header.set_xyzt_units("mm", "sec")
        nib.save(nifti, anat / f"sub-{label}_T1w.nii.gz")
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": name, "BIDSVersion": "1.10.0", "DatasetType": "raw"}))
    (bids / "participants.tsv").write_text("participant_id\n" + "".join(f"sub-{s}\n" for s in subjects))
    return bids, subjects_dir
