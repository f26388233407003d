"""Attention rollout (docs/inference.md, "Attention rollout"), computed row by row from the head means of each layer.

With Ā_l the head-mean attention of layer l (1..L), Ã_l = rownorm(0.5·Ā_l + 0.5·I) and
R = Ã_L ⋯ Ã_1 (Abnar & Zuidema 2020):

* ROI importance   r_i   = R[q, roi_i] / Σ_j R[q, roi_j]       (q: the position predicting the first label token)
* gene importance  g     = Σ_{t ∈ tokens(g)} R[q, t]
* ROI-gene         a(i,g) = Σ_{t ∈ tokens(g)} R[roi_i, t]

Only the rows q and the 109 ROI positions of R are needed. Row k of R is e_k·Ã_L·Ã_{L-1}⋯Ã_1: a row
vector pushed through the layers from the last to the first. The forward pass runs the layers the other
way (1 → L), so the head mean of every layer is kept while the forward runs and the 110 rows are
propagated afterwards, from layer L down to 1. The attention function of ``record_attention`` computes
the head mean over blocks of query rows, so the per-head (B, H, n, n) weights never exist, and only the
lower triangle of each causal map is kept (``CausalMap``): about L·n²/2 floats and O(L·k·n²) time for
k = 110 rows, instead of the L·H·n² of ``output_attentions=True`` and the O(L·n³) time of the full
products.

Since the rows of Ā sum to 1, Ã only scales rows: v·Ã = 0.5·(v/s)·Ā + 0.5·(v/s) with s the row sums of
0.5·Ā + 0.5 (kept explicit so that any row normalisation error of the attention is normalised away).

SNP-text tokens are assigned to genes by characters: the serialized genotype text is a list of gene
blocks separated by ``"; "`` (``genetics.serialize``); a token belongs to the gene whose block shares
most of its characters (``PromptLayout.genome_offsets``), and tokens made only of separators belong to
no gene.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from rgenima_app.errors import ProcessingError
from rgenima_app.models.attention import decoder_layers, record_attention
from rgenima_app.models.mllm import MLLMSample, PromptBatch, PromptLayout, RGenIMA

# Rows per block of a kept map: the upper corners of its diagonal blocks cost n·ROW_BLOCK/2 entries, and fewer,
# larger blocks mean fewer operations in the propagation (each has a fixed cost on a busy CPU).
ROW_BLOCK = 64

DEFINITION = (
    "Attention rollout (Abnar & Zuidema 2020) over all decoder layers of the LLM: with A_l the head-mean "
    "attention of layer l, A~_l = rownorm(0.5*A_l + 0.5*I) and R = A~_L ... A~_1. ROI importance = "
    "R[q, roi] normalised to sum 1 over the 109 ROI tokens, q being the prompt position that predicts the "
    "first answer token; gene importance = sum of R[q, t] over the SNP-text tokens t of the gene; ROI-gene "
    "attention a(roi, gene) = sum of R[roi, t] over the gene's SNP-text tokens."
)
_BLOCK_SEP = "; "


@dataclass
class RolloutResult:
    """Rollout outputs of one sample (numpy, float64).

    ``roi_importance`` (109,) sums to 1, or None without image; ``gene_importance`` maps each gene of the
    genome text to Σ R[q, t]; ``roi_gene`` (109, G) over ``genes`` (None without image or genome);
    ``query_row`` / ``roi_rows`` are the raw rows of R over the sample's own (unpadded) positions.
    """

    layout: PromptLayout
    query_row: np.ndarray
    roi_rows: np.ndarray | None
    genes: list[str] = field(default_factory=list)
    gene_importance: np.ndarray | None = None
    roi_gene: np.ndarray | None = None

    @property
    def roi_importance(self) -> np.ndarray | None:
        if self.layout.image_span is None:
            return None
        raw = self.query_row[slice(*self.layout.image_span)]
        total = raw.sum()
        return raw / total if total > 0 else raw


# ------------------------------------------------------------------------------ gene blocks
def gene_block_spans(genome_text: str) -> list[tuple[str, int, int]]:
    """(gene, start, stop) character ranges of the gene blocks of a serialized genotype text.

    Works for both formats of ``genetics.serialize`` (``GENE 0121`` and ``GENE: rs1=A/G, ...``); the
    separators ``"; "`` lie outside every block. Offsets refer to ``genome_text.strip()`` (as
    ``PromptLayout.genome_offsets`` do).
    """
    text = genome_text.strip()
    spans, start = [], 0
    for match in [*re.finditer(re.escape(_BLOCK_SEP), text), None]:
        stop = match.start() if match else len(text)
        block = text[start:stop]
        if block.strip():
            gene = block.partition(": ")[0] if ": " in block else block.rpartition(" ")[0] or block
            spans.append((gene.strip(), start, stop))
        if match:
            start = match.end()
    return spans


def token_genes(layout: PromptLayout, genome_text: str) -> tuple[list[str], np.ndarray]:
    """Genes (in text order) and, per SNP-text token, the index of its gene (-1: separator only)."""
    spans = gene_block_spans(genome_text)
    genes = list(dict.fromkeys(g for g, _, _ in spans))
    gene_index = {g: i for i, g in enumerate(genes)}
    owner = np.full(len(layout.genome_offsets), -1, dtype=np.int64)
    starts = np.array([s for _, s, _ in spans])
    stops = np.array([e for _, _, e in spans])
    for t, (a, b) in enumerate(layout.genome_offsets):
        overlap = np.minimum(stops, b) - np.maximum(starts, a)
        if overlap.size and overlap.max() > 0:
            owner[t] = gene_index[spans[int(np.argmax(overlap))][0]]
    return genes, owner


# ------------------------------------------------------------------------------ the rollout
class CausalMap:
    """The lower-triangular part of a causal (B, n, n) head mean, kept in blocks of ``ROW_BLOCK`` rows.

    Block [s, e) holds rows s..e-1 and columns 0..e-1: about half the memory of the dense map. The entries
    it drops are exactly 0 in every real query row (a token attends to itself and earlier tokens only);
    rows of left padding, which attend everywhere, lose theirs, and the rollout never reads them.
    """

    def __init__(self, head_mean: torch.Tensor, dtype=torch.float32, device=None):
        n = head_mean.shape[-1]
        if head_mean.shape[-2] != n:
            raise ProcessingError(f"a causal map needs as many queries as keys, not {tuple(head_mean.shape)}")
        self.n, self.device = n, device or head_mean.device
        self.blocks = [(s, head_mean[:, s:s + ROW_BLOCK, :s + ROW_BLOCK].to(dtype=dtype, device=self.device,
                                                                             copy=True))
                       for s in range(0, n, ROW_BLOCK)]

    def nbytes(self) -> int:
        return sum(b.numel() * b.element_size() for _, b in self.blocks)


class LayerMaps:
    """The ``on_layer`` consumer of ``record_attention``: keeps each layer's head mean of the first
    forward pass only (the prompt pass; later passes, e.g. the answer continuation, are ignored), as a
    ``CausalMap``."""

    def __init__(self, n_layers: int, device: torch.device | str | None = None, dtype=torch.float32):
        self.maps: list[CausalMap | None] = [None] * n_layers
        self.device, self.dtype = device, dtype

    def __call__(self, index: int, head_mean: torch.Tensor) -> None:
        if self.maps[index] is None:
            self.maps[index] = CausalMap(head_mean, self.dtype, self.device)

    @property
    def complete(self) -> bool:
        return all(m is not None for m in self.maps)

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in self.maps if m is not None)


def propagate_rows(maps: list[CausalMap], rows: torch.Tensor, batch_index: int = 0) -> torch.Tensor:
    """``rows`` (k, n) times Ã_L ⋯ Ã_1, with ``maps[l]`` the head mean of layer l+1 (sample ``batch_index``).

    Rows are vectors over positions; for one-hot rows e_i the result is row i of R. Each block of Ā's
    rows is taken to float64 on its own (a float64 copy of a whole map would be two maps more).
    """
    v = rows.to(dtype=torch.float64)
    for causal_map in reversed(maps):
        out = torch.zeros_like(v)
        for start, block in causal_map.blocks:
            a = block[batch_index].to(dtype=torch.float64)   # rows start.., columns 0..stop-1
            stop = start + a.shape[0]
            w = v[:, start:stop] / (0.5 * a.sum(dim=-1) + 0.5)  # v · diag(1/s), s: row sums of 0.5·Ā + 0.5·I
            out[:, start:stop] += 0.5 * w
            out[:, :a.shape[1]].addmm_(w, a, alpha=0.5)
        v = out
    return v


def sample_rollout(maps: list[CausalMap], layout: PromptLayout, pad: int,
                   genome_text: str | None, batch_index: int = 0) -> RolloutResult:
    """The rollout outputs of one sample of a left-padded batch.

    The rows are propagated in the batch's padded frame: a real token attends to no padding, so the
    padding positions stay 0 and the sample's own positions are those after its ``pad`` offset.
    """
    n = layout.prompt_length
    wanted = [layout.query_position]
    if layout.image_span is not None:
        wanted += list(range(*layout.image_span))
    onehot = torch.zeros(len(wanted), maps[0].n, dtype=torch.float64, device=maps[0].device)
    onehot[torch.arange(len(wanted)), pad + torch.tensor(wanted)] = 1.0
    rows = propagate_rows(maps, onehot, batch_index)[:, pad:pad + n].cpu().numpy()
    result = RolloutResult(layout=layout, query_row=rows[0],
                           roi_rows=rows[1:] if layout.image_span is not None else None)
    if genome_text is not None and layout.genome_span is not None:
        genes, owner = token_genes(layout, genome_text)
        positions = np.arange(*layout.genome_span)
        onto = np.zeros((len(positions), len(genes)))     # token -> gene indicator
        keep = owner >= 0
        onto[np.flatnonzero(keep), owner[keep]] = 1.0
        result.genes = genes
        result.gene_importance = rows[0, positions] @ onto
        if result.roi_rows is not None:
            result.roi_gene = result.roi_rows[:, positions] @ onto
    return result


@torch.no_grad()
def rollout(model: RGenIMA, samples: list[MLLMSample], *, map_device: str | torch.device | None = None,
            with_probabilities: bool = True) -> tuple[list[RolloutResult], torch.Tensor | None]:
    """Attention rollout of a batch, and (optionally) the four class probabilities from the same pass.

    The prompt pass runs under ``record_attention(store=False)``; a ``LayerMaps`` keeps the head mean of
    each layer (``map_device``: where to keep them; default the model's device).
    With ``with_probabilities``, the answers' continuation runs on the prompt's key/value cache
    (``RGenIMA.answer_log_likelihoods``); its attention is not recorded.
    """

    collector = LayerMaps(len(decoder_layers(model.llm)), map_device)
    with record_attention(model.llm, store=False, on_layer=collector):
        if with_probabilities:
            probabilities = torch.softmax(model.answer_log_likelihoods(samples), dim=-1)
        else:
            model.run_prompt(samples)
            probabilities = None
    if not collector.complete:
        raise ProcessingError("the LLM's attention layers returned no weights for some layer; rollout needs "
                              "eager attention on every decoder layer")
    batch: PromptBatch = model.encode(samples, with_answers=False, padding_side="left")
    results = [sample_rollout(collector.maps, layout, pad, s.genome_text, b)
               for b, (layout, pad, s) in enumerate(zip(batch.layouts, batch.pad_offsets, samples))]
    return results, probabilities


def direct_rollout_matrix(attentions: list[torch.Tensor]) -> torch.Tensor:
    """The full R = Ã_L ⋯ Ã_1 (float64, (n, n)) from per-head attention of one sample, ``attentions[l]``
    (H, n, n) — the reference implementation (``output_attentions=True``), for tests and benchmarks."""
    result = None
    for layer in attentions:
        a = layer.to(torch.float64).mean(dim=0)
        a = 0.5 * a + 0.5 * torch.eye(a.shape[-1], dtype=torch.float64, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result   # Ã_l · (Ã_{l-1} ⋯ Ã_1)
    return result
