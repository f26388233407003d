"""Attention rollout: agreement with the full-matrix reference, gene assignment, padding and memory."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_helpers import genome_text, image_sample, tiny_model
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.inference.rollout import (
    CausalMap, direct_rollout_matrix, gene_block_spans, propagate_rows, rollout, token_genes,
)
from rgenima_app.models.mllm import MLLMSample


def direct_attentions(model, sample: MLLMSample) -> list[torch.Tensor]:
    """Per-head attention of every layer for one unpadded sample, from ``output_attentions=True``."""
    batch = model.encode([sample], with_answers=False, padding_side="left")
    base = model._base()
    previous = base.config._attn_implementation
    base.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model._run(batch, use_cache=False, output_attentions=True)
    finally:
        base.set_attn_implementation(previous)
    return [a[0] for a in out.attentions]


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return tiny_model(tiny_tokenizer, layers=3, heads=4)


@pytest.mark.parametrize("fmt", ["compact", "verbose"])
def test_rollout_matches_full_products(model, fmt):
    text = genome_text(n_genes=6, snps=3, seed=1, fmt=fmt)
    sample = image_sample(0, text)
    (result,), probabilities = rollout(model, [sample])
    R = direct_rollout_matrix(direct_attentions(model, sample)).numpy()
    layout = result.layout
    q, image = layout.query_position, np.arange(*layout.image_span)
    np.testing.assert_allclose(result.query_row, R[q], atol=1e-5)
    np.testing.assert_allclose(result.roi_rows, R[image], atol=1e-5)
    np.testing.assert_allclose(result.roi_importance, R[q, image] / R[q, image].sum(), atol=1e-5)
    assert result.roi_importance.shape == (N_ROIS,) and abs(result.roi_importance.sum() - 1) < 1e-9
    # genes: sums of R over each gene's tokens, computed here from the token texts themselves
    genes = [g for g, _, _ in gene_block_spans(text)]
    assert result.genes == genes and len(genes) == 6
    tokens = model.tokenizer.convert_ids_to_tokens(model.prompt_tokens(sample)[0])
    g0, g1 = layout.genome_span
    for j, gene in enumerate(genes):
        start, stop = gene_block_spans(text)[j][1:]
        mine = [g0 + t for t, (a, b) in enumerate(layout.genome_offsets)
                if min(b, stop) - max(a, start) > 0 and
                all(min(b, e) - max(a, s) <= min(b, stop) - max(a, start) for _, s, e in gene_block_spans(text))]
        assert mine, f"no token for {gene}: {tokens[g0:g1]}"
        np.testing.assert_allclose(result.gene_importance[j], R[q, mine].sum(), atol=1e-5)
        np.testing.assert_allclose(result.roi_gene[:, j], R[image][:, mine].sum(axis=1), atol=1e-5)
    assert probabilities.shape == (1, 4) and torch.allclose(probabilities.sum(-1), torch.ones(1), atol=1e-6)
    # the probabilities are those of the model's own (sdpa) scoring
    assert torch.allclose(probabilities, model.answer_probabilities([sample]), atol=1e-4)


def test_left_padding_changes_nothing(model):
    short = image_sample(1, genome_text(n_genes=2, snps=2, seed=2))
    long = image_sample(2, genome_text(n_genes=9, snps=4, seed=3))
    alone = [rollout(model, [s], with_probabilities=False)[0][0] for s in (short, long)]
    together, _ = rollout(model, [short, long], with_probabilities=False)
    batch = model.encode([short, long], with_answers=False, padding_side="left")
    assert batch.pad_offsets[0] > 0  # the short one is padded
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a.query_row, b.query_row, atol=1e-5)
        np.testing.assert_allclose(a.roi_gene, b.roi_gene, atol=1e-5)
        np.testing.assert_allclose(a.gene_importance, b.gene_importance, atol=1e-5)


def test_missing_modalities(model):
    (image_only,), _ = rollout(model, [image_sample(3, None)], with_probabilities=False)
    assert image_only.genes == [] and image_only.roi_gene is None and image_only.gene_importance is None
    assert image_only.roi_importance.shape == (N_ROIS,)
    text = genome_text(n_genes=4, seed=4)
    (genome_only,), _ = rollout(model, [MLLMSample(text, None)], with_probabilities=False)
    assert genome_only.roi_importance is None and genome_only.roi_rows is None and genome_only.roi_gene is None
    assert len(genome_only.genes) == 4 and np.all(genome_only.gene_importance > 0)


def test_gene_blocks_and_separator_tokens(model):
    text = "APOE 0121; BIN1 10; CLU 22"
    assert gene_block_spans(text) == [("APOE", 0, 9), ("BIN1", 11, 18), ("CLU", 20, 26)]
    assert gene_block_spans("APOE: rs1=A/G, rs2=G/G; TOMM40: rs3=A/A") == [("APOE", 0, 22), ("TOMM40", 24, 39)]
    _, layout = model.prompt_tokens(MLLMSample(text, None))
    genes, owner = token_genes(layout, text)
    assert genes == ["APOE", "BIN1", "CLU"]
    spans = gene_block_spans(text)
    pieces = [text[a:b] for a, b in layout.genome_offsets]
    for (a, b), piece, o in zip(layout.genome_offsets, pieces, owner):
        if o < 0:
            assert set(piece) <= set("; "), piece     # only separators belong to no gene
        else:  # inside its gene's block (a digit-splitting tokenizer gives the space before the dosage its own token)
            _, start, stop = spans[o]
            assert max(a, start) < min(b, stop), piece
            assert set(text[a:start] + text[stop:b]) <= set("; "), piece
    assert "".join(pieces) == text


@pytest.mark.parametrize("row_block", [None, 5], ids=["one_block", "blocks"])
def test_propagation_is_row_of_full_product(row_block, monkeypatch):
    if row_block is not None:  # each map kept as several blocks of rows
        monkeypatch.setattr("rgenima_app.inference.rollout.ROW_BLOCK", row_block)
    gen = torch.Generator().manual_seed(0)
    maps = []
    for _ in range(4):  # causal row-stochastic matrices, as attention is
        a = torch.tril(torch.rand(12, 12, generator=gen, dtype=torch.float64))
        maps.append(a / a.sum(-1, keepdim=True))
    R = direct_rollout_matrix([m.unsqueeze(0) for m in maps])
    kept = [CausalMap(m.unsqueeze(0), dtype=torch.float64) for m in maps]
    rows = propagate_rows(kept, torch.eye(12, dtype=torch.float64)[[11, 3]])
    torch.testing.assert_close(rows, R[[11, 3]], atol=1e-12, rtol=0)
    assert torch.allclose(R.sum(-1), torch.ones(12, dtype=torch.float64))


# ------------------------------------------------------------------------------------- memory
def peak_cpu_bytes(fn) -> int:
    """Peak of the bytes allocated by torch on the CPU while ``fn`` runs, above what existed before.

    From the profiler's memory timeline (every tensor allocation and free, with sizes), not timing.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action.name == "CREATE":
            current += size
            peak = max(peak, current)
        elif action.name == "DESTROY":
            current -= size
    return peak


