"""Stage 1: the RiT learns 4-way stage classification from ROI patches; then it is frozen.

Early stopping watches the validation loss (never the test set): the weights of the best
validation epoch are kept. Without a validation set the last epoch's weights are kept. Patches are
read from the work-dir cache (memory-mapped), one batch at a time. The trained weights are stored in
the run's work directory, so a rerun does not train stage 1 again.

The loop (``fit_classifier``) takes any encoder with a stage head; it also trains the whole-brain
ResNet of the ``llm_wholebrain`` baseline.

``[stage1] roi_volume_loss`` and ``roi_stage_loss`` (0 by default: the paper's loss, CLS only) add the RiT's
ROI-token heads to the loss (``models/rit.py``): the mean squared error of each token's own-ROI volume
prediction and the cross-entropy of the ROI tokens' pooled stage logits, each times its weight.
Early stopping still watches the CLS head's validation cross-entropy.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from rgenima_app import STAGES
from rgenima_app.models.rit import RiT, RiTConfig, log_volumes
from rgenima_app.training.budget import EtaLog, StageCost, training_cost
from rgenima_app.training.data import CohortSample
from rgenima_app.training.settings import Stage1Settings

log = logging.getLogger("rgenima")


@dataclass
class Curve:
    """Per-epoch losses/accuracies of one training stage (for the figure and the model card)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"train_loss": self.train_loss, "val_loss": self.val_loss, "val_accuracy": self.val_accuracy}


def rit_config(settings: Stage1Settings, roi_size: int) -> RiTConfig:
    return RiTConfig(roi_size=roi_size, dim=settings.dim, depth=settings.depth, heads=settings.heads,
                     dropout=settings.dropout, patch_encoder=settings.patch_encoder,
                     use_size_feature=settings.use_size_feature, roi_volume_head=settings.roi_volume_loss > 0,
                     roi_stage_head=settings.roi_stage_loss > 0)


