"""Per-layer head-mean attention of the LLM, captured by hooks (for attention rollout, DESIGN.md 3.5).

``record_attention`` switches the model to eager attention (the only implementation that returns
attention weights) for the duration of a ``with`` block and hooks every decoder layer's
``self_attn``. Each hook averages the heads at once, so only one layer's per-head weights exist at a
time; what is kept per layer is the (B, n, n) head mean — or nothing at all when ``on_layer`` consumes
it (e.g. to propagate rollout row vectors layer by layer). SDPA is restored on exit.

    with record_attention(model.llm) as rec:
        model.answer_log_likelihoods([sample])   # or any forward pass
    maps = rec.maps        # list over layers of (B, n, n) float32 head means
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch

from rgenima_app.errors import ProcessingError


def decoder_layers(llm) -> list:
    """The decoder layers of a Hugging Face causal LM (unwrapping peft)."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        raise ProcessingError(f"cannot find the decoder layers of {type(base).__name__}")
    return list(layers)


class AttentionRecord:
    """Collects head-mean attention maps; ``maps[l]`` is layer l's (B, q, k) map of the last forward."""

    def __init__(self, n_layers: int, store: bool, dtype: torch.dtype, device: str | None,
                 on_layer: Callable[[int, torch.Tensor], None] | None):
        self.maps: list[torch.Tensor | None] = [None] * n_layers
        self._store, self._dtype, self._device, self._on_layer = store, dtype, device, on_layer

    def _hook(self, index: int):
        def hook(module, args, output):
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise ProcessingError("the attention layer returned no weights; eager attention is required")
            # (B, H, q, k) -> (B, q, k), accumulated in float32 (bf16 weights would lose digits)
            mean = weights.detach().mean(dim=1, dtype=torch.float32)
            if self._on_layer is not None:
                self._on_layer(index, mean)
            if self._store:
                self.maps[index] = mean.to(dtype=self._dtype, device=self._device or mean.device)
        return hook


@contextmanager
def record_attention(llm, *, store: bool = True, dtype: torch.dtype = torch.float32, device: str | None = None,
                     on_layer: Callable[[int, torch.Tensor], None] | None = None):
    """Capture head-mean attention of every decoder layer during the forward passes inside the block.

    ``store``: keep each layer's head mean in ``record.maps`` (as ``dtype`` on ``device``, default the
    model's device); ``on_layer(layer_index, head_mean)`` is called as each layer finishes.
    """
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    previous = base.config._attn_implementation
    layers = decoder_layers(llm)
    record = AttentionRecord(len(layers), store, dtype, device, on_layer)
    base.set_attn_implementation("eager")
    handles = [layer.self_attn.register_forward_hook(record._hook(i)) for i, layer in enumerate(layers)]
    try:
        yield record
    finally:
        for h in handles:
            h.remove()
        base.set_attn_implementation(previous)
