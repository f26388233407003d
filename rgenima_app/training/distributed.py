"""Multi-process training with DeepSpeed: configs, process group, rank roles, data shards, gathering.

rgenima is launched once per process by the standard launchers (``torchrun``, ``deepspeed``, ``srun``):

    torchrun --nproc_per_node 4 -m rgenima_app BIDS OUT group --train --deepspeed zero3
    deepspeed --num_gpus 4 --module rgenima_app BIDS OUT group --train --deepspeed zero3

Every process prepares the same cohort (the caches make this cheap and concurrency-safe); rank 0
trains stage 1 while the others wait, then all ranks load its RiT and tokens; stage 2 runs under
DeepSpeed, each rank on its own share of every epoch's batches; at the end the ZeRO-partitioned
weights are gathered and rank 0 alone evaluates and writes the outputs. Without a launcher
(``WORLD_SIZE`` unset) ``--deepspeed`` runs as a single process. On CPUs the gloo backend is used.
"""
from __future__ import annotations

import json
import os
from datetime import timedelta
from importlib import resources
from pathlib import Path

import torch

from rgenima_app.errors import MissingInputError, UsageError
from rgenima_app.training.settings import DEEPSPEED_PRESETS, Stage2Settings


def load_deepspeed_config(spec: str, stage2: Stage2Settings) -> dict:
    """A preset name (``zero2``, ``zero3``, ``zero3-offload``) or a JSON file; "auto" values filled in."""
    if spec in DEEPSPEED_PRESETS:
        text = resources.files("rgenima_app.data").joinpath("deepspeed", f"{spec}.json").read_text()
        source = f"preset {spec}"
    else:
        try:
            text = Path(spec).read_text()
        except OSError as exc:
            raise MissingInputError(f"cannot read --deepspeed {spec}: {exc.strerror}") from exc
        source = spec
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--deepspeed {source} is not valid JSON: {exc}") from exc
    fill = {"train_micro_batch_size_per_gpu": stage2.batch_size,
            "gradient_accumulation_steps": stage2.gradient_accumulation,
            "gradient_clipping": stage2.max_grad_norm}
    for key, value in fill.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
    config.pop("train_batch_size", None) if config.get("train_batch_size") == "auto" else None
    bf16 = config.setdefault("bf16", {})
    if bf16.get("enabled", "auto") == "auto":
        bf16["enabled"] = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()
                               and stage2.dtype in ("auto", "bfloat16"))
    for section in ("optimizer", "scheduler"):
        if section in config:
            raise UsageError(f"--deepspeed {source}: remove the '{section}' section",
                             hint="rgenima sets AdamW and the warm-up/cosine schedule from [stage2] of the train config")
    return config


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) without one."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> None:
    """Start the process group for DeepSpeed (gloo on CPU, nccl on GPU) if it is not running."""
    import deepspeed
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:  # a single process without a launcher
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": os.environ.get("MASTER_PORT", "29511"),
                           "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    # stage 1 runs on rank 0 alone while the other ranks wait at a barrier: allow it hours
    deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo",
                               timeout=timedelta(hours=6))


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard(samples: list, rank: int, size: int) -> list:
    """This rank's share of an epoch: every rank gets the same number (wrapping around), so that the
    collective operations of every step line up."""
    if size == 1:
        return samples
    per_rank = -(-len(samples) // size)
    return [samples[(rank + size * i) % len(samples)] for i in range(per_rank)]


def gathered_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict of a (possibly ZeRO-3-partitioned) model, on every rank, on the CPU."""
    import deepspeed

    params = list(model.parameters())
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
