"""Attribution methods: shapes and normalisation, input × gradient against finite differences, integrated
gradients' completeness, attention × gradient against a dense reference, and the decisive ROI of a trained
model found."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from inference_helpers import DECISIVE_ROI, decisive_samples, genome_text, image_sample, tiny_model
from rgenima_app import STAGES
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.inference.attribution import (
    METHODS, attention_gradient, attribute, input_gradient, integrated_gradients, prompt_inputs,
    stage_log_probabilities,
)
from rgenima_app.inference.rollout import gene_block_spans
from rgenima_app.models.attention import eager_attention
from rgenima_app.models.mllm import MLLMSample


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return tiny_model(tiny_tokenizer, layers=3, heads=4)


@pytest.fixture(scope="module")
def model64(tiny_tokenizer):
    """float64, so that finite differences and path integrals are not lost in rounding."""
    return tiny_model(tiny_tokenizer, layers=2, heads=4).double()


def double(sample: MLLMSample) -> MLLMSample:
    return replace(sample, image_tokens=sample.image_tokens.double())


@pytest.mark.parametrize("method", METHODS)
def test_shapes_and_normalisation(model, method):
    text = genome_text(n_genes=5, snps=3, seed=1)
    sample = image_sample(0, text)
    (result,) = attribute(model, [sample], method, steps=4)
    assert result.method == method
    assert result.roi_importance.shape == (N_ROIS,) and np.all(result.roi_importance >= 0)
    assert result.roi_importance.sum() == pytest.approx(1.0, abs=1e-9)
    assert result.genes == [g for g, _, _ in gene_block_spans(text)]
    assert result.gene_importance.shape == (5,) and np.all(result.gene_importance > 0)
    if method != "rollout":  # the gradient methods' gene shares sum to 1 (rollout's are Σ R[q, t])
        assert result.gene_importance.sum() == pytest.approx(1.0, abs=1e-9)
    assert result.roi_gene.shape == (N_ROIS, 5)
    assert result.relevance.shape == (result.layout.prompt_length,)
    # the explained prediction is the model's own (answer_probabilities' scoring)
    expected = model.answer_probabilities([sample])[0].double().numpy()
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    assert result.predicted == int(np.argmax(expected))


def test_missing_modalities(model):
    (image_only,) = attribute(model, [image_sample(3, None)], "input_gradient")
    assert image_only.gene_importance is None and image_only.roi_gene is None and image_only.genes == []
    genome_only = attention_gradient(model, MLLMSample(genome_text(n_genes=3, seed=4), None))
    assert genome_only.roi_importance is None and len(genome_only.gene_importance) == 3


def log_probability(model, embeds, prompt, stage) -> float:
    with torch.no_grad():
        return float(stage_log_probabilities(model, prompt, embeds)[0][0, stage])


def full_sequence_answers(model, sample, **kwargs):
    """The four answers' log-likelihoods computed independently of ``score_answers``' key/value cache: the
    four complete prompt + answer sequences in one batch (``encode(with_answers=True)``), as training does."""
    batch = model.encode([replace(sample, label=s) for s in STAGES], with_answers=True)
    embeds = model.embed(batch.input_ids, batch.image_features).detach().requires_grad_(True)
    out = model.decoder(inputs_embeds=embeds, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids, **kwargs)
    logp = torch.log_softmax(model.lm_head(out.last_hidden_state[:, :-1]).float(), dim=-1)
    targets = batch.labels[:, 1:]
    answers = (logp.gather(-1, targets.clamp_min(0)[..., None])[..., 0] * (targets >= 0)).sum(-1)
    return torch.log_softmax(answers, dim=0), embeds, out


def test_input_gradient_matches_full_sequence_gradient(model):
    """Against the gradient through the four full sequences (the prompt's embeddings appear in each; the
    gradient with respect to them is the sum over the four)."""
    sample = image_sample(5, genome_text(n_genes=3, snps=2, seed=5))
    (result,) = input_gradient(model, [sample])
    logp, embeds, _ = full_sequence_answers(model, sample)
    (grad,) = torch.autograd.grad(logp[result.predicted], embeds)
    n = result.layout.prompt_length
    expected = (grad.sum(0)[:n] * embeds[0, :n]).sum(-1).abs().detach().double().numpy()
    np.testing.assert_allclose(result.relevance, expected, rtol=1e-3, atol=1e-7)
    assert expected[slice(*result.layout.image_span)].max() > 1e-5


def test_input_gradient_batched_equals_single(model):
    short = image_sample(1, genome_text(n_genes=2, snps=2, seed=2))
    long = image_sample(2, genome_text(n_genes=7, snps=4, seed=3))
    together = input_gradient(model, [short, long])
    assert model.encode([short, long], with_answers=False, padding_side="left").pad_offsets[0] > 0
    for sample, batched in zip((short, long), together):
        (alone,) = input_gradient(model, [sample])
        np.testing.assert_allclose(batched.relevance, alone.relevance, rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(batched.gene_importance, alone.gene_importance, rtol=1e-3, atol=1e-6)


def test_integrated_gradients_completeness(model64):
    """Σ attributions = f(x) − f(x') up to the path integral's quadrature error, which falls with the steps."""
    sample = double(image_sample(0, genome_text(n_genes=4, snps=2, seed=1)))
    fine = integrated_gradients(model64, sample, steps=64, batch_steps=16)
    delta = fine.f_input - fine.f_reference
    assert abs(delta) > 1e-3  # the reference changes the prediction: the check has something to check
    assert fine.relevance.sum() == pytest.approx(delta, rel=0.01)
    coarse = integrated_gradients(model64, sample, steps=2)
    assert abs(coarse.relevance.sum() - delta) > abs(fine.relevance.sum() - delta)
    # only the ROI tokens and the SNP text move along the path: the prompt template gets nothing
    layout = fine.layout
    moved = np.zeros(layout.prompt_length, dtype=bool)
    moved[slice(*layout.image_span)] = moved[slice(*layout.genome_span)] = True
    assert np.all(fine.relevance[~moved] == 0) and np.any(fine.relevance[moved] != 0)


def test_integrated_gradients_reference_equal_to_input_gives_nothing_to_the_rois(model64):
    sample = double(image_sample(6, None))
    result = integrated_gradients(model64, sample, reference=sample.image_tokens, steps=4)
    assert np.all(result.relevance == 0) and result.f_input == pytest.approx(result.f_reference, abs=1e-9)


def test_attention_gradient_query_row_matches_dense_reference(model):
    """read="query" against an independent computation: per-head attention and gradients from the four full
    answer sequences (the prompt's attention is the same in each; its gradient is their sum), dense products."""
    sample = image_sample(7, genome_text(n_genes=4, snps=3, seed=7))
    result = attention_gradient(model, sample, read="query")
    with eager_attention(model.llm):
        logp, _, out = full_sequence_answers(model, sample, use_cache=False, output_attentions=True)
    f = logp[result.predicted]
    grads = torch.autograd.grad(f, out.attentions)
    n = result.layout.prompt_length
    R = torch.eye(n, dtype=torch.float64)
    for a, g in zip(out.attentions, grads):
        weighted = (g[:, :, :n, :n].sum(0).double() * a[0, :, :n, :n].double()).clamp_min(0).mean(0)
        R = R + weighted @ R
    np.testing.assert_allclose(result.relevance, R[n - 1].detach().numpy(), rtol=1e-4, atol=1e-8)
    # the last layer's prompt attention does not reach f (its outputs only predict "This", shared by all
    # four answers): why the default reads the answer positions' rows
    assert grads[-1][:, :, :n, :n].sum(0).abs().max() < 1e-4 * grads[0][:, :, :n, :n].sum(0).abs().max()
    answers_read = attention_gradient(model, sample)
    assert not np.allclose(answers_read.roi_importance, result.roi_importance)


@pytest.mark.parametrize("method", ["integrated_gradients", "attention_gradient"])
def test_decisive_roi_ranked_first(decisive, method):
    """On a model trained so that only one ROI token decides NC vs AD, that ROI gets the top attribution."""
    held_out = decisive_samples(4, seed=9)
    predictions = decisive.answer_probabilities([replace(s, label=None) for s in held_out]).argmax(-1)
    assert [STAGES[i] for i in predictions] == [s.label for s in held_out]  # the model did learn the rule
    for sample in held_out:
        (result,) = attribute(decisive, [replace(sample, label=None)], method, steps=16)
        assert int(np.argmax(result.roi_importance)) == DECISIVE_ROI
        assert result.roi_importance[DECISIVE_ROI] > 0.5
