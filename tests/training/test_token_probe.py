"""The own-ROI probe of the RiT tokens, and stage 1's ROI-token losses."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from rgenima_app.errors import UsageError
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.rit import log_volumes
from rgenima_app.training import token_probe
from rgenima_app.training.data import CohortSample
from rgenima_app.training.settings import Stage1Settings, train_settings
from rgenima_app.training.stage1 import image_batch, train_stage1

R, D = 7, 12


def _tokens(volumes: np.ndarray, own: bool, rng) -> np.ndarray:
    """(N, R, D) tokens: column 0 holds the token's own ROI volume (own) or the mean volume (global only)."""
    tokens = rng.normal(size=(*volumes.shape, D))
    tokens[..., 0] += 3 * (volumes if own else volumes.mean(axis=1, keepdims=True))
    return tokens


def test_probe_finds_tokens_that_carry_their_own_roi_and_not_global_ones():
    rng = np.random.default_rng(0)
    volumes = rng.normal(size=(240, R))  # independent ROI volumes
    train, held = slice(0, 160), slice(160, None)
    own = _tokens(volumes, own=True, rng=rng)
    probe = token_probe.probe_tokens(own[train], volumes[train], own[held], volumes[held])
    assert probe.own_r2.shape == (R,) and np.all(probe.own_r2 > 0.8)
    assert np.all(probe.other_r2 < 0.2)
    shared = _tokens(volumes, own=False, rng=rng)
    probe = token_probe.probe_tokens(shared[train], volumes[train], shared[held], volumes[held])
    assert np.median(probe.own_r2) < 0.4  # the mean of 7 ROIs explains about 1/7 of one ROI
    assert abs(np.median(probe.own_r2) - np.median(probe.other_r2)) < 0.15
    summary = probe.to_dict([f"roi{i}" for i in range(R)])
    assert summary["n_train"] == 160 and summary["n_eval"] == 80 and len(summary["own_r2"]) == R


def test_dual_ridge_equals_scikit_learns_ridge():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 30, D)), rng.normal(size=(2, 30))
    x[..., 3] *= 10
    r2 = token_probe.ridge_r2(x[:, :20], y[:, :20], x[:, 20:], y[:, 20:])
    for r in range(2):
        mean, sd = x[r, :20].mean(0), x[r, :20].std(0)
        train, held = (x[r, :20] - mean) / sd, (x[r, 20:] - mean) / sd
        alpha = token_probe.RIDGE * np.trace(train @ train.T) / 20
        model = Ridge(alpha=alpha).fit(train, y[r, :20])
        assert r2[r] == pytest.approx(model.score(held, y[r, 20:]), abs=1e-8)


def test_derangement_moves_every_index():
    order = token_probe.derangement(N_ROIS, seed=4)
    assert sorted(order) == list(range(N_ROIS)) and not np.any(order == np.arange(N_ROIS))


def _samples(tmp_path, n: int, rng) -> list[CohortSample]:
    """Samples whose 4³ ROI patches are filled in proportion to the ROI's volume (as ``fit`` patches show size)."""
    samples = []
    for i in range(n):
        volumes = rng.uniform(500, 5000, size=N_ROIS)
        patches = np.zeros((N_ROIS, 4, 4, 4), dtype=np.float32)
        for r, v in enumerate(volumes):
            patches[r].reshape(-1)[: int(round(64 * v / 5000))] = 1.0
        path = tmp_path / f"p{i}.npy"
        np.save(path, patches + rng.normal(0, 0.05, patches.shape).astype(np.float32))
        samples.append(CohortSample(f"sub-{i}", str(i), None, ("NC", "SMC", "MCI", "AD")[i % 4], patches=path,
                                    volumes_mm3=volumes))
    return samples


def test_stage1_trains_the_roi_tokens_to_carry_their_volume(tmp_path):
    rng = np.random.default_rng(2)
    samples = _samples(tmp_path, 24, rng)
    settings = Stage1Settings(epochs=15, batch_size=8, lr=3e-3, dim=16, depth=1, heads=4, dropout=0.0,
                              patch_encoder="strided", patience=0, roi_volume_loss=1.0, roi_stage_loss=0.5)

    def volume_mse(model) -> float:
        with torch.no_grad():
            return float(model(*image_batch(samples, "cpu")).volume_error.pow(2).mean())

    torch.manual_seed(0)
    untrained, _ = train_stage1(samples, [], Stage1Settings(**{**settings.__dict__, "epochs": 1, "lr": 0.0}),
                                roi_size=4, seed=0, device=torch.device("cpu"))
    trained, curve = train_stage1(samples, [], settings, roi_size=4, seed=0, device=torch.device("cpu"))
    assert trained.config.roi_volume_head and trained.config.roi_stage_head
    assert volume_mse(trained) < 0.5 * volume_mse(untrained)
    assert curve.train_loss[-1] < curve.train_loss[0]
    z = (log_volumes(torch.from_numpy(np.stack([s.volumes_mm3 for s in samples]))) - trained.size_mean) / trained.size_std
    assert torch.allclose(z.mean(0), torch.zeros(N_ROIS), atol=1e-4)  # standardised on the training samples


def test_negative_roi_token_loss_is_refused():
    with pytest.raises(UsageError, match="roi_volume_loss"):
        train_settings({"stage1": {"roi_volume_loss": -1.0}})
    assert train_settings({"stage1": {"roi_stage_loss": 1}}).stage1.roi_stage_loss == 1.0