def direct_method(model, sample):
    R = direct_rollout_matrix(direct_attentions(model, sample))
    return R


def test_peak_memory_grows_with_layers_not_heads(tiny_tokenizer, monkeypatch):
    # blocks of 2^18 attention weights: as large with 16 heads (40 rows) as with 4 (161 rows) at n = 406
    monkeypatch.setattr("rgenima_app.models.attention.BLOCK_ELEMENTS", 1 << 18)
    sample = image_sample(5, genome_text(n_genes=20, snps=4, seed=5))
    heads, layers = 16, (2, 6)
    peaks = {}
    for L in layers:
        m = tiny_model(tiny_tokenizer, layers=L, heads=heads, hidden=64)
        n = m.prompt_tokens(sample)[1].prompt_length
        peaks[("rollout", L)] = peak_cpu_bytes(lambda: rollout(m, [sample], with_probabilities=False))
        peaks[("direct", L)] = peak_cpu_bytes(lambda: direct_method(m, sample))
    map_bytes = n * n * 4  # one float32 head mean
    per_layer_rollout = (peaks[("rollout", 6)] - peaks[("rollout", 2)]) / 4
    per_layer_direct = (peaks[("direct", 6)] - peaks[("direct", 2)]) / 4
    print(f"n={n} H={heads}: per layer rollout {per_layer_rollout / map_bytes:.2f} n²·4 B, "
          f"direct {per_layer_direct / map_bytes:.2f} n²·4 B; peaks {peaks}")
    # the rollout keeps the lower triangle of one (n, n) head mean per layer; the direct method keeps H maps
    assert per_layer_rollout <= 0.6 * map_bytes
    assert per_layer_direct >= 0.8 * heads * map_bytes
    # and no per-head weights at all: 4 heads of the same width give the same peak (eager's transient
    # attention of a layer, H maps, made 16 heads 24 maps more)
    few = tiny_model(tiny_tokenizer, layers=2, heads=4, hidden=64)
    few_heads = peak_cpu_bytes(lambda: rollout(few, [sample], with_probabilities=False))
    assert abs(peaks[("rollout", 2)] - few_heads) <= 0.25 * map_bytes
