"""Stage 2: the connector and the LLM learn to answer ``This subject is <label>.`` (NLL of the answer only),
or, for a progression target, the target head learns ΔCDR-SB or conversion (``RGenIMA.set_target``).

Which LLM weights train is set by ``--finetune`` (``models.finetune``); the RiT is frozen and its
tokens come from the cache. A plain PyTorch loop (AdamW, linear warm-up then cosine decay, gradient
accumulation, gradient clipping, bfloat16 autocast on GPUs that support it), or a DeepSpeed engine
(``--deepspeed``) doing the same under ZeRO.

Data configurations (the paper's): ``gene`` (SNP text only), ``image_gene`` (paired), ``mixture``
(paired samples, each shown without its image with probability ``mixture_fraction`` in an epoch); and
``image`` (ROI tokens only), the ablation that measures what the genotypes add.
Augmentation permutes the order of gene blocks per training sample and epoch; evaluation samples
are never permuted or duplicated.

Every choice made per epoch is drawn from a generator seeded by (seed, epoch), so a run resumed from
a checkpoint sees exactly the batches an uninterrupted run would have seen.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rgenima_app.genetics.serialize import serialize_genotypes
from rgenima_app.models.mllm import MLLMSample, RGenIMA
from rgenima_app.training.budget import EtaLog, StageCost, training_cost
from rgenima_app.training.distributed import shard, world
from rgenima_app.training.settings import Stage2Settings
from rgenima_app.training.stage1 import Curve

log = logging.getLogger("rgenima")
CHECKPOINT_FORMAT = 1


@dataclass
class Stage2Item:
    """What stage 2 knows of one sample: its label, panel genotypes and cached image tokens."""

    name: str
    participant: str
    diagnosis: str
    genotypes: pd.DataFrame | None
    tokens: torch.Tensor | None
    target: float | None = None     # ΔCDR-SB or converted (0/1) with a progression target


def to_mllm_sample(item: Stage2Item, *, with_image: bool, with_genes: bool, fmt: str,
                   gene_seed: int | None = None, label: bool = True, sep: str = "") -> MLLMSample:
    """The model input of one item; ``gene_seed`` permutes the gene blocks (training only); ``sep`` is
    the dosage separator of the compact SNP text (``RGenIMA.dosage_separator``)."""
    text = None
    if with_genes and item.genotypes is not None:
        text = serialize_genotypes(item.genotypes, fmt, seed=gene_seed, sep=sep)
    tokens = item.tokens if with_image else None
    return MLLMSample(genome_text=text, image_tokens=tokens, label=item.diagnosis if label else None,
                      target=item.target if label else None)


def evaluation_sample(item: Stage2Item, data: str, fmt: str, label: bool = False, sep: str = "") -> MLLMSample:
    """An evaluation input: all the modalities the data configuration uses, no augmentation."""
    return to_mllm_sample(item, with_image=data != "gene" and item.tokens is not None,
                          with_genes=data != "image", fmt=fmt, label=label, sep=sep)


def epoch_samples(items: list[Stage2Item], epoch: int, seed: int, data: str, fmt: str,
                  settings: Stage2Settings, sep: str = "") -> list[MLLMSample]:
    """The shuffled training samples of one epoch (modalities and gene order drawn per sample)."""
    rng = np.random.default_rng([seed, epoch])
    out = []
    for j in rng.permutation(len(items)):
        item = items[j]
        with_image = data != "gene" and item.tokens is not None
        if data == "mixture" and with_image and item.genotypes is not None:
            with_image = bool(rng.random() >= settings.mixture_fraction)
        gene_seed = int(rng.integers(2**31)) if settings.permute_genes else None
        out.append(to_mllm_sample(item, with_image=with_image, with_genes=data != "image", fmt=fmt,
                                  gene_seed=gene_seed, sep=sep))
    return out


def lr_lambda(total_steps: int, warmup_ratio: float):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to zero."""
    warmup = max(1, int(round(total_steps * warmup_ratio))) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """bfloat16 autocast on GPUs that support it (``auto``/``bfloat16``), else full precision."""
    if device.type != "cuda" or setting == "float32":
        return None
    if setting in ("auto", "bfloat16") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


