"""The demo's closing summary: the model's held-out accuracy beside its references (rgenima_app.demo)."""
from __future__ import annotations

import json

import pandas as pd

from rgenima_app.demo import held_out_summary
from rgenima_app.training.classical import NAME as CLASSICAL


def _evaluation(tmp_path, beats: str, accuracy: float):
    rows = []
    for model, value in (("demo", accuracy), (CLASSICAL, 0.7)):
        for metric, v in (("accuracy", value), ("macro_f1", 0.1)):
            rows.append({"model": model, "data": "image_gene", "fold": 0, "metric": metric, "value": v,
                         "ci_low": v - 0.1, "ci_high": v + 0.1, "majority_rate": 0.333, "permutation_p": 0.001,
                         "beats_chance": beats})
    path = tmp_path / "desc-demo_evaluation.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    truth = tmp_path / "ground_truth.json"
    truth.write_text(json.dumps({"bayes_optimal_accuracy": 0.821}))
    return path, truth


def test_summary_puts_the_accuracy_beside_chance_the_classical_reference_and_bayes(tmp_path):
    text = held_out_summary(*_evaluation(tmp_path, "true", 0.6))
    first = text.splitlines()[0]
    assert "0.600 (95% CI 0.500-0.700), beats chance" in first and "majority-class rate 0.333" in first
    assert f"classical reference ({CLASSICAL}) on the same participants: 0.700" in text
    assert "Bayes-optimal accuracy of the cohort (oracle): 0.821" in text


def test_summary_says_when_the_model_does_not_beat_chance(tmp_path):
    text = held_out_summary(*_evaluation(tmp_path, "false", 0.333))
    assert "does NOT beat chance" in text and "beats chance" not in text
