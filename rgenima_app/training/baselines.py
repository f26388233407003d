"""Baselines of the paper's Table 1, trained and tested on exactly R-GenIMA's split of the same run.

``snp_mlp``          SNP-only: an MLP on the fold's panel dosage vector (imputed with training frequencies).
``bert_rit_concat``  Image-gene †: a small BERT over the same SNP text + the frozen RiT's CLS-like pooled
                     token (mean of the 109 ROI tokens), concatenated, MLP head.
``bert_rit_cross``   Image-gene ‡: the BERT's SNP-text tokens attend (cross-attention) to the 109 frozen
                     RiT tokens.
``llm_wholebrain``   LLM + whole-brain (the paper's LLM+Med3D): a whole-brain 3D ResNet (``WholeBrainResNet``,
                     ``[baselines] wholebrain_*``) is trained with a stage head on each sample's whole-brain
                     volume (``imaging.wholebrain``: the FreeSurfer conformed T1, normalised like the ROI
                     patches, ``wholebrain_size``³ voxels) by stage 1's loop and ``[stage1]`` schedule, then
                     frozen; its one token per sample feeds a fresh LLM built and trained exactly as
                     R-GenIMA's stage 2 (same ``--llm``, ``--finetune``, ``[stage2]``, data ``image_gene``).

The image side of the fusion baselines is the same frozen, cached stage-1 RiT that R-GenIMA reads, so
the comparison isolates the fusion model; ``llm_wholebrain`` instead keeps the LLM and swaps the RiT's
109 ROI tokens for one whole-brain token. The SNP-only LLM is R-GenIMA with ``data = "gene"``. The
first three train with AdamW for ``[baselines] epochs`` epochs at ``[baselines] lr``, keeping the
weights of the best validation loss.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rgenima_app import STAGES
from rgenima_app.genetics.serialize import dosage_separator, serialize_genotypes
from rgenima_app.models.fusion import FusionClassifier
from rgenima_app.models.genetic import DosageMLP, SnpBert, SnpBertConfig
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.wholebrain import WholeBrainConfig, WholeBrainResNet
from rgenima_app.training.data import CohortSample
from rgenima_app.training.evaluate import predict_items
from rgenima_app.training.settings import BaselineSettings, TrainSettings
from rgenima_app.training.stage1 import fit_classifier, load_weights, save_weights
from rgenima_app.training.stage2 import Stage2Item, Stage2Trainer


class CachedTokens(nn.Module):
    """The image side of the fusion baselines: frozen RiT tokens in, (tokens, pooled mean) out."""

    def features(self, tokens: torch.Tensor):
        return tokens, tokens.mean(dim=1)


def _inputs(name: str, items, fmt: str, bert: SnpBert | None = None):
    """Model inputs of some items for one baseline: a callable's positional arguments, batch first."""
    if name == "snp_mlp":
        return (torch.tensor(np.stack([it.genotypes["dosage"].to_numpy(np.float32) for it in items])),)
    sep = dosage_separator(bert.tokenizer) if fmt == "compact" else ""  # one token per dosage, as R-GenIMA
    ids, mask = bert.tokenize([serialize_genotypes(it.genotypes, fmt, sep=sep) for it in items])
    return torch.stack([it.tokens for it in items]), (ids, mask)


def _take(inputs, index):
    """The rows ``index`` of (nested tuples of) batch-first tensors."""
    return tuple(_take(x, index) if isinstance(x, tuple) else x[index] for x in inputs)


def build_baseline(name: str, n_snps: int, image_dim: int, tokenizer) -> nn.Module:
    if name == "snp_mlp":
        return DosageMLP(n_snps)
    bert = SnpBert(tokenizer, SnpBertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                           intermediate_size=128))
    mode = "concat" if name.endswith("concat") else "cross"
    return FusionClassifier(CachedTokens(), bert, image_dim=image_dim, genetic_dim=bert.out_dim, mode=mode, dim=64)


