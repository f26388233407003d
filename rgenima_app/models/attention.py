"""Per-layer head-mean attention of the LLM, captured by hooks (for attention rollout, docs/inference.md).

``record_attention`` switches the model to ``head_mean_attention`` (registered with transformers'
attention interface as ``"rgenima_head_mean"``) for the duration of a ``with`` block and hooks every
decoder layer's ``self_attn``. That attention function is eager attention computed over blocks of query
rows: it returns the layer's output and the (B, 1, q, k) float32 mean over heads, so no (B, H, q, k)
tensor ever exists; a layer's transient memory is a few blocks of ``BLOCK_ELEMENTS`` weights, and the
model builds sdpa's boolean mask for it (none when the batch is unpadded) instead of eager's float one. What is
kept per layer is the (B, q, k) head mean — or nothing at all when ``on_layer`` consumes it (e.g. to
propagate rollout row vectors layer by layer). The previous implementation is restored on exit.

    with record_attention(model.llm) as rec:
        model.answer_log_likelihoods([sample])   # or any forward pass
    maps = rec.maps        # list over layers of (B, n, n) float32 head means
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import cache
from typing import Callable

import torch
import torch.nn.functional as F

from rgenima_app.errors import ProcessingError

HEAD_MEAN_ATTENTION = "rgenima_head_mean"
BLOCK_ELEMENTS = 1 << 20  # attention weights (all heads × rows × keys) computed at once: 4 MB in float32


def head_mean_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        attention_mask: torch.Tensor | None, scaling: float, dropout: float = 0.0, **kwargs):
    """Eager attention (transformers' ``eager_attention_forward``) returning the head-mean weights.

    query (B, H, q, d), key/value (B, H_kv, k, d) with H a multiple of H_kv (grouped-query attention).
    attention_mask (B, 1 or H, q, k): eager's additive float mask, or sdpa's boolean one (True = attend;
    masked scores become the dtype's minimum, which is what adding eager's minimum to them rounds to), or
    None for a purely causal (``is_causal``, as sdpa decides it) or unmasked layer. Returns the output
    (B, q, H, d_v) and the head mean of the softmaxed, dropped-out weights, (B, 1, q, k) in float32. The
    operations are eager's, applied to blocks of query rows with all heads of a block at once (few large
    blocks rather than many small ones: each operation on a block has a fixed cost on a busy CPU).
    """
    batch, heads, q_len, _ = query.shape
    kv_heads, k_len, v_dim = key.shape[1], key.shape[2], value.shape[-1]
    groups = heads // kv_heads
    # Head h reads key/value head h // groups (repeat_kv's order). With the query laid out as (B, H_kv, q,
    # groups, d), a block of rows of the heads sharing a key/value head is one matrix against that head's
    # keys: no repeat_kv copies of keys and values, and one matrix product per block.
    query = query.unflatten(1, (kv_heads, groups)).transpose(2, 3).contiguous()
    keys_t, values = key.transpose(2, 3).flatten(0, 1), value.flatten(0, 1)  # (B·H_kv, d, k), (B·H_kv, k, d_v)
    mask, causal = attention_mask, False
    if mask is None:
        is_causal = kwargs.get("is_causal")
        causal = q_len > 1 and (getattr(module, "is_causal", True) if is_causal is None else is_causal)
    else:  # (B, H_kv or 1, q, groups or 1, k), to match the weights
        mask = mask[..., :k_len]
        mask = mask.unflatten(1, (kv_heads, groups)).transpose(2, 3) if mask.shape[1] == heads else mask[:, :, :, None]
    lowest = torch.finfo(query.dtype).min
    output = query.new_empty(batch, q_len, kv_heads, groups, v_dim)
    mean = torch.empty(batch, q_len, k_len, dtype=torch.float32, device=query.device)
    rows = max(1, BLOCK_ELEMENTS // (heads * k_len))
    for start in range(0, q_len, rows):
        block, n_rows = slice(start, start + rows), min(rows, q_len - start)
        weights = torch.bmm(query[:, :, block].flatten(0, 1).flatten(1, 2), keys_t)
        weights = weights.mul_(scaling).view(batch, kv_heads, n_rows, groups, k_len)  # in place: one copy less
        if mask is not None and mask.dtype == torch.bool:
            weights.masked_fill_(~mask[:, :, block], lowest)
        elif mask is not None:
            weights.add_(mask[:, :, block])
        elif causal:  # the queries are the last q_len positions
            positions = torch.arange(start, start + n_rows, device=query.device) + k_len - q_len
            weights.masked_fill_(torch.arange(k_len, device=query.device) > positions[:, None, None], lowest)
        weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
        weights = F.dropout(weights, p=dropout, training=module.training)
        torch.sum(weights, dim=(1, 3), dtype=torch.float32, out=mean[:, block])
        attended = torch.bmm(weights.view(batch * kv_heads, n_rows * groups, k_len), values)
        output[:, block] = attended.view(batch, kv_heads, n_rows, groups, v_dim).transpose(1, 2)
    return output.flatten(2, 3), mean.div_(heads)[:, None]


@cache
def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(HEAD_MEAN_ATTENTION, head_mean_attention)
    # the models build sdpa's mask for it: boolean (a quarter of eager's float32 mask), or none at all for
    # a purely causal batch (a name without a mask function would get no mask, padding or not)
    AttentionMaskInterface.register(HEAD_MEAN_ATTENTION, sdpa_mask)


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
                raise ProcessingError("the attention layer returned no weights; head-mean or eager attention "
                                      "is required")
            weights = weights.detach()
            # head_mean_attention's (B, 1, q, k) float32 mean is taken as is (a view, no copy); per-head
            # weights of an attention module outside the interface are averaged here, in float32
            mean = weights[:, 0].float() if weights.shape[1] == 1 else weights.mean(dim=1, dtype=torch.float32)
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
    _register()
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    previous = base.config._attn_implementation
    layers = decoder_layers(llm)
    record = AttentionRecord(len(layers), store, dtype, device, on_layer)
    base.set_attn_implementation(HEAD_MEAN_ATTENTION)
    handles = [layer.self_attn.register_forward_hook(record._hook(i)) for i, layer in enumerate(layers)]
    try:
        yield record
    finally:
        for h in handles:
            h.remove()
        base.set_attn_implementation(previous)


@contextmanager
def eager_attention(llm):
    """Transformers' own eager attention inside the block (per-head weights that are part of the autograd
    graph, returned with ``output_attentions=True``); the previous implementation is restored on exit."""
    base = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    previous = base.config._attn_implementation
    base.set_attn_implementation("eager")
    try:
        yield
    finally:
        base.set_attn_implementation(previous)
