"""Deletion/insertion faithfulness: curves on the model's own scoring, the reference really used, and on a
model whose decisive ROI is known, a ranking that puts it first beats random and its reverse."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from inference_helpers import DECISIVE_ROI, decisive_samples, genome_text, image_sample, tiny_model
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.inference.faithfulness import curves, faithfulness, feature_positions
from rgenima_app.inference.rollout import token_genes


@pytest.fixture(scope="module")
def model(tiny_tokenizer):
    return tiny_model(tiny_tokenizer, layers=2, heads=4)


def test_curve_ends_and_reference(model):
    sample = image_sample(0, genome_text(n_genes=4, snps=2, seed=0))
    intact = model.answer_probabilities([sample])[0]
    predicted = int(intact.argmax())
    order = np.arange(N_ROIS)
    (c,) = curves(model, sample, [order], "roi", steps=4)
    assert c.deletion.shape == c.insertion.shape == (5,) and np.allclose(c.fractions, np.linspace(0, 1, 5))
    assert c.deletion[0] == pytest.approx(float(intact[predicted]), abs=1e-5)   # nothing deleted
    assert c.insertion[-1] == pytest.approx(float(intact[predicted]), abs=1e-5)  # everything restored
    assert c.deletion[-1] == pytest.approx(c.insertion[0], abs=1e-9)            # both: all replaced
    deleted = model.answer_probabilities([replace(sample, image_tokens=sample.image_tokens * 0)])[0]
    assert c.deletion[-1] == pytest.approx(float(deleted[predicted]), abs=1e-5)  # the zero reference
    # a reference equal to the input deletes nothing: flat curves
    (same,) = curves(model, sample, [order], "roi", reference=sample.image_tokens, steps=4)
    np.testing.assert_allclose(same.deletion, float(intact[predicted]), atol=1e-5)
    np.testing.assert_allclose(same.insertion, float(intact[predicted]), atol=1e-5)


def test_gene_features_are_the_gene_tokens(model):
    text = genome_text(n_genes=5, snps=3, seed=3)
    layout = model.prompt_tokens(image_sample(1, text))[1]
    positions = feature_positions(layout, text, "gene")
    genes, owner = token_genes(layout, text)
    assert len(positions) == len(genes) == 5
    assert sorted(np.concatenate(positions)) == sorted(layout.genome_span[0] + np.flatnonzero(owner >= 0))
    result = faithfulness(model, image_sample(1, text), {"first": np.arange(5.0)[::-1]}, "gene", steps=5)
    assert set(result["first"]) >= {"deletion_auc", "insertion_auc", "score"}
    with pytest.raises(Exception, match="importances for 5 gene features"):
        faithfulness(model, image_sample(1, text), {"bad": np.ones(4)}, "gene")


def test_decisive_roi_first_beats_random_and_reverse(decisive):
    good = np.zeros(N_ROIS)
    good[DECISIVE_ROI] = 1.0
    good[:DECISIVE_ROI] = np.linspace(0.5, 0.1, DECISIVE_ROI)   # the rest in some fixed order
    reverse = -good                                             # the decisive ROI last
    for sample in decisive_samples(2, seed=11):
        sample = replace(sample, label=None)
        result = faithfulness(decisive, sample, {"good": good, "reverse": reverse}, "roi", steps=10,
                              random_orders=3)
        assert result["good"]["deletion_auc"] < result["good"]["random_deletion_auc"]
        assert result["good"]["insertion_auc"] > result["good"]["random_insertion_auc"]
        assert result["good"]["deletion_auc"] < result["reverse"]["deletion_auc"]
        assert result["good"]["score"] > 0 > result["reverse"]["score"]