class Stage2Trainer:
    """Trains ``model``'s trainable parameters; checkpoints to ``checkpoint_dir`` and resumes from it."""

    def __init__(self, model: RGenIMA, settings: Stage2Settings, *, data: str, fmt: str, seed: int,
                 device: torch.device, checkpoint_dir: Path | None = None, deepspeed_config: dict | None = None):
        self.model, self.settings, self.data, self.fmt, self.seed = model, settings, data, fmt, seed
        self.device = device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.deepspeed_config = deepspeed_config
        self.engine = None
        self.autocast = autocast_dtype(settings.dtype, device)

    # ------------------------------------------------------------------ set-up
    def _param_groups(self) -> list[dict]:
        s = self.settings
        # the new layers (connector, and a progression target's head) train at the connector's rate
        heads = self.model.target_head.parameters() if self.model.target_head is not None else []
        connector = [p for p in [*self.model.connector.parameters(), *heads] if p.requires_grad]
        ids = {id(p) for p in connector}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": connector, "lr": s.connector_lr or s.lr, "weight_decay": s.weight_decay}]
        if rest:
            groups.append({"params": rest, "lr": s.lr, "weight_decay": s.weight_decay})
        return groups

    def _setup(self, total_steps: int):
        groups = self._param_groups()
        optimizer = torch.optim.AdamW(groups)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(total_steps, self.settings.warmup_ratio))
        if self.deepspeed_config is not None:
            import deepspeed

            self.engine, optimizer, _, scheduler = deepspeed.initialize(
                model=self.model, optimizer=optimizer, lr_scheduler=scheduler, config=self.deepspeed_config)
        return optimizer, scheduler

    # -------------------------------------------------------------- checkpoints
    def _trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def save_checkpoint(self, optimizer, scheduler, epoch: int, next_batch: int, step: int, curve: Curve) -> None:
        """Trainable weights, optimizer moments, schedule and progress; safetensors + JSON, atomically."""
        if self.checkpoint_dir is None or self.engine is not None:
            return
        tmp = self.checkpoint_dir.with_name(self.checkpoint_dir.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({n: p.detach().contiguous().cpu() for n, p in self._trainable().items()}, str(tmp / "weights.safetensors"))
        state = optimizer.state_dict()
        moments = {f"{i}.{k}": v.detach().contiguous().cpu() for i, s in state["state"].items()
                   for k, v in s.items() if torch.is_tensor(v)}
        moments["torch_rng"] = torch.get_rng_state()
        save_file(moments, str(tmp / "optimizer.safetensors"))
        progress = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "next_batch": next_batch, "step": step,
                    "param_groups": state["param_groups"], "scheduler": scheduler.state_dict(),
                    "curve": curve.to_dict(), "trainable": sorted(self._trainable())}
        (tmp / "progress.json").write_text(json.dumps(progress, default=str))
        old = self._previous()
        shutil.rmtree(old, ignore_errors=True)  # left by a run killed in the middle of this swap
        if self.checkpoint_dir.exists():
            self.checkpoint_dir.replace(old)
        tmp.replace(self.checkpoint_dir)
        shutil.rmtree(old, ignore_errors=True)

    def _previous(self) -> Path:
        return self.checkpoint_dir.with_name(self.checkpoint_dir.name + ".old")

    def load_checkpoint(self, optimizer, scheduler) -> tuple[int, int, int, Curve] | None:
        """(epoch, next_batch, step, curve) of the last checkpoint, with weights and optimizer restored."""
        if self.checkpoint_dir is None or self.engine is not None:
            return None
        # a kill between the two renames of save_checkpoint leaves only the previous checkpoint
        directory = next((d for d in (self.checkpoint_dir, self._previous()) if (d / "progress.json").is_file()), None)
        if directory is None:
            return None
        progress = json.loads((directory / "progress.json").read_text())
        trainable = self._trainable()
        if progress.get("format") != CHECKPOINT_FORMAT or progress.get("trainable") != sorted(trainable):
            log.warning("stage 2: checkpoint %s does not fit this model; starting over", self.checkpoint_dir)
            return None
        weights = load_file(str(directory / "weights.safetensors"))
        with torch.no_grad():
            for name, param in trainable.items():
                param.copy_(weights[name])
        moments = load_file(str(directory / "optimizer.safetensors"))
        torch.set_rng_state(moments.pop("torch_rng"))
        state: dict[int, dict] = {}
        for key, value in moments.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": progress["param_groups"]})
        scheduler.load_state_dict(progress["scheduler"])
        curve = Curve(**progress["curve"])
        log.info("stage 2: resuming from %s (epoch %d, batch %d, step %d)", directory,
                 progress["epoch"] + 1, progress["next_batch"], progress["step"])
        return progress["epoch"], progress["next_batch"], progress["step"], curve

    # ------------------------------------------------------------------- cost
    def cost(self, train: list[Stage2Item], validation: list[Stage2Item]) -> StageCost:
        """Memory and compute of ``fit`` (one real forward pass of a first training batch, counted)."""
        s = self.settings
        samples = epoch_samples(train, 0, self.seed, self.data, self.fmt, s, sep=self.model.dosage_separator)
        batch = samples[:s.batch_size]
        return training_cost(f"stage 2 ({self.model.finetune_mode})", self.model, lambda: self._loss(batch),
                             len(batch), 0, len(samples), len(validation), s.epochs)

    # ----------------------------------------------------------------- training
    def _loss(self, samples: list[MLLMSample]) -> torch.Tensor:
        batch = self.model.encode(samples, with_answers=True)
        runner = self.engine if self.engine is not None else self.model
        if self.autocast is not None:
            with torch.autocast("cuda", dtype=self.autocast):
                return runner(batch)
        return runner(batch)

    @torch.no_grad()
    def validation_loss(self, items: list[Stage2Item]) -> float:
        self.model.eval()
        total = 0.0
        size = self.settings.eval_batch_size
        for i in range(0, len(items), size):
            chunk = [evaluation_sample(it, self.data, self.fmt, label=True, sep=self.model.dosage_separator)
                     for it in items[i:i + size]]
            total += float(self._loss(chunk)) * len(chunk)
        return total / len(items)

    def fit(self, train: list[Stage2Item], validation: list[Stage2Item]) -> Curve:
        s = self.settings
        rank, size = world() if self.deepspeed_config is not None else (0, 1)
        batches_per_epoch = math.ceil(len(shard(train, rank, size)) / s.batch_size)
        total_steps = s.epochs * math.ceil(batches_per_epoch / s.gradient_accumulation)
        optimizer, scheduler = self._setup(total_steps)
        curve, start_epoch, start_batch, step = Curve(), 0, 0, 0
        resumed = self.load_checkpoint(optimizer, scheduler)
        if resumed:
            start_epoch, start_batch, step, curve = resumed
        bar = tqdm(total=total_steps, initial=step, desc=f"stage 2 ({self.model.finetune_mode})", unit="step",
                   disable=None)
        # without a terminal the bar is off: a log line every 5% keeps a long epoch (a pretrained LLM on a
        # CPU: 10-40 minutes) from being silent in the log file
        log_every = max(1, total_steps // 20) if bar.disable else 0
        eta = EtaLog(total_steps, step)

        def advanced(loss_value: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
            if log_every and step % log_every == 0:
                log.info("stage 2 step %d of %d (epoch %d): loss %.4f, about %s left", step, total_steps, epoch + 1,
                         loss_value, eta.remaining(step))
        for epoch in range(start_epoch, s.epochs):
            samples = shard(epoch_samples(train, epoch, self.seed, self.data, self.fmt, s,
                                          sep=self.model.dosage_separator), rank, size)
            self.model.train()
            epoch_loss = 0.0
            first = start_batch if epoch == start_epoch else 0
            for b in range(first, batches_per_epoch):
                chunk = samples[b * s.batch_size:(b + 1) * s.batch_size]
                loss = self._loss(chunk)
                if self.engine is not None:
                    self.engine.backward(loss)
                    self.engine.step()
                else:
                    (loss / s.gradient_accumulation).backward()
                epoch_loss += loss.item() * len(chunk)
                last = b == batches_per_epoch - 1
                if self.engine is None and ((b + 1) % s.gradient_accumulation == 0 or last):
                    torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                   s.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    advanced(loss.item())
                    if s.checkpoint_every and step % s.checkpoint_every == 0 and not last:
                        self.save_checkpoint(optimizer, scheduler, epoch, b + 1, step, curve)
                elif self.engine is not None and ((b + 1) % s.gradient_accumulation == 0 or last):
                    step += 1
                    advanced(loss.item())
            curve.train_loss.append(epoch_loss / max(1, len(samples) - first * s.batch_size))
            if validation:
                curve.val_loss.append(self.validation_loss(validation))
                log.info("stage 2 epoch %d: train loss %.4f, validation loss %.4f", epoch + 1,
                         curve.train_loss[-1], curve.val_loss[-1])
            self.save_checkpoint(optimizer, scheduler, epoch + 1, 0, step, curve)
        bar.close()
        self.model.eval()
        return curve
