"""Deletion/insertion faithfulness of an importance ranking (docs/inference.md, "Faithfulness").

For one sample, its predicted stage c and a ranking of its features (the 109 ROI tokens, or the genes' SNP
text), the features are removed in rank order, a fraction at a time (0, 1/steps, ..., 1 of them), and the
probability of c (``answer_probabilities``' scoring) is recorded:

* deletion: from the intact input, the top-ranked features replaced by the reference; a faithful ranking
  makes the probability fall fast, so a *lower* area under the curve is better;
* insertion: from the reference input (every feature replaced), the top-ranked features restored; a
  *higher* area is better.

The reference is ``attribution.reference_embeddings``': an ROI token becomes the connector's embedding of
the reference image features (zero unless given, e.g. the cohort's mean RiT token of that ROI), a gene's
SNP-text tokens the padding token's embedding. Each method is compared with random orders on the same
sample (mean of ``random_orders`` permutations): deletion gain = random AUC − method AUC, insertion gain =
method AUC − random AUC, score = their sum (0: no better than random; positive: faithful).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rgenima_app.errors import UsageError
from rgenima_app.inference.attribution import (
    prompt_inputs, reference_embeddings, repeat_prompt, stage_log_probabilities,
)
from rgenima_app.inference.rollout import token_genes
from rgenima_app.models.mllm import MLLMSample, PromptBatch, PromptLayout, RGenIMA

KINDS = ("roi", "gene")
DEFAULT_STEPS = 10
RANDOM = "random"


@dataclass
class Curves:
    """Probability of the predicted stage after deleting (inserting) the top ``fractions`` of the features."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> float:
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        return float(np.trapezoid(self.insertion, self.fractions))


def feature_positions(layout: PromptLayout, genome_text: str | None, kind: str) -> list[np.ndarray]:
    """Prompt positions of each feature: one per ROI token, or each gene's SNP-text tokens (text order)."""
    if kind == "roi":
        if layout.image_span is None:
            raise UsageError("ROI faithfulness needs a sample with image tokens")
        return [np.array([p]) for p in range(*layout.image_span)]
    if kind == "gene":
        if genome_text is None or layout.genome_span is None:
            raise UsageError("gene faithfulness needs a sample with SNP text")
        genes, owner = token_genes(layout, genome_text)
        return [layout.genome_span[0] + np.flatnonzero(owner == g) for g in range(len(genes))]
    raise UsageError(f"feature kind {kind!r}: one of {KINDS}")


def curves(model: RGenIMA, sample: MLLMSample, orders: list[np.ndarray], kind: str,
           reference: torch.Tensor | None = None, steps: int = DEFAULT_STEPS, batch_size: int = 16) -> list[Curves]:
    """Deletion and insertion curves of each order (a permutation of the features, most important first).

    Every evaluated input is a set of deleted features; the sets shared by several curves (none and all
    deleted, and any repeats) are scored once.
    """
    prompt, intact = prompt_inputs(model, [sample])
    removed = reference_embeddings(model, sample, reference)
    positions = feature_positions(prompt.layouts[0], sample.genome_text, kind)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.rint(fractions * len(positions)).astype(int)
    masks: dict[bytes, np.ndarray] = {}

    def deleted(features) -> bytes:
        mask = np.zeros(len(positions), dtype=bool)
        mask[np.asarray(features, dtype=int)] = True
        masks.setdefault(mask.tobytes(), mask)
        return mask.tobytes()

    plan = [([deleted(order[:c]) for c in counts], [deleted(order[c:]) for c in counts]) for order in orders]
    keys = list(masks)
    probability = dict(zip(keys, _score(model, prompt, intact, removed, [masks[k] for k in keys], positions,
                                        batch_size)))
    return [Curves(fractions, np.array([probability[k] for k in dele]), np.array([probability[k] for k in ins]))
            for dele, ins in plan]


@torch.no_grad()
def _score(model: RGenIMA, prompt: PromptBatch, intact: torch.Tensor, removed: torch.Tensor,
           masks: list[np.ndarray], positions: list[np.ndarray], batch_size: int) -> list[float]:
    """Probability of the intact input's predicted stage for each deletion mask (in batches)."""
    logp, _ = stage_log_probabilities(model, prompt, intact)
    predicted = int(logp[0].argmax())
    out: list[float] = []
    for start in range(0, len(masks), batch_size):
        chunk = masks[start:start + batch_size]
        embeds = intact.repeat(len(chunk), 1, 1)
        for row, mask in enumerate(chunk):
            where = np.concatenate([positions[f] for f in np.flatnonzero(mask)] or [np.array([], dtype=int)])
            embeds[row, where] = removed[0, where]
        logp, _ = stage_log_probabilities(model, repeat_prompt(prompt, len(chunk)), embeds)
        out += logp[:, predicted].exp().double().cpu().tolist()
    return out


def ranking(importance: np.ndarray) -> np.ndarray:
    """Features by decreasing importance (ties in feature order)."""
    return np.argsort(-np.asarray(importance, dtype=float), kind="stable")


def faithfulness(model: RGenIMA, sample: MLLMSample, importances: dict[str, np.ndarray], kind: str,
                 reference: torch.Tensor | None = None, steps: int = DEFAULT_STEPS, random_orders: int = 3,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """Deletion/insertion AUCs of each method's ranking of ``kind`` features of one sample, against the mean
    of ``random_orders`` random orders (module docstring); ``importances[method]``: one value per feature."""
    n_features = len(feature_positions(model.prompt_tokens(sample)[1], sample.genome_text, kind))
    for method, values in importances.items():
        if len(values) != n_features:
            raise UsageError(f"{method}: {len(values)} importances for {n_features} {kind} features")
    rng = np.random.default_rng(seed)
    randoms = [rng.permutation(n_features) for _ in range(random_orders)]
    orders = [ranking(v) for v in importances.values()] + randoms
    found = curves(model, sample, orders, kind, reference, steps)
    chance = found[len(importances):]
    random_deletion = float(np.mean([c.deletion_auc for c in chance]))
    random_insertion = float(np.mean([c.insertion_auc for c in chance]))
    out = {}
    for method, c in zip(importances, found):
        deletion_gain = random_deletion - c.deletion_auc
        insertion_gain = c.insertion_auc - random_insertion
        out[method] = {"deletion_auc": c.deletion_auc, "insertion_auc": c.insertion_auc,
                       "random_deletion_auc": random_deletion, "random_insertion_auc": random_insertion,
                       "deletion_gain": deletion_gain, "insertion_gain": insertion_gain,
                       "score": deletion_gain + insertion_gain}
    return out