def train_baseline(name: str, train, validation, test, settings: BaselineSettings, fmt: str, tokenizer,
                   seed: int, batch_size: int = 8) -> np.ndarray:
    """Train one baseline; returns its (n_test, 4) probabilities. Items need genotypes (and tokens
    for the fusion baselines)."""
    torch.manual_seed(seed)
    n_snps = len(train[0].genotypes)
    image_dim = train[0].tokens.shape[-1] if train[0].tokens is not None else 1
    model = build_baseline(name, n_snps, image_dim, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    # each split's SNP text is serialised and tokenised once, not in every batch of every epoch
    bert = None if name == "snp_mlp" else model.genetic_encoder
    train_inputs, validation_inputs, test_inputs = (_inputs(name, items, fmt, bert) if items else None
                                                    for items in (train, validation, test))
    target = lambda items: torch.tensor([STAGES.index(it.diagnosis) for it in items])  # noqa: E731
    train_target, validation_target = target(train), target(validation)
    rng = np.random.default_rng(seed)
    best, best_loss = None, float("inf")
    for _ in tqdm(range(settings.epochs), desc=f"baseline {name}", unit="epoch", disable=None):
        model.train()
        order = torch.from_numpy(rng.permutation(len(train)))
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(*_take(train_inputs, batch)), train_target[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if validation:
            model.eval()
            with torch.no_grad():
                val_loss = float(nn.functional.cross_entropy(model(*validation_inputs), validation_target))
            if val_loss < best_loss:
                best, best_loss = copy.deepcopy(model.state_dict()), val_loss
    if best is not None:
        model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        return torch.softmax(model(*test_inputs), dim=-1).numpy()


def wholebrain_config(settings: BaselineSettings) -> WholeBrainConfig:
    return WholeBrainConfig(depth=settings.wholebrain_depth, width=settings.wholebrain_width,
                            out_dim=settings.wholebrain_dim)


def volume_batch(samples: list[CohortSample], device: torch.device) -> torch.Tensor:
    """(B, 1, S, S, S) whole-brain volumes of some samples, on ``device``."""
    return torch.from_numpy(np.stack([np.load(s.wholebrain) for s in samples]))[:, None].to(device)


def train_llm_wholebrain(train: list[CohortSample], validation: list[CohortSample], test: list[CohortSample],
                         items: dict[str, Stage2Item], settings: TrainSettings,
                         build: Callable[[int, int], RGenIMA], seed: int, device: torch.device,
                         state_dir: Path) -> np.ndarray:
    """The LLM + whole-brain baseline; returns its (n_test, 4) probabilities, in the order of ``test``.

    Samples need ``wholebrain`` volumes, ``items`` (by sample name) the genotypes. ``build(dim,
    n_tokens)`` makes a fresh LLM as R-GenIMA's is made. The trained ResNet and the stage-2 checkpoint
    live in ``state_dir``, so an interrupted run resumes with the same image tokens.
    """
    torch.manual_seed(seed)
    encoder = WholeBrainResNet(wholebrain_config(settings.baselines)).to(device)
    weights = state_dir / "wholebrain.safetensors"
    if weights.is_file():
        load_weights(encoder, weights, device)
    else:
        fit_classifier(encoder, lambda batch: (encoder(volume_batch(batch, device)), None), train, validation,
                       settings.stage1, seed, "baseline llm_wholebrain: stage 1 (whole-brain ResNet)")
        save_weights(encoder, weights)
    tokens: dict[str, torch.Tensor] = {}
    samples = [*train, *validation, *test]
    with torch.no_grad():
        for i in range(0, len(samples), settings.stage1.batch_size):
            batch = samples[i:i + settings.stage1.batch_size]
            out = encoder.features(volume_batch(batch, device))[0].float().cpu()  # (B, 1, D)
            tokens.update(zip((s.name for s in batch), out))
    pick = lambda role: [dataclasses.replace(items[s.name], tokens=tokens[s.name]) for s in role]  # noqa: E731
    model = build(encoder.config.out_dim, 1)
    fmt = settings.genetics.snp_text_format
    Stage2Trainer(model, settings.stage2, data="image_gene", fmt=fmt, seed=seed, device=device,
                  checkpoint_dir=state_dir / "checkpoint").fit(pick(train), pick(validation))
    return predict_items(model, pick(test), "image_gene", fmt, settings.stage2.eval_batch_size)
