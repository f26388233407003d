"""What a training stage costs is known before it starts (rgenima_app.training.budget), and a stage that
cannot fit in memory is refused before any imaging work."""
from __future__ import annotations

import pytest
import torch

from helpers import run_rgenima
from rgenima_app.errors import UsageError
from rgenima_app.models.rit import RiT
from rgenima_app.training.budget import EtaLog, StageCost, check_fits, duration, forward_cost, training_cost
from rgenima_app.training.settings import Stage1Settings
from rgenima_app.training.stage1 import rit_config, stage1_cost
from rgenima_app.workflows.train import STAGE1_HINT
from training.conftest import train_args, write_train_config


def test_forward_cost_counts_a_linear_layer_exactly():
    with torch.device("meta"):
        layer = torch.nn.Linear(10, 20)
        x = torch.empty(4, 10)
    created, flops = forward_cost(lambda: layer(x))
    assert created == 4 * 20 * 4           # one float32 output of 4 x 20; the transposed weight is a view
    assert flops == 2 * 4 * 10 * 20        # one multiply-add per weight and sample


def test_stage1_cost_counts_the_weights_of_the_model_that_will_be_trained():
    settings = Stage1Settings()
    small, large = stage1_cost(settings, 8, n_train=10, n_validation=2), stage1_cost(settings, 16, 10, 2)
    real = sum(p.numel() for p in RiT(rit_config(settings, 8)).parameters())
    assert small.trainable == real and small.frozen == 0
    # the "conv" patch embedding has a weight per voxel and model dimension: it grows with the cube of the ROI size
    config = rit_config(settings, 8)
    assert config.patch_encoder == "conv"  # the default
    assert large.trainable - small.trainable == (16 ** 3 - 8 ** 3) * config.dim
    assert large.memory_bytes > small.memory_bytes
    assert small.memory_bytes > small.trainable * 16  # weights, gradients and AdamW's two moments at least
    longer = stage1_cost(settings, 8, n_train=20, n_validation=2)
    assert longer.flops > 1.9 * small.flops and longer.memory_bytes == small.memory_bytes


def test_training_cost_scales_with_epochs_and_keeps_the_best_copy():
    with torch.device("meta"):
        model = torch.nn.Linear(100, 4)
        x = torch.empty(8, 100)
    one = training_cost("s", model, lambda: model(x), 8, 0, n_train=80, n_validation=8, epochs=1)
    three = training_cost("s", model, lambda: model(x), 8, 0, n_train=80, n_validation=8, epochs=3,
                          keeps_best_copy=True)
    assert three.flops == pytest.approx(3 * one.flops)
    assert one.flops == pytest.approx(2 * 100 * 4 * (3 * 80 + 8))  # backward is about twice the forward
    assert three.memory_bytes - one.memory_bytes == 404 * 4         # the best epoch's copy of the 404 weights


def test_check_fits_refuses_what_does_not_fit_and_names_the_way_out():
    cost = StageCost("stage 1 (RiT)", trainable=10, frozen=0, memory_bytes=3 * 2 ** 30, flops=1e9)
    check_fits(cost, 4 * 2 ** 30, "available host memory", STAGE1_HINT)  # fits: nothing raised
    check_fits(cost, 2 * 2 ** 30, "available host memory", STAGE1_HINT, resident=2 * 2 ** 30)  # partly loaded
    with pytest.raises(UsageError) as caught:
        check_fits(cost, 2 ** 30, "--mem", STAGE1_HINT)
    assert "3.0 GB" in str(caught.value) and "--mem is 1.0 GB" in str(caught.value)
    assert "--roi-size" in caught.value.hint


def test_eta_and_durations_read_as_a_person_would_say_them():
    assert [duration(s) for s in (30, 600, 7200)] == ["30 s", "10 min", "2.0 h"]
    assert EtaLog(total=10).remaining(0) == "unknown"  # no progress yet: no rate to extrapolate
    assert EtaLog(total=10).remaining(5).endswith(("s", "min", "h"))


def test_train_refuses_a_stage1_that_does_not_fit_before_any_imaging(train_cohort, tmp_path):
    out = tmp_path / "out"
    config = write_train_config(tmp_path / "train.toml", name="tiny")
    result = run_rgenima(*train_args(train_cohort, out, config, "--mem", "1"))  # 1 MB for the whole run
    assert result.returncode != 0
    assert "stage 1 (RiT) needs about" in result.stderr and "would not finish" in result.stderr
    assert "--roi-size" in result.stderr                      # the hint names what to change
    assert "Traceback" not in result.stderr
    assert not (out / "models").exists()                      # nothing that looks like a result
    assert not list(out.rglob("*.npy"))                      # no ROI patch was extracted
