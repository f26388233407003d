"""What a training stage will cost, known before it starts: peak memory, compute and an estimated time.

A configuration that cannot finish on the device found (the paper's RiT at S = 96, D = 768 is a 679 M-weight
patch embedding: about 17 GB resident on a CPU) is said so up front, and refused when it does not fit in
memory, instead of running for an hour without a word.

Memory is counted, not guessed: the model is built on PyTorch's ``meta`` device (no storage), its
parameters are counted, and one forward pass of a batch is run there under a dispatch mode that adds up
the bytes of every tensor the operators create (an upper bound of what autograd keeps for the backward
pass). Compute is PyTorch's own FLOP counter on the same pass. Time is that compute over the device's
measured matrix-multiply rate, so it is a lower bound; the stage's progress lines then give an ETA from
the rate actually reached.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from rgenima_app.errors import UsageError

log = logging.getLogger("rgenima")

# AdamW keeps two moments per trainable weight, beside the weight and its gradient (float32).
BYTES_PER_TRAINABLE = 4 * 4
# fit_classifier keeps a copy of the best epoch's weights.
BYTES_PER_WEIGHT_COPY = 4


class _AllocatedBytes(TorchDispatchMode):
    """Adds up the bytes of every non-view tensor an operator returns (meta tensors have no storage)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for value in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(value, torch.Tensor):
                    self.total += value.numel() * value.element_size()
        return out


@dataclass(frozen=True)
class StageCost:
    """One training stage: its peak resident bytes and total FLOPs (forward and backward, all epochs)."""

    stage: str
    trainable: int          # trainable weights
    frozen: int             # other weights
    memory_bytes: int
    flops: float

    def seconds(self, flops_per_second: float) -> float:
        return self.flops / flops_per_second


def forward_cost(forward: Callable[[], object]) -> tuple[int, float]:
    """(bytes created, FLOPs) of ``forward()`` (on the meta device: exact counts, no compute)."""
    counter, allocated = FlopCounterMode(display=False), _AllocatedBytes()
    with counter, allocated, torch.no_grad():
        forward()
    return allocated.total, float(counter.get_total_flops())


def training_cost(stage: str, model: torch.nn.Module, forward: Callable[[], object], batch_size: int,
                  input_bytes: int, n_train: int, n_validation: int, epochs: int,
                  keeps_best_copy: bool = False) -> StageCost:
    """Peak memory and compute of ``epochs`` epochs over ``n_train`` samples (forward + backward, about 3x a
    forward pass) and a validation pass over ``n_validation`` per epoch. ``forward`` runs one batch of
    ``batch_size`` (on the meta device, or one real batch); ``input_bytes`` is that batch's input as loaded."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    activations, flops = forward_cost(forward)
    memory = (trainable * (BYTES_PER_TRAINABLE + (BYTES_PER_WEIGHT_COPY if keeps_best_copy else 0))
              + frozen * 4 + 3 * activations // 2 + 2 * input_bytes)  # activations and part of their gradients; the batch twice
    per_sample = flops / batch_size
    return StageCost(stage, trainable, frozen, int(memory), epochs * per_sample * (3 * n_train + n_validation))


def measured_flops_per_second(device: torch.device, size: int = 1024, repeats: int = 5) -> float:
    """The device's float32 matrix-multiply rate (best of a few 1024² products: a fraction of a second)."""
    a = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        (a @ a).sum().item()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def available_memory(device: torch.device, mem_mb: int | None = None) -> tuple[int, str]:
    """(bytes, where the figure comes from): free GPU memory, or the smallest of the host's available
    memory, the container's cgroup limit and ``--mem``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free memory of {torch.cuda.get_device_name(device)}"
    limits = {"available host memory": psutil.virtual_memory().available}
    cgroup = _cgroup_limit()
    if cgroup is not None:
        limits["the container's memory limit"] = cgroup
    if mem_mb:
        limits["--mem"] = mem_mb * 2 ** 20
    source = min(limits, key=limits.get)
    return int(limits[source]), source


def _cgroup_limit() -> int | None:
    for path in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            value = path.read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 2 ** 60:  # "max" or a huge number: no limit
            return int(value)
    return None


def gigabytes(n: float) -> str:
    """A memory size as a person would say it (MB under 1 GB, so a small one does not read as 0.0 GB)."""
    return f"{n / 2 ** 30:.1f} GB" if n >= 2 ** 30 else f"{n / 2 ** 20:.0f} MB"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _quantity(n: float, unit: str = "") -> str:
    """``n`` with an SI prefix: 28.8 M, 6.2 TFLOP."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip()


def describe(cost: StageCost, flops_per_second: float, available: int, source: str) -> str:
    return (f"{cost.stage}: {_quantity(cost.trainable)} trainable + {_quantity(cost.frozen)} frozen weights, "
            f"about {gigabytes(cost.memory_bytes)} of memory ({gigabytes(available)} {source}), "
            f"{_quantity(cost.flops, 'FLOP')}, at least {duration(cost.seconds(flops_per_second))} at the "
            f"device's {flops_per_second / 1e9:.0f} GFLOP/s")


def check_fits(cost: StageCost, available: int, source: str, hint: str, resident: int = 0) -> None:
    """Refuse (before any training) a stage whose estimate, less what is already ``resident``, exceeds
    what is available."""
    needed = cost.memory_bytes - resident
    if needed > available:
        raise UsageError(f"{cost.stage} needs about {gigabytes(needed)} of memory more and {source} is "
                         f"{gigabytes(available)}: it would not finish on this device", hint=hint)


class EtaLog:
    """The time left from the rate reached so far, for the log lines of stages whose progress bar is off."""

    def __init__(self, total: int, done: int = 0):
        self.total, self.start_done, self.start = total, done, time.monotonic()

    def remaining(self, done: int) -> str:
        rate = (done - self.start_done) / max(time.monotonic() - self.start, 1e-9)
        return duration((self.total - done) / rate) if rate > 0 else "unknown"
