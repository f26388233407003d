"""Fixtures of the training tests: a 24-participant synthetic cohort and a tiny train config."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

TINY_TRAIN_CONFIG = """
name = "{name}"
data = "{data}"
tiny = {{ hidden_size = 64, num_hidden_layers = 2, num_attention_heads = 4, num_key_value_heads = 2, intermediate_size = 128, vocab_size = 1024 }}
[split]
test = 0.25
validation = 0.15
folds = {folds}
[stage1]
epochs = 3
batch_size = 4
dim = 32
depth = 1
heads = 4
patch_encoder = "strided"
[stage2]
epochs = {epochs}
batch_size = 4
lr = 1e-3
checkpoint_every = 1
[baselines]
run = {baselines}
epochs = 15
wholebrain_size = 16
wholebrain_width = 4
wholebrain_dim = 16
"""


def write_train_config(path: Path, name: str = "tiny", data: str = "image_gene", folds: int = 0,
                       epochs: int = 2, baselines: tuple[str, ...] = ()) -> Path:
    path.write_text(TINY_TRAIN_CONFIG.format(name=name, data=data, folds=folds, epochs=epochs,
                                             baselines=json.dumps(list(baselines))))
    return path


@pytest.fixture(scope="session")
def train_cohort(tmp_path_factory) -> Path:
    """A 24-participant tiny synthetic cohort (bids/, freesurfer/, genotypes/), made once."""
    from helpers import make_tiny_cohort

    return make_tiny_cohort(tmp_path_factory.mktemp("train") / "cohort", n_participants=24, seed=3)


def train_args(cohort: Path, out: Path, config: Path, *extra) -> list:
    return [cohort / "bids", out, "group", "--train", "--train-config", config,
            "--genotypes", cohort / "genotypes" / "cohort.bed", "--fs-subjects-dir", cohort / "freesurfer",
            "--roi-size", "8", "--skip-bids-validation", "--nprocs", "1", *extra]


def bundle_test_probabilities(bundle_dir: Path, cohort: Path, work_dir: Path, samples: list[str]) -> np.ndarray:
    """Reload a bundle in this process and predict the given samples from the cohort's inputs."""
    from rgenima_app.genetics.extract import panel_genotypes
    from rgenima_app.imaging.freesurfer import FreeSurferOptions
    from rgenima_app.imaging.participant import process_participant_imaging
    from rgenima_app.models.bundle import load_bundle
    from rgenima_app.training.data import CohortSample
    from rgenima_app.training.evaluate import predict_items
    from rgenima_app.training.stage2 import Stage2Item
    from rgenima_app.training.tokens import rit_tokens

    bundle = load_bundle(bundle_dir)
    meta = bundle.metadata
    participants = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t").set_index("participant_id")
    ids = {s: participants.loc[s, "genetic_id"] for s in samples}
    genotypes = panel_genotypes(cohort / "genotypes" / "cohort.bed", bundle.snp_panel, ids)
    items = []
    for name in samples:
        label = name.removeprefix("sub-")
        imaging = process_participant_imaging(label, None, [], FreeSurferOptions(cohort / "freesurfer", no_reconall=True),
                                              work_dir, roi_size=bundle.roi_size, **bundle.roi_extraction)
        sample = CohortSample(name, label, None, participants.loc[name, "diagnosis"], imaging.patches_path,
                              imaging.morph["volume_mm3"].to_numpy(float))
        tokens = rit_tokens(bundle.model.image_encoder, [sample], work_dir / "check-tokens", torch.device("cpu"))
        items.append(Stage2Item(name, label, sample.diagnosis, genotypes[name], tokens[name]))
    return predict_items(bundle.model, items, meta["training"]["data"], meta["snp_text_format"])
