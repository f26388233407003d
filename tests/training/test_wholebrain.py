"""The ``llm_wholebrain`` baseline's inputs and settings (its training: test_train_cli.py)."""
from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from rgenima_app.errors import UsageError
from rgenima_app.imaging.freesurfer import FreeSurferSubject
from rgenima_app.imaging.rois import extract_rois
from rgenima_app.imaging.wholebrain import cached_wholebrain_volume, wholebrain_volume
from rgenima_app.training.data import CohortSample, prepare_wholebrain
from rgenima_app.training.settings import train_settings


def test_wholebrain_settings_are_checked():
    settings = train_settings({"baselines": {"run": ["llm_wholebrain"], "wholebrain_size": 32,
                                             "wholebrain_depth": 18, "wholebrain_width": 8, "wholebrain_dim": 64}})
    assert settings.baselines.run == ["llm_wholebrain"] and settings.baselines.wholebrain_size == 32
    defaults = train_settings(None).baselines
    assert (defaults.wholebrain_size, defaults.wholebrain_depth, defaults.wholebrain_dim) == (64, 10, 256)
    for values, words in [({"wholebrain_size": 8}, "at least 16"), ({"wholebrain_size": 32.0}, "whole number"),
                          ({"wholebrain_depth": 12}, "10, 18, 34, 50"), ({"wholebrain_width": 0}, "at least 1"),
                          ({"wholebrain_sise": 32}, "unknown key.*wholebrain_sise")]:
        with pytest.raises(UsageError, match=words):
            train_settings({"baselines": {"run": ["llm_wholebrain"], **values}})


def _subject(train_cohort, name="sub-001") -> FreeSurferSubject:
    subject_dir = train_cohort / "freesurfer" / name
    assert subject_dir.is_dir(), sorted(p.name for p in (train_cohort / "freesurfer").iterdir())[:3]
    return FreeSurferSubject(name, subject_dir, reused=True)


def test_wholebrain_volume_is_normalised_like_the_roi_patches_and_cached(train_cohort, tmp_path):
    fs = _subject(train_cohort)
    raw = wholebrain_volume(fs.intensity, fs.segmentation, size=16, normalization="none")
    scaled = wholebrain_volume(fs.intensity, fs.segmentation, size=16, normalization="wm")
    patches_scale = extract_rois(fs.intensity, fs.segmentation, roi_size=4).intensity_scale
    assert raw.shape == (16, 16, 16) and raw.dtype == np.float32 and raw.max() > 0
    np.testing.assert_allclose(scaled, raw * patches_scale, rtol=1e-5, atol=1e-6)
    assert raw[0].any() and raw[:, 0].any()  # the brain's box fills the cube

    first = cached_wholebrain_volume(fs, tmp_path, size=16)
    stamp = first.stat().st_mtime_ns
    assert cached_wholebrain_volume(fs, tmp_path, size=16) == first and first.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(np.load(first), scaled)
    assert cached_wholebrain_volume(fs, tmp_path, size=20) != first  # another size: another entry


def test_missing_wholebrain_volume_is_a_clear_error(train_cohort, tmp_path):
    subject_dir = tmp_path / "sub-001"
    (subject_dir / "mri").mkdir(parents=True)
    shutil.copy(_subject(train_cohort).segmentation, subject_dir / "mri" / "aparc+aseg.mgz")  # no T1.mgz
    samples = [CohortSample("sub-001", "001", None, "AD", freesurfer=FreeSurferSubject("sub-001", subject_dir, True)),
               CohortSample("sub-002", "002", None, "NC")]
    config = SimpleNamespace(work_dir=tmp_path / "work", device="cpu")
    with pytest.raises(UsageError, match="2 sample") as error:
        prepare_wholebrain(samples, train_settings(None), config.work_dir, config.device)
    assert str(subject_dir / "mri" / "T1.mgz") in str(error.value) and "sub-002" in str(error.value)
    assert "llm_wholebrain out of [baselines] run" in error.value.hint


def test_the_settings_know_the_depths_the_model_builds():
    """training/settings.py keeps its own copy of the depths (so that reading settings loads no torch)."""
    from rgenima_app.models.wholebrain import DEPTHS
    from rgenima_app.training.settings import WHOLEBRAIN_DEPTHS

    assert tuple(sorted(DEPTHS)) == WHOLEBRAIN_DEPTHS
