"""Every FreeSurfer/resource option reaches recon-all on every path that may run it: the participant level,
the participant level with ``--model``, and ``group --train`` (which once dropped ``--mem``).

recon-all is the stand-in of ``rgenima_app.synthetic.recon_all`` (it records its command line, FS_LICENSE
and when it ran, then copies a finished synthetic subject); nipype, the MultiProc plugin, the scheduling
of the samples and everything after recon-all are rgenima's real code. Two samples with ``--nprocs 2``
must run at the same time (one nipype graph over the samples).
"""
from __future__ import annotations

import os

import pytest
from helpers import run_rgenima
from inference_helpers import tiny_model

from rgenima_app.genetics.extract import select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.models.bundle import save_bundle, training_summary
from rgenima_app.models.tiny_llm import train_tiny_tokenizer
from rgenima_app.synthetic.recon_all import install_recon_all_standin, most_at_once, read_standin_log

# recon-all reserves 4 GB (imaging/workflow.py RECON_ALL_MEM_GB): 9 GB lets MultiProc run two at once
OPTIONS = ["--nprocs", "2", "--omp-nthreads", "1", "--mem", "9G", "--skip-bids-validation"]

TRAIN_CONFIG = """
name = "paths"
data = "image_gene"
tiny = { hidden_size = 32, num_hidden_layers = 1, num_attention_heads = 2, num_key_value_heads = 1, intermediate_size = 64, vocab_size = 512 }
[split]
test = 0.25
validation = 0.25
[stage1]
epochs = 1
batch_size = 4
dim = 16
depth = 1
heads = 2
patch_encoder = "strided"
[stage2]
epochs = 1
batch_size = 4
"""


@pytest.fixture
def standin(tmp_path, tiny_cohort):
    """recon-all on the PATH (a stand-in taking 2 s per subject), a license file and the call log."""
    log = tmp_path / "recon-all-calls.jsonl"
    env = install_recon_all_standin(tmp_path / "freesurfer-home", tiny_cohort / "freesurfer", log, seconds=2.0)
    env["PATH"] = f"{env['PATH']}{os.pathsep}{os.environ['PATH']}"
    license_file = tmp_path / "license.txt"
    license_file.write_text("stand-in license\n")
    return {"env": env, "log": log, "license": license_file}


def assert_options_reached_recon_all(standin, out, n_samples: int) -> None:
    calls = read_standin_log(standin["log"])
    assert len(calls) == n_samples, calls
    for call in calls:
        argv = call["argv"]
        assert argv[argv.index("-openmp") + 1] == "1"                      # --omp-nthreads
        assert argv[argv.index("-sd") + 1] == str(out / "sourcedata" / "freesurfer")
        assert call["license"] == str(standin["license"].resolve())       # --fs-license-file
    log_text = "".join(p.read_text() for p in (out / "logs").glob("*.log"))
    assert "MultiProc plugin, n_procs=2, memory_gb=9.0" in log_text         # --nprocs and --mem
    assert most_at_once(calls) == 2, "two samples with --nprocs 2 ran one after the other"


def test_participant_level(standin, tiny_cohort, tmp_path):
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--participant-label", "001", "002",
                         "--fs-license-file", standin["license"], "--roi-size", "8", *OPTIONS, env=standin["env"])
    assert result.returncode == 0, result.stderr
    assert_options_reached_recon_all(standin, out, 2)
    assert len(list(out.glob("sub-00[12]/anat/*_desc-rois_morph.tsv"))) == 2


def test_participant_level_with_a_model(standin, tiny_cohort, tmp_path):
    panel, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", gene_panel(None, "GRCh37"))
    bundle = save_bundle(tmp_path / "models" / "tiny", tiny_model(train_tiny_tokenizer(1024, 0)),
                         genome_build="GRCh37", snp_text_format="compact", training=training_summary(["sub-009"]),
                         metrics={}, snp_panel=panel, name="tiny")
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "participant", "--participant-label", "001", "002",
                         "--model", bundle, "--genotypes", tiny_cohort / "genotypes" / "cohort.bed",
                         "--fs-license-file", standin["license"], *OPTIONS, env=standin["env"])
    assert result.returncode == 0, result.stderr
    assert_options_reached_recon_all(standin, out, 2)
    assert len(list(out.glob("sub-00[12]/**/*_desc-tiny_predictions.tsv"))) == 2


def test_group_train(standin, tiny_cohort, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text(TRAIN_CONFIG)
    out = tmp_path / "out"
    result = run_rgenima(tiny_cohort / "bids", out, "group", "--train", "--train-config", config,
                         "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--roi-size", "8",
                         "--fs-license-file", standin["license"], *OPTIONS, env=standin["env"])
    assert result.returncode == 0, result.stderr
    n_samples = len(read_standin_log(standin["log"]))
    assert n_samples >= 8  # every labelled, genotyped sample of the cohort
    assert_options_reached_recon_all(standin, out, n_samples)
    assert (out / "models" / "paths" / "rgenima.json").is_file()
