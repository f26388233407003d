"""Fusion baselines of the paper's Table 1: late fusion by concatenation (†) and cross-modal attention (‡).

An image encoder (``RiT`` or ``WholeBrainResNet``: ``features(x) -> (tokens, pooled)``) and a genetic
encoder (``SnpBert`` or ``DosageMLP``: ``features(...) -> (tokens, mask, pooled)``) are combined:

``"concat"`` (†)
    the pooled image vector (RiT CLS / whole-brain token) and the pooled genetic vector are
    concatenated and classified by an MLP.
``"cross"`` (‡)
    the genetic tokens are the queries of a cross-attention block over the image tokens (keys and
    values: 109 RiT tokens, or the single whole-brain token, where the attention is trivially 1);
    the attended genetic tokens are mean-pooled over the valid positions and classified.
"""
from __future__ import annotations

import torch
from torch import nn

from rgenima_app import STAGES

FUSION_MODES = ("concat", "cross")


class FusionClassifier(nn.Module):
    """``forward(image_input, genetic_inputs) -> (B, 4)`` logits; ``genetic_inputs`` is a tuple of args."""

    def __init__(self, image_encoder: nn.Module, genetic_encoder: nn.Module, *, image_dim: int,
                 genetic_dim: int, mode: str = "concat", dim: int = 256, heads: int = 4,
                 dropout: float = 0.1, n_classes: int = len(STAGES)):
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f"fusion mode must be one of {FUSION_MODES}, not {mode!r}")
        self.mode = mode
        self.image_encoder, self.genetic_encoder = image_encoder, genetic_encoder
        if mode == "concat":
            self.fuse = nn.Sequential(nn.Linear(image_dim + genetic_dim, dim), nn.GELU(), nn.Dropout(dropout))
        else:
            self.query_proj = nn.Linear(genetic_dim, dim)
            self.kv_proj = nn.Linear(image_dim, dim)
            self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, n_classes)

    def forward(self, image_input, genetic_inputs: tuple, image_kwargs: dict | None = None) -> torch.Tensor:
        img_tokens, img_pooled = self.image_encoder.features(image_input, **(image_kwargs or {}))
        gen_tokens, gen_mask, gen_pooled = self.genetic_encoder.features(*genetic_inputs)
        if self.mode == "concat":
            return self.head(self.fuse(torch.cat([img_pooled, gen_pooled], dim=-1)))
        q = self.query_proj(gen_tokens)
        kv = self.kv_proj(img_tokens)
        attended, _ = self.attn(self.norm1(q), kv, kv, need_weights=False)
        x = q + attended
        x = x + self.ffn(self.norm2(x))
        weights = gen_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(pooled)
