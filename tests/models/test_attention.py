"""head_mean_attention against transformers' eager attention: the same output and head-mean weights."""
from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.modeling_qwen2 import eager_attention_forward

from rgenima_app.models import attention
from rgenima_app.models.attention import head_mean_attention, record_attention

SMALL = dict(vocab_size=97, hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=6,
             num_key_value_heads=2, max_position_embeddings=128)


@pytest.fixture(params=["tiny", "qwen2_gqa", "llama_gqa"])
def llm(request, tiny_llm):
    """A causal LM in eval mode: the tiny LLM (4 heads, 2 KV) or a random 6-head, 2-KV-head Qwen2 / Llama."""
    if request.param == "tiny":
        return tiny_llm[0]
    config_class, model_class = {"qwen2_gqa": (Qwen2Config, Qwen2ForCausalLM),
                                 "llama_gqa": (LlamaConfig, LlamaForCausalLM)}[request.param]
    config = config_class(**SMALL)
    config._attn_implementation = "sdpa"
    return model_class(config).eval()


@pytest.fixture(params=[None, 64], ids=["one_block", "blocks"])
def block_elements(request, monkeypatch):
    """The default block size (one block at these sizes) and a small one (several blocks of a few rows)."""
    if request.param is not None:
        monkeypatch.setattr(attention, "BLOCK_ELEMENTS", request.param)
    return request.param


def allowed(q_len: int, k_len: int, pads: list[int]) -> torch.Tensor:
    """(B, 1, q, k) True where a query may attend: causal, and the key is not left padding."""
    offset = k_len - q_len  # the queries are the last q_len positions (a key/value cache before them)
    causal = torch.arange(k_len)[None, :] <= torch.arange(q_len)[:, None] + offset
    real = torch.arange(k_len)[None, :] >= torch.tensor(pads)[:, None]
    return (causal[None] & real[:, None])[:, None]


CASES = {"no_padding": (9, 9, [0, 0]), "padding": (9, 9, [0, 4]), "cached_keys": (3, 12, [2, 0])}


@pytest.mark.parametrize("mask_kind,case", [(kind, case) for kind in ("float", "bool") for case in CASES]
                         + [("none", "no_padding")])  # no mask stands only for a purely causal batch
def test_function_equals_eager(llm, block_elements, mask_kind, case):
    """The same output and head-mean weights as eager given eager's float mask, for every mask form."""
    q_len, k_len, pads = CASES[case]
    module = llm.model.layers[0].self_attn
    heads, kv_heads = llm.config.num_attention_heads, llm.config.num_key_value_heads
    dim = module.head_dim
    gen = torch.Generator().manual_seed(1)
    query = torch.randn(2, q_len, heads, dim, generator=gen).transpose(1, 2)  # strided, as the models make it
    key, value = (torch.randn(2, kv_heads, k_len, dim, generator=gen) for _ in range(2))
    ok = allowed(q_len, k_len, pads)
    additive = torch.where(ok, 0.0, torch.finfo(torch.float32).min)  # eager_mask's form
    out, weights = eager_attention_forward(module, query, key, value, additive, scaling=module.scaling)
    mask = {"float": additive, "bool": ok, "none": None}[mask_kind]
    mine, mean = head_mean_attention(module, query, key, value, mask, scaling=module.scaling)
    assert mine.shape == out.shape and mean.shape == (2, 1, q_len, k_len) and mean.dtype == torch.float32
    torch.testing.assert_close(mine, out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(mean[:, 0], weights.mean(1), atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("padded", [False, True], ids=["no_padding", "padding"])
def test_record_attention_equals_eager(llm, block_elements, padded):
    """Through the whole model: the same logits as eager, and maps[l] the head mean of eager's weights."""
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, llm.config.vocab_size, (2, 11), generator=gen)
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :5] = 0  # left padding
    previous = llm.config._attn_implementation
    llm.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            eager = llm(input_ids=ids, attention_mask=mask, output_attentions=True)
    finally:
        llm.set_attn_implementation(previous)
    seen = []
    with torch.no_grad(), record_attention(llm, on_layer=lambda i, m: seen.append(i)) as rec:
        logits = llm(input_ids=ids, attention_mask=mask).logits
    assert llm.config._attn_implementation == previous  # restored
    assert seen == list(range(llm.config.num_hidden_layers))
    torch.testing.assert_close(logits, eager.logits, atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(rec.maps, eager.attentions, strict=True):
        assert mine.shape == (2, 11, 11)
        torch.testing.assert_close(mine, theirs.mean(1), atol=1e-6, rtol=1e-5)
