"""The command-line contract (docs/architecture.md, "Command line and exit codes"), through the real console script."""
from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from helpers import requires_validator, run_rgenima
from rgenima_app import __version__


def test_version():
    result = run_rgenima("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rgenima {__version__}"


def test_help_lists_the_contract_options():
    result = run_rgenima("--help")
    assert result.returncode == 0
    for option in ("--participant-label", "--session-label", "--bids-filter-file", "--skip-bids-validation",
                   "--work-dir", "--fs-subjects-dir", "--fs-license-file", "--fs-no-reconall", "--nprocs",
                   "--omp-nthreads", "--mem", "--use-plugin", "--stop-on-first-crash", "--genotypes",
                   "--genome-build", "--gene-panel", "--model", "--train", "--train-config", "--llm", "--finetune",
                   "--deepspeed", "--device", "--roi-size", "--seed", "--reports-only", "--version", "--attribution",
                   "--attribution-steps"):
        assert option in result.stdout, option


def test_unknown_analysis_level_is_a_usage_error(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "subject")
    assert result.returncode == 2
    assert "participant" in result.stderr and "group" in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_participant_label_names_the_labels_found(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--skip-bids-validation",
                         "--participant-label", "001", "999")
    assert result.returncode == 18
    assert "999" in result.stderr
    assert "labels found: 001, 002, 003" in result.stderr
    assert "Traceback" not in result.stderr


def test_output_inside_bids_dir_is_refused(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    # BIDS_DIR/derivatives/<name> is the common layout and accepted (tests/test_reliability.py); elsewhere not
    result = run_rgenima(bids, bids / "sub-001" / "rgenima", "participant", check_spec=False)
    assert result.returncode == 2
    assert "inside BIDS_DIR" in result.stderr
    assert not (bids / "sub-001" / "rgenima").exists()


@requires_validator
def test_invalid_bids_input_exits_16(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    (bids / "sub-001" / "anat" / "sub-001_T1w.nii.gz").rename(bids / "sub-001" / "anat" / "sub-001_T1.nii.gz")
    result = run_rgenima(bids, tmp_path / "out", "participant", "--fs-subjects-dir", tiny_cohort / "freesurfer")
    assert result.returncode == 16
    assert "fails BIDS validation" in result.stderr and "sub-001_T1.nii.gz" in result.stderr
    assert "--skip-bids-validation" in result.stderr
    assert not (tmp_path / "out" / "dataset_description.json").exists()


def test_unwritable_output_exits_73(tiny_cohort, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run_rgenima(tiny_cohort / "bids", blocker / "out", "participant", "--skip-bids-validation")
    assert result.returncode == 73
    assert str(blocker / "out") in result.stderr and "not writable" in result.stderr


def test_missing_bids_dir_exits_66(tmp_path):
    result = run_rgenima(tmp_path / "nowhere", tmp_path / "out", "participant")
    assert result.returncode == 66
    assert str(tmp_path / "nowhere") in result.stderr


def test_missing_genotypes_exits_66_naming_the_option(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--genotypes", tmp_path / "x.bed")
    assert result.returncode == 66
    assert "--genotypes" in result.stderr and "x.bed" in result.stderr


@pytest.mark.parametrize("label", ["../x", "01 02", "sub-0/1"])
def test_path_traversal_labels_are_refused(tiny_cohort, tmp_path, label):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", f"--participant-label={label}")
    assert result.returncode == 2
    assert "only letters and digits" in result.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "out").exists()


def test_stage_not_yet_built_fails_loudly_before_any_work(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--reports-only")
    assert result.returncode == 1
    assert "not available" in result.stderr and "--reports-only" in result.stderr
    assert not (tmp_path / "out").exists()


def test_model_that_is_not_a_bundle_is_refused_before_any_work(tiny_cohort, tmp_path):
    model = tmp_path / "bundle"
    model.mkdir()
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--model", model)
    assert result.returncode == 66
    assert "rgenima.json" in result.stderr and "not an rgenima model bundle" in result.stderr
    assert not (tmp_path / "out").exists()


def test_group_level_needs_train_or_model(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "group")
    assert result.returncode == 2
    assert "--train" in result.stderr and "--model" in result.stderr


def test_participant_run_on_the_synthetic_cohort(tiny_cohort, tmp_path):
    """The Done-when run: several labels after one flag, a valid derivatives dataset, config and log."""
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--fs-subjects-dir", tiny_cohort / "freesurfer",
                         "--genotypes", tiny_cohort / "genotypes" / "cohort.bed",
                         "--participant-label", "001", "sub-002", "003", "--seed", "3", "--mem", "2G")
    assert result.returncode == 0, result.stderr
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "rgenima"
    assert description["GeneratedBy"][0]["Version"] == __version__
    assert description["SourceDatasets"][0]["URL"] == (tiny_cohort / "bids").resolve().as_uri()
    configs = list((out / "logs").glob("rgenima-participant-*.toml"))
    assert len(configs) == 1
    saved = tomllib.loads(configs[0].read_text())
    assert saved["options"]["participant_label"] == ["001", "002", "003"]
    assert saved["options"]["seed"] == 3 and saved["options"]["mem_mb"] == 2048
    assert saved["options"]["genotypes"] == str((tiny_cohort / "genotypes" / "cohort.bed").resolve())
    assert saved["versions"]["rgenima"] == __version__ and saved["versions"]["torch"]
    log_text = next((out / "logs").glob("rgenima-participant-*.log")).read_text()
    assert "3 T1w image(s) of 3 participant(s)" in log_text
    roi_table = (out / "desc-rois_dseg.tsv").read_text().splitlines()
    assert roi_table[0].split("\t")[:3] == ["index", "name", "label"] and len(roi_table) == 110


def test_prefix_genotypes_and_repeated_flags(tiny_cohort, tmp_path):
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--skip-bids-validation",
                         "--fs-subjects-dir", tiny_cohort / "freesurfer",
                         "--genotypes", tiny_cohort / "genotypes" / "cohort",
                         "--participant_label", "004", "--participant_label", "005")
    assert result.returncode == 0, result.stderr
    saved = tomllib.loads(next((out / "logs").glob("*.toml")).read_text())
    assert saved["options"]["participant_label"] == ["004", "005"]
    assert saved["options"]["genotypes"].endswith("cohort.bed")


def test_missing_freesurfer_subject_with_no_reconall_exits_66(tiny_cohort, tmp_path):
    result = run_rgenima(tiny_cohort / "bids", tmp_path / "out", "participant", "--skip-bids-validation",
                         "--fs-subjects-dir", tmp_path / "empty", "--fs-no-reconall", "--participant-label", "001")
    assert result.returncode == 66
    assert "aparc+aseg.mgz" in result.stderr and "--fs-no-reconall" in result.stderr


@requires_validator
def test_output_dataset_validates(tiny_cohort, tmp_path):
    import subprocess

    out = tmp_path / "out"
    assert run_rgenima(tiny_cohort / "bids", out, "participant", "--skip-bids-validation",
                       "--fs-subjects-dir", tiny_cohort / "freesurfer", "--participant-label", "001").returncode == 0
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                       capture_output=True, text=True).stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert errors == []


def test_unwritable_home_and_caches_fall_back_to_the_work_dir(tiny_cohort, tmp_path):
    """As in a read-only container: HOME and the cache variables point at places that cannot be written."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    out, work = tmp_path / "out", tmp_path / "work"
    env = {"HOME": str(blocker / "home"), "MPLCONFIGDIR": str(blocker / "mpl"), "HF_HOME": str(blocker / "hf")}
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "-w", work,
                         "--fs-subjects-dir", tiny_cohort / "freesurfer", "--participant-label", "001",
                         "--roi-size", "8", env=env)
    assert result.returncode == 0, result.stderr
    log_text = next((out / "logs").glob("*.log")).read_text()
    assert f"HOME was not writable; using {work / '.cache' / 'home'}" in log_text
    assert f"MPLCONFIGDIR was not writable; using {work / '.cache' / 'matplotlib'}" in log_text
    assert (work / ".cache" / "huggingface").is_dir()
