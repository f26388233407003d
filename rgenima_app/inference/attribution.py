"""Per-sample attributions of a prediction to the ROI tokens and the gene blocks (docs/inference.md,
"Attribution methods").

Every method explains f = log P(c | prompt), the model's log-probability of its predicted stage c under the
scoring of ``RGenIMA.answer_probabilities`` (the four answers' log-likelihoods, softmaxed over the four;
``RGenIMA.score_answers`` is that scoring without ``no_grad``). Each gives a relevance per prompt position;
ROI importance is the relevance of the 109 ROI positions normalised to sum 1 (as rollout's), gene
importance the sum over a gene's SNP-text tokens (``rollout.token_genes``):

* ``rollout``: the paper's attention rollout (``rollout.py``), unchanged;
* ``input_gradient``: |Σ_h x_ph · ∂f/∂x_ph| at each position p, x the prompt embeddings (input × gradient);
* ``attention_gradient``: gradient-weighted attention rollout (Chefer et al. 2021, "Generic attention-model
  explainability"): per layer Ā = mean_h ReLU(∂f/∂A_h ⊙ A_h), R ← R + Ā·R from R = I; relevance = the rows of
  R of the positions whose outputs score the answer (``read="answers"``, default) or of the query position
  only (``read="query"``, the rollout's row);
* ``integrated_gradients``: |(x_p − x'_p) · mean over the path of ∂f/∂x_p| along x' + α(x − x'), α at the
  midpoints of ``steps`` equal intervals; x' is the reference input (``reference_embeddings``).

Why the answer rows: the position the rollout reads (the last prompt position) predicts the first answer
token, "This", which all four answers share, so its log-probability cancels in the four-way softmax and the
last layer's prompt attention gets no gradient at all; the stage is decided at the answer positions, which
attend to the prompt through the key/value cache. ``score_answers`` runs the prompt once and the four answers
on its cache, so the attention graph is the prompt's n positions plus the four answers' M positions each:
the prompt block gets its gradient from all four answers, each answer block from its own.

The gradient methods' gene importance is normalised to sum 1 over the genes: a gradient's scale varies from
participant to participant, so raw values would let a few participants dominate a cohort mean. Their
ROI-gene pairs are the outer product roi ⊗ gene (they have no pairwise term); ``attention_gradient``'s are
Σ_{t ∈ gene} R[roi, t], as rollout's.

Memory: ``attention_gradient`` keeps the per-head weights of eager attention and their gradients: L·H·n²
floats each for the prompt pass and 4·L·H·M·(n + M) for the answers (n prompt tokens, M answer tokens;
SmolLM2-135M with L = 30, H = 9, n ≈ 900: about 0.9 GB of weights plus as much of gradients in float32).
``input_gradient`` costs one forward and backward; ``integrated_gradients`` ``steps`` of them (batched by
``batch_steps``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rgenima_app.errors import UsageError
from rgenima_app.inference.methods import DEFAULT_STEPS, METHODS
from rgenima_app.inference.rollout import rollout, token_genes
from rgenima_app.models.attention import eager_attention
from rgenima_app.models.mllm import MLLMSample, PromptBatch, PromptLayout, RGenIMA

# METHODS and DEFAULT_STEPS live in inference/methods.py (no torch there: the command line imports them)
READS = ("answers", "query")

DEFINITIONS = {
    "rollout": "attention rollout (Abnar & Zuidema 2020), the paper's",
    "input_gradient": "|x . df/dx| per prompt position, f = log P(predicted stage)",
    "attention_gradient": "gradient-weighted attention rollout (Chefer et al. 2021): per layer "
                          "mean_h ReLU(df/dA * A), R <- R + A_bar R, rows of the answer-scoring positions",
    "integrated_gradients": "|(x - x') . mean path gradient| from the reference input x' (ROI tokens: the "
                            "connector's embedding of the reference image features, zero by default; SNP-text "
                            "tokens: the padding token's embedding)",
}


@dataclass
class Attribution:
    """One sample's attribution by ``method`` (numpy, float64).

    ``relevance`` (n,) per prompt position (IG: signed; the others non-negative); ``roi_importance`` (109,)
    sums to 1 (None without image); ``gene_importance`` per gene of ``genes`` (None without genome);
    ``roi_gene`` (109, G). ``predicted`` indexes ``STAGES``. IG also records f(x) and f(x') for its
    completeness check (Σ relevance ≈ f(x) − f(x')).
    """

    method: str
    layout: PromptLayout
    predicted: int
    probabilities: np.ndarray
    relevance: np.ndarray
    genes: list[str] = field(default_factory=list)
    roi_importance: np.ndarray | None = None
    gene_importance: np.ndarray | None = None
    roi_gene: np.ndarray | None = None
    f_input: float | None = None
    f_reference: float | None = None


# ------------------------------------------------------------------------------ shared pieces
def prompt_inputs(model: RGenIMA, samples: list[MLLMSample]) -> tuple[PromptBatch, torch.Tensor]:
    """The left-padded prompt batch of ``samples`` and its embeddings (detached)."""
    prompt = model.encode(samples, with_answers=False, padding_side="left")
    with torch.no_grad():
        return prompt, model.embed(prompt.input_ids, prompt.image_features)


def stage_log_probabilities(model: RGenIMA, prompt: PromptBatch, embeds: torch.Tensor,
                            output_attentions: bool = False):
    """(B, 4) log P(stage | prompt) as ``answer_probabilities`` scores it, and the ``AnswerScores``."""
    scores = model.score_answers(prompt, embeds, output_attentions=output_attentions)
    return torch.log_softmax(scores.log_likelihoods, dim=-1), scores


def reference_embeddings(model: RGenIMA, sample: MLLMSample, reference: torch.Tensor | None = None) -> torch.Tensor:
    """(1, n, H) embeddings of the reference input of ``sample``: the ROI tokens' image features replaced by
    ``reference`` (109, D; zero when None), every SNP-text token by the padding token's embedding (a token the
    model is never trained to read), the rest of the prompt unchanged."""
    prompt, embeds = prompt_inputs(model, [sample])
    layout = prompt.layouts[0]
    embeds = embeds.clone()
    with torch.no_grad():
        if layout.image_span is not None:
            features = torch.zeros_like(prompt.image_features) if reference is None else \
                reference.to(prompt.image_features.dtype).reshape(prompt.image_features.shape)
            embeds[0, slice(*layout.image_span)] = model.embed(prompt.input_ids, features)[0, slice(*layout.image_span)]
        if layout.genome_span is not None:
            pad = torch.tensor([model.tokenizer.pad_token_id], device=embeds.device)
            embeds[0, slice(*layout.genome_span)] = model.decoder.get_input_embeddings()(pad).to(embeds.dtype)
    return embeds


def summarise(method: str, relevance: np.ndarray, layout: PromptLayout, genome_text: str | None,
              probabilities: np.ndarray, roi_rows: np.ndarray | None = None, **extra) -> Attribution:
    """ROI and gene importance from a per-position ``relevance``; ``roi_rows`` (109, n): per-ROI relevance
    rows for the ROI-gene pairs (default: the outer product of ROI and gene importance)."""
    result = Attribution(method, layout, int(np.argmax(probabilities)), probabilities, relevance, **extra)
    if layout.image_span is not None:
        raw = relevance[slice(*layout.image_span)]
        result.roi_importance = raw / raw.sum() if raw.sum() > 0 else np.full(raw.shape, 1.0 / raw.size)
    if genome_text is not None and layout.genome_span is not None:
        genes, owner = token_genes(layout, genome_text)
        onto = np.zeros((len(owner), len(genes)))  # token -> gene indicator
        onto[np.flatnonzero(owner >= 0), owner[owner >= 0]] = 1.0
        per_gene = relevance[slice(*layout.genome_span)] @ onto
        result.genes = genes
        result.gene_importance = per_gene / per_gene.sum() if per_gene.sum() > 0 else per_gene
        if result.roi_importance is not None:
            result.roi_gene = (roi_rows[:, slice(*layout.genome_span)] @ onto if roi_rows is not None
                               else np.outer(result.roi_importance, result.gene_importance))
    return result


# ------------------------------------------------------------------------------ the methods
def input_gradient(model: RGenIMA, samples: list[MLLMSample]) -> list[Attribution]:
    """Input × gradient of every sample, in one forward and backward pass (the samples are independent)."""
    prompt, embeds = prompt_inputs(model, samples)
    embeds = embeds.requires_grad_(True)
    logp, _ = stage_log_probabilities(model, prompt, embeds)
    predicted = logp.detach().argmax(-1)
    (grad,) = torch.autograd.grad(logp.gather(-1, predicted[:, None]).sum(), embeds)
    relevance = (grad * embeds).sum(-1).abs().detach().double().cpu().numpy()
    probabilities = logp.detach().exp().double().cpu().numpy()
    return [summarise("input_gradient", relevance[b, pad:], layout, s.genome_text, probabilities[b])
            for b, (s, layout, pad) in enumerate(zip(samples, prompt.layouts, prompt.pad_offsets))]


def integrated_gradients(model: RGenIMA, sample: MLLMSample, reference: torch.Tensor | None = None,
                         steps: int = DEFAULT_STEPS, batch_steps: int = 8) -> Attribution:
    """Integrated gradients from ``reference_embeddings`` to the input (midpoint rule, ``steps`` points)."""
    if steps < 1:
        raise UsageError("integrated gradients need at least 1 step")
    prompt, x = prompt_inputs(model, [sample])
    baseline = reference_embeddings(model, sample, reference)
    with torch.no_grad():
        ends, _ = stage_log_probabilities(model, repeat_prompt(prompt, 2), torch.cat([x, baseline]))
    predicted = int(ends[0].argmax())
    total = torch.zeros_like(x)
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps
    for chunk in alphas.split(batch_steps):
        path = (baseline + chunk[:, None, None].to(x.device) * (x - baseline)).requires_grad_(True)
        logp, _ = stage_log_probabilities(model, repeat_prompt(prompt, len(chunk)), path)
        (grad,) = torch.autograd.grad(logp[:, predicted].sum(), path)
        total += grad.sum(0, keepdim=True)
    relevance = ((x - baseline) * total / steps).sum(-1)[0].double().cpu().numpy()
    result = summarise("integrated_gradients", np.abs(relevance), prompt.layouts[0], sample.genome_text,
                       ends[0].exp().double().cpu().numpy(), f_input=float(ends[0, predicted]),
                       f_reference=float(ends[1, predicted]))
    result.relevance = relevance  # signed: completeness holds for the signed sum
    return result


def attention_gradient(model: RGenIMA, sample: MLLMSample, read: str = "answers") -> Attribution:
    """Gradient-weighted attention rollout (Chefer et al. 2021) of one sample (module docstring)."""
    if read not in READS:
        raise UsageError(f"read must be one of {READS}, not {read!r}")
    prompt, embeds = prompt_inputs(model, [sample])
    with eager_attention(model.llm):
        logp, scores = stage_log_probabilities(model, prompt, embeds, output_attentions=True)
    predicted = int(logp[0].argmax())
    prompt_maps, answer_maps = scores.prompt_attentions, scores.answer_attentions
    grads = torch.autograd.grad(logp[0, predicted], [*prompt_maps, *answer_maps], allow_unused=True)
    layers = len(prompt_maps)
    n = embeds.shape[1]
    answers, m = scores.answer_mask.shape   # 4 answer rows of M continuation tokens
    size = n + answers * m                  # the prompt, then each answer's positions
    maps = []
    for a_prompt, g_prompt, a_answer, g_answer in zip(prompt_maps, grads[:layers], answer_maps, grads[layers:]):
        weighted = torch.zeros(size, size, dtype=torch.float64)
        weighted[:n, :n] = _positive_mean(a_prompt[0], g_prompt[0])
        per_answer = _positive_mean(a_answer, g_answer)   # (4, M, n + M)
        for r in range(answers):
            rows = slice(n + r * m, n + (r + 1) * m)
            weighted[rows, :n] = per_answer[r, :, :n]
            weighted[rows, rows] = per_answer[r, :, n:]
        maps.append(weighted)
    # rows of the positions whose outputs enter f: the query position and, per answer, every continuation
    # position followed by a real answer token
    scoring = [n - 1]
    if read == "answers":
        mask = scores.answer_mask.cpu()
        scoring += [n + r * m + k for r in range(answers) for k in range(m - 1) if mask[r, k + 1]]
    layout = prompt.layouts[0]
    roi_positions = list(range(*layout.image_span)) if layout.image_span is not None else []
    rows = torch.zeros(1 + len(roi_positions), size, dtype=torch.float64)
    rows[0, scoring] = 1.0
    rows[torch.arange(1, 1 + len(roi_positions)), roi_positions] = 1.0
    # row vectors of R = (I + Ā_L) ⋯ (I + Ā_1), pushed from the last layer to the first
    for weighted in reversed(maps):
        rows = rows + rows @ weighted
    rows = rows[:, :n].numpy()
    return summarise("attention_gradient", rows[0], layout, sample.genome_text,
                     logp[0].detach().exp().double().cpu().numpy(),
                     roi_rows=rows[1:] if roi_positions else None)


def _positive_mean(weights: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """mean over heads of ReLU(grad ⊙ weights), float64 (heads: dimension -3)."""
    if grad is None:  # a map that does not reach f (none in a causal LM scored at its answers)
        return torch.zeros(weights.shape[:-3] + weights.shape[-2:], dtype=torch.float64)
    return (grad.detach().double() * weights.detach().double()).clamp_min(0).mean(dim=-3).cpu()


def repeat_prompt(prompt: PromptBatch, k: int) -> PromptBatch:
    """A one-sample prompt batch repeated ``k`` times (for batched perturbations of its embeddings)."""
    return PromptBatch(prompt.input_ids.repeat(k, 1), prompt.attention_mask.repeat(k, 1),
                       prompt.position_ids.repeat(k, 1), None, None, None, prompt.layouts * k,
                       prompt.pad_offsets * k)


def from_rollout(model: RGenIMA, samples: list[MLLMSample]) -> list[Attribution]:
    """The paper's rollout as ``Attribution`` (its gene importance as rollout gives it: Σ R[q, t])."""
    results, probabilities = rollout(model, samples)
    out = []
    for s, r, p in zip(samples, results, probabilities.double().cpu().numpy()):
        out.append(Attribution("rollout", r.layout, int(np.argmax(p)), p, r.query_row, r.genes, r.roi_importance,
                               r.gene_importance, r.roi_gene))
    return out


def attribute(model: RGenIMA, samples: list[MLLMSample], method: str, *, reference: torch.Tensor | None = None,
              steps: int = DEFAULT_STEPS, read: str = "answers") -> list[Attribution]:
    """``method``'s attribution of every sample (``reference``/``steps``: integrated gradients; ``read``:
    attention × gradient)."""
    if method == "rollout":
        return from_rollout(model, samples)
    if method == "input_gradient":
        return input_gradient(model, samples)
    if method == "attention_gradient":
        return [attention_gradient(model, s, read) for s in samples]
    if method == "integrated_gradients":
        return [integrated_gradients(model, s, reference, steps) for s in samples]
    raise UsageError(f"attribution method {method!r}: one of {', '.join(METHODS)}")
