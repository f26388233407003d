"""The connector: image tokens (RiT or whole-brain, dimension D) -> LLM embedding space (dimension H)."""
from __future__ import annotations

from torch import nn

CONNECTOR_KINDS = ("linear", "mlp")


def build_connector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """``linear`` (the paper's) or ``mlp`` (Linear-GELU-Linear, LLaVA-1.5's projector)."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
    raise ValueError(f"connector must be one of {CONNECTOR_KINDS}, not {kind!r}")
