"""Splits, settings and stage-2 data handling, without training anything."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from rgenima_app import STAGES
from rgenima_app.errors import MissingInputError, ProcessingError, UsageError
from rgenima_app.training.distributed import load_deepspeed_config, shard
from rgenima_app.training.settings import Stage2Settings, train_settings
from rgenima_app.training.splits import make_folds, split_table, strata_order
from rgenima_app.training.stage2 import Stage2Item, epoch_samples, evaluation_sample, lr_lambda


def _labels(counts: dict[str, int]) -> pd.Series:
    ids, stages = [], []
    for stage, n in counts.items():
        ids += [f"{stage}{i}" for i in range(n)]
        stages += [stage] * n
    return pd.Series(stages, index=ids)


@given(st.lists(st.integers(2, 30), min_size=4, max_size=4), st.integers(0, 10**6))
@hsettings(max_examples=40, deadline=None)
def test_split_is_stratified_and_keeps_every_stage_in_training(counts, seed):
    labels = _labels(dict(zip(STAGES, counts)))
    fold = make_folds(labels, 0.2, 0.15, 0, seed)[0]
    assert set(fold.roles) == set(labels.index)
    for stage, n in zip(STAGES, counts):
        members = labels.index[labels == stage]
        roles = [fold.roles[p] for p in members]
        assert roles.count("train") >= 1
        assert abs(roles.count("test") - n * 0.2) <= 1 or (n >= 3 and roles.count("test") == 1)


def test_split_is_reproducible_and_seed_dependent():
    labels = _labels({"NC": 20, "SMC": 10, "MCI": 20, "AD": 10})
    a = make_folds(labels, 0.2, 0.1, 0, seed=1)[0].roles
    assert a == make_folds(labels, 0.2, 0.1, 0, seed=1)[0].roles
    assert a != make_folds(labels, 0.2, 0.1, 0, seed=2)[0].roles


def test_kfold_tests_every_participant_once_and_sessions_stay_together():
    labels = _labels({"NC": 9, "SMC": 5, "MCI": 8, "AD": 5})
    folds = make_folds(labels, 0.2, 0.2, 5, seed=0)
    tested = [p for f in folds for p, r in f.roles.items() if r == "test"]
    assert sorted(tested) == sorted(labels.index)
    for f in folds:
        assert not set(f.participants("test")) & set(f.participants("train") + f.participants("validation"))
    samples = pd.DataFrame({"participant": ["NC0", "NC0", "AD1"], "session": ["1", "2", "1"],
                            "diagnosis": ["NC", "NC", "AD"]})
    table = split_table(samples, folds[:1])
    assert table.groupby("participant_id")["role"].nunique().max() == 1


@pytest.mark.parametrize("counts, error, words", [
    ({}, MissingInputError, "no selected participant has a diagnosis"),
    ({"AD": 6}, ProcessingError, "all 6 labelled participants are AD"),
    ({"NC": 6, "AD": 1}, ProcessingError, "AD: 1 (sub-AD0)"),
])
def test_unsplittable_labels(counts, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        make_folds(_labels(counts), 0.2, 0.1, 0, 0)


def test_settings_refuse_typos_and_wrong_types():
    assert train_settings({"stage2": {"lr": 1}}).stage2.lr == 1.0
    with pytest.raises(UsageError, match="unknown key.*lrr"):
        train_settings({"stage2": {"lrr": 1e-4}})
    with pytest.raises(UsageError, match="unknown key"):
        train_settings({"stage3": {}})
    with pytest.raises(UsageError, match="must be a number"):
        train_settings({"stage1": {"epochs": "ten"}})
    with pytest.raises(UsageError, match="gene, image_gene, mixture"):
        train_settings({"data": "images"})
    with pytest.raises(UsageError, match="unknown baseline"):
        train_settings({"baselines": {"run": ["svm"]}})


def test_target_settings_default_to_the_stage_and_refuse_unknown_kinds_and_windows():
    assert train_settings(None).target.kind == "stage"
    target = train_settings({"target": {"kind": "conversion", "horizon_months": 36, "window_months": 3}}).target
    assert (target.kind, target.horizon_months, target.window_months) == ("conversion", 36.0, 3.0)
    with pytest.raises(UsageError) as refused:
        train_settings({"target": {"kind": "delta"}})
    assert "target.kind = 'delta'" in str(refused.value) and "stage, progression, conversion" in refused.value.hint
    with pytest.raises(UsageError, match="horizon_months = 12, target.window_months = 12"):
        train_settings({"target": {"kind": "progression", "horizon_months": 12, "window_months": 12}})
    with pytest.raises(UsageError, match="unknown key.*horizon"):
        train_settings({"target": {"horizon": 24}})


def test_splits_stratify_on_target_strata_and_keep_the_stage_draws():
    # a stage split walks the stages as it always did (every stage, present or not, in STAGES order), so its
    # random draws are unchanged; other labels come after them
    assert strata_order(_labels({"NC": 5, "MCI": 7, "AD": 4})) == list(STAGES)
    strata = pd.Series(["converter"] * 6 + ["stable"] * 8, index=[f"p{i}" for i in range(14)])
    assert strata_order(strata) == [*STAGES, "converter", "stable"]
    with pytest.raises(ProcessingError, match=r"too few participants with the target.*converter: 1, stable: 8"):
        make_folds(pd.concat([strata[5:]]), 0.3, 0.0, 0, 1)
    for fold in make_folds(strata, 0.3, 0.0, 0, 1) + make_folds(strata, 0.3, 0.2, 3, 1):
        test = [p for p, r in fold.roles.items() if r == "test"]
        assert {strata[p] for p in test} == {"converter", "stable"}   # both strata in every test set
        assert set(fold.roles) == set(strata.index)


def _items(n: int = 6) -> list[Stage2Item]:
    import torch

    genotypes = pd.DataFrame({"snp": ["a", "b", "c", "d"], "gene": ["G1", "G1", "G2", "G3"],
                              "a1": list("AAAA"), "a2": list("CCCC"), "dosage": [0, 1, 2, 1.0]})
    return [Stage2Item(f"sub-{i}", str(i), STAGES[i % 4], genotypes, torch.zeros(109, 8)) for i in range(n)]


def test_epochs_are_reproducible_permute_gene_blocks_only_and_mix_modalities():
    items = _items(40)
    s = Stage2Settings(mixture_fraction=0.5)
    first = epoch_samples(items, 3, 0, "mixture", "compact", s)
    again = epoch_samples(items, 3, 0, "mixture", "compact", s)
    assert [x.genome_text for x in first] == [x.genome_text for x in again]
    texts = {x.genome_text for x in first}
    assert len(texts) > 1  # gene-block order varies across samples
    for text in texts:
        assert sorted(text.split("; ")) == ["G1 01", "G2 2", "G3 1"]  # SNP order inside a gene is kept
    without_image = sum(x.image_tokens is None for x in first)
    assert 5 < without_image < 35  # about half are SNP-only in the mixture
    assert all(x.image_tokens is None for x in epoch_samples(items, 0, 0, "gene", "compact", s))
    evaluation = evaluation_sample(items[0], "mixture", "compact")
    assert evaluation.genome_text == "G1 01; G2 2; G3 1" and evaluation.image_tokens is not None


def test_learning_rate_warms_up_then_decays_to_zero():
    f = lr_lambda(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    values = [f(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:])) and f(100) == pytest.approx(0.0)


def test_shards_are_equal_sized_and_cover_the_epoch():
    samples = list(range(11))
    shards = [shard(samples, r, 3) for r in range(3)]
    assert {len(s) for s in shards} == {4}
    assert set().union(*map(set, shards)) == set(samples)


def test_deepspeed_presets_fill_auto_values(tmp_path):
    cfg = load_deepspeed_config("zero3", Stage2Settings(batch_size=2, gradient_accumulation=4, max_grad_norm=0.5))
    assert cfg["zero_optimization"]["stage"] == 3
    assert (cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"], cfg["gradient_clipping"]) == (2, 4, 0.5)
    assert cfg["bf16"]["enabled"] in (True, False)
    bad = tmp_path / "ds.json"
    bad.write_text('{"optimizer": {"type": "Adam"}}')
    with pytest.raises(UsageError, match="remove the 'optimizer' section"):
        load_deepspeed_config(str(bad), Stage2Settings())
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_deepspeed_config(str(bad), Stage2Settings())
    assert np.isfinite(cfg["gradient_clipping"])


def test_stage1_key_ignores_what_stage1_does_not_read():
    """Runs that differ only in the data configuration, stage 2, the LLM or the baselines share one RiT;
    a stage-1 setting, the ROI mode or the split gives another."""
    from types import SimpleNamespace

    from rgenima_app.workflows.train import stage1_key

    config = SimpleNamespace(seed=0, roi_size=8, llm="tiny")
    cohort = SimpleNamespace(samples=[SimpleNamespace(name=f"sub-0{i}", diagnosis="NC", patches=f"/w/{i}.npy")
                                      for i in range(3)])
    fold = SimpleNamespace(roles={"sub-00": "train", "sub-01": "validation", "sub-02": "test"})
    key = stage1_key(config, train_settings(None), cohort, fold)
    same = [train_settings({"data": "mixture", "stage2": {"epochs": 9, "lr": 1e-3}, "name": "other",
                            "baselines": {"run": ["snp_mlp"]}})]
    assert all(stage1_key(config, s, cohort, fold) == key for s in same)
    assert stage1_key(SimpleNamespace(seed=0, roi_size=8, llm="other"), train_settings(None), cohort, fold) == key
    other = [train_settings({"stage1": {"epochs": 3}}), train_settings({"imaging": {"mode": "fit"}})]
    assert all(stage1_key(config, s, cohort, fold) != key for s in other)
    swapped = SimpleNamespace(roles={"sub-00": "validation", "sub-01": "train", "sub-02": "test"})
    assert stage1_key(config, train_settings(None), cohort, swapped) != key


@pytest.mark.parametrize("name", ["snp_mlp", "bert_rit_concat"])
def test_baselines_learn_a_planted_label_from_their_inputs(name):
    """The baselines' inputs are encoded once per split and batched by index; a planted label in them is
    learned, so inputs and labels stay aligned through the shuffles."""
    from rgenima_app.models.tiny_llm import train_tiny_tokenizer
    from rgenima_app.training.baselines import train_baseline
    from rgenima_app.training.settings import BaselineSettings

    rng = np.random.default_rng(0)
    genes = [f"GENE{i // 3}" for i in range(12)]

    def item(i: int) -> Stage2Item:
        stage = i % 4
        dosage = rng.integers(0, 3, 12).astype(float)
        dosage[:2] = [stage // 2 * 2, stage % 2 * 2]  # the stage in the first two SNPs, for the SNP MLP
        genotypes = pd.DataFrame({"snp": [f"rs{j}" for j in range(12)], "gene": genes, "a1": "A", "a2": "G",
                                  "dosage": dosage})
        tokens = torch.randn(109, 16) * 0.1 + stage  # and in the image tokens, for the fusion baseline
        return Stage2Item(f"sub-{i}", str(i), STAGES[stage], genotypes, tokens)

    torch.manual_seed(0)
    items = [item(i) for i in range(72)]
    proba = train_baseline(name, items[:48], items[48:56], items[56:], BaselineSettings(epochs=25, lr=3e-3),
                           "compact", train_tiny_tokenizer(), seed=0)
    assert proba.shape == (16, 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    truth = np.array([STAGES.index(it.diagnosis) for it in items[56:]])
    assert (proba.argmax(axis=1) == truth).mean() >= 0.9  # 1.0 here; misaligned labels gave at most 0.75