def image_batch(samples: list[CohortSample], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(patches (B, 109, S, S, S), log volumes (B, 109)) of some samples, on ``device``."""
    patches = torch.from_numpy(np.stack([np.load(s.patches, mmap_mode="r") for s in samples])).to(device)
    volumes = log_volumes(torch.from_numpy(np.stack([s.volumes_mm3 for s in samples]))).to(device)
    return patches, volumes


def _targets(samples: list[CohortSample], device) -> torch.Tensor:
    return torch.tensor([STAGES.index(s.diagnosis) for s in samples], device=device)


#: Stage logits (B, 4) of a batch of samples and an auxiliary loss to add in training (or None).
Forward = Callable[[list[CohortSample]], tuple[torch.Tensor, torch.Tensor | None]]


@torch.no_grad()
def evaluate_classifier(model: nn.Module, forward: Forward, samples: list[CohortSample],
                        batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy of the stage head, accuracy) of ``model`` on ``samples``."""
    model.eval()
    losses, correct = [], 0
    for i in range(0, len(samples), batch_size):
        batch = samples[i:i + batch_size]
        logits, _ = forward(batch)
        target = _targets(batch, logits.device)
        losses.append(float(nn.functional.cross_entropy(logits, target, reduction="sum")))
        correct += int((logits.argmax(-1) == target).sum())
    return sum(losses) / len(samples), correct / len(samples)


def evaluate_rit(model: RiT, samples: list[CohortSample], batch_size: int, device) -> tuple[float, float]:
    """(mean cross-entropy of the CLS head, accuracy) of a trained RiT on ``samples``."""
    return evaluate_classifier(model, lambda batch: (model(*image_batch(batch, device)).logits, None), samples,
                               batch_size)


def rit_forward(model: RiT, settings: Stage1Settings, device) -> Forward:
    """The RiT's stage logits and its weighted ROI-token losses (None when both weights are 0)."""
    def forward(batch: list[CohortSample]) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = model(*image_batch(batch, device))
        auxiliary = None
        if out.volume_error is not None:
            auxiliary = settings.roi_volume_loss * out.volume_error.pow(2).mean()
        if out.roi_logits is not None:
            stage = settings.roi_stage_loss * nn.functional.cross_entropy(out.roi_logits, _targets(batch, device))
            auxiliary = stage if auxiliary is None else auxiliary + stage
        return out.logits, auxiliary
    return forward


def fit_classifier(model: nn.Module, forward: Forward, train: list[CohortSample], validation: list[CohortSample],
                   settings: Stage1Settings, seed: int, desc: str) -> Curve:
    """Train any image encoder with a stage head on ``train`` (AdamW, ``settings``' epochs, batch size, lr,
    weight decay; the stage cross-entropy plus ``forward``'s auxiliary loss); early stopping on the
    ``validation`` stage cross-entropy (may be empty), keeping the best epoch's weights; the model is then
    frozen."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    rng = np.random.default_rng(seed)
    curve, best, best_loss, stale = Curve(), None, float("inf"), 0
    bar = tqdm(range(settings.epochs), desc=desc, unit="epoch", disable=None)
    eta = EtaLog(settings.epochs)
    for epoch in bar:
        model.train()
        order = rng.permutation(len(train))
        total = 0.0
        for i in range(0, len(order), settings.batch_size):
            batch = [train[j] for j in order[i:i + settings.batch_size]]
            logits, auxiliary = forward(batch)
            loss = nn.functional.cross_entropy(logits, _targets(batch, logits.device))
            if auxiliary is not None:
                loss = loss + auxiliary
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        curve.train_loss.append(total / len(train))
        if validation:
            val_loss, val_acc = evaluate_classifier(model, forward, validation, settings.batch_size)
            curve.val_loss.append(val_loss)
            curve.val_accuracy.append(val_acc)
            bar.set_postfix(train=f"{curve.train_loss[-1]:.3f}", val=f"{val_loss:.3f}", acc=f"{val_acc:.2f}")
            if bar.disable:  # no terminal: the log file gets the progress (early stopping may end it sooner)
                log.info("%s epoch %d of %d: train loss %.4f, validation loss %.4f, accuracy %.2f, at most %s left",
                         desc, epoch + 1, settings.epochs, curve.train_loss[-1], val_loss, val_acc,
                         eta.remaining(epoch + 1))
            if val_loss < best_loss - 1e-6:
                best, best_loss, stale = copy.deepcopy(model.state_dict()), val_loss, 0
            else:
                stale += 1
                if settings.patience and stale >= settings.patience:
                    log.info("%s: early stop after epoch %d (best validation loss %.4f)", desc, epoch + 1, best_loss)
                    break
    if best is not None:
        model.load_state_dict(best)
    model.requires_grad_(False).eval()
    return curve


def stage1_cost(settings: Stage1Settings, roi_size: int, n_train: int, n_validation: int) -> StageCost:
    """What training this RiT will take (memory, compute), counted on the meta device before any weight exists."""
    config, batch = rit_config(settings, roi_size), settings.batch_size
    with torch.device("meta"):
        model = RiT(config)
        patches = torch.empty(batch, config.n_rois, roi_size, roi_size, roi_size)
        volumes = torch.empty(batch, config.n_rois)
    return training_cost("stage 1 (RiT)", model, lambda: model(patches, volumes), batch,
                         patches.numel() * patches.element_size(), n_train, n_validation, settings.epochs,
                         keeps_best_copy=True)


def train_stage1(train: list[CohortSample], validation: list[CohortSample], settings: Stage1Settings,
                 roi_size: int, seed: int, device: torch.device) -> tuple[RiT, Curve]:
    """Train a RiT on ``train``; early stopping on ``validation`` (may be empty)."""
    torch.manual_seed(seed)
    model = RiT(rit_config(settings, roi_size)).to(device)
    model.fit_size_standardization(log_volumes(torch.from_numpy(np.stack([s.volumes_mm3 for s in train]))))
    curve = fit_classifier(model, rit_forward(model, settings, device), train, validation, settings, seed,
                           "stage 1 (RiT)")
    return model, curve


def save_weights(model: nn.Module, path: Path) -> None:
    """A trained encoder's state (weights and buffers) as safetensors, written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def load_weights(model: nn.Module, path: Path, device) -> nn.Module:
    """``model`` with the weights of ``path``, on ``device``, frozen."""
    model.load_state_dict(load_file(str(path)))
    return model.to(device).requires_grad_(False).eval()



def load_rit(config: RiTConfig, path: Path, device) -> RiT:
    return load_weights(RiT(config), path, device)
