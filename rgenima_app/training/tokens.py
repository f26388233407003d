"""Frozen RiT tokens (109 × D per sample), cached in the work dir so stage 2 never runs RiT again.

A cache entry is keyed by the RiT's weights (a hash of its state) and by the sample's patch cache
entry (whose name is itself a content key of the segmentation, the intensity volume and the
extraction options): new weights or new inputs give new entries, unchanged ones are read back.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rgenima_app.confinement import check_write
from rgenima_app.models.rit import RiT
from rgenima_app.training.data import CohortSample
from rgenima_app.training.stage1 import image_batch


def weights_hash(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:20]


def rit_tokens(rit: RiT, samples: list[CohortSample], cache_root: Path, device: torch.device,
               batch_size: int = 8) -> dict[str, torch.Tensor]:
    """Sample name -> (109, D) float32 tokens on the CPU, computed once per (weights, inputs)."""
    directory = check_write(Path(cache_root) / weights_hash(rit))
    directory.mkdir(parents=True, exist_ok=True)

    def entry(sample: CohortSample) -> Path:
        return directory / f"{sample.name}-{Path(sample.patches).parent.name}.safetensors"

    tokens: dict[str, torch.Tensor] = {}
    todo = []
    for sample in samples:
        path = entry(sample)
        if path.is_file():
            tokens[sample.name] = load_file(str(path))["tokens"]
        else:
            todo.append(sample)
    rit.eval()
    for i in tqdm(range(0, len(todo), batch_size), desc="RiT tokens", unit="batch", disable=None or not todo):
        batch = todo[i:i + batch_size]
        with torch.no_grad():
            patches, volumes = image_batch(batch, device)
            out = rit(patches, volumes).tokens.float().cpu()
        for sample, value in zip(batch, out):
            value = value.contiguous()
            tmp = entry(sample).with_suffix(".tmp")
            save_file({"tokens": value}, str(tmp))
            tmp.replace(entry(sample))
            tokens[sample.name] = value
    return tokens
