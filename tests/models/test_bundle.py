"""Model bundle: bit-for-bit round trips and the refusals in docs/models.md ("Model bundle")."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from rgenima_app.errors import MissingInputError, OutputNotWritableError, UsageError
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.bundle import load_bundle, save_bundle, training_summary
from rgenima_app.models.finetune import set_finetune_mode
from rgenima_app.models.mllm import MLLMSample, RGenIMA
from rgenima_app.models.rit import RiT, RiTConfig

S, D = 8, 16
GENOME = "APOE: rs429358 C/T 1, rs7412 C/T 0; BIN1: rs744373 A/G 2;"


def build(fresh, mode="full"):
    llm, tok, desc = fresh
    rit = RiT(RiTConfig(roi_size=S, dim=D, depth=1, heads=2)).eval()
    model = RGenIMA(llm, tok, image_dim=D, image_encoder=rit, llm_description=desc, connector="mlp")
    set_finetune_mode(model, mode)
    if mode == "lora":  # adapters start as a no-op; make them matter
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.1)
    return model.eval()


@pytest.fixture
def bundle(fresh_tiny_llm, tmp_path):
    model = build(fresh_tiny_llm)
    panel = pd.DataFrame({"snp": ["rs1"], "chrom": ["19"], "pos": [1], "a1": ["A"], "a2": ["G"],
                          "gene": ["APOE"], "a1_freq": [0.2]})
    path = save_bundle(tmp_path / "m", model, genome_build="GRCh37", snp_text_format="verbose",
                       training=training_summary(["sub-01", "02"], epochs=1), metrics={"accuracy": 0.5},
                       snp_panel=panel)
    return model, path


def outputs(model, patches):
    tokens = model.image_encoder(patches).tokens
    samples = [MLLMSample(GENOME, tokens[0], "AD"), MLLMSample(None, tokens[1], "NC")]
    return tokens, model.answer_log_likelihoods(samples), model.loss(samples)


@pytest.mark.parametrize("mode", ["full", "lora", "frozen"])
def test_round_trip_is_bit_for_bit(fresh_tiny_llm, tmp_path, mode):
    model = build(fresh_tiny_llm, mode)
    path = save_bundle(tmp_path / mode, model)
    assert (path / "llm_adapter").is_dir() == (mode == "lora")
    loaded = load_bundle(path)
    patches = torch.randn(2, N_ROIS, S, S, S)
    with torch.no_grad():
        for a, b in zip(outputs(model, patches), outputs(loaded.model, patches)):
            assert torch.equal(a, b)
    assert loaded.metadata["finetune"] == mode


def test_metadata_and_card(bundle):
    _, path = bundle
    meta = json.loads((path / "rgenima.json").read_text())
    assert meta["format_version"] == 1 and meta["labels"] == ["NC", "SMC", "MCI", "AD"]
    assert len(meta["rois"]["names"]) == N_ROIS and meta["rois"]["size"] == S
    assert meta["prompt"]["template"].startswith("A chat between")
    assert meta["llm"]["kind"] == "tiny" and meta["genome_build"] == "GRCh37"
    assert "sub-01" not in (path / "rgenima.json").read_text()
    loaded = load_bundle(path)
    assert loaded.was_trained_on("01") and loaded.was_trained_on("sub-02") and not loaded.was_trained_on("03")
    assert list(loaded.snp_panel["snp"]) == ["rs1"]
    card = (path / "MODEL_CARD.md").read_text()
    assert "Fine-tune mode: full" in card and '"accuracy": 0.5' in card
    assert not list(path.parent.glob(".m.*"))  # no temporary directory left behind


def test_bundle_without_a_chance_check_loads_and_says_unknown(bundle):
    """Bundles written before the chance check (metrics without ``chance``) load; the check is unknown."""
    _, path = bundle
    assert "chance" not in json.loads((path / "rgenima.json").read_text())["metrics"]
    loaded = load_bundle(path)
    assert loaded.chance["state"] == "unknown" and loaded.chance["check"] is None
    card = (path / "MODEL_CARD.md").read_text()
    assert "## Chance check\nChance check unknown" in card and "WARNING" not in card


@pytest.mark.parametrize("perfect", [False, True])
def test_chance_verdict_is_stored_and_a_failing_model_gets_a_banner(fresh_tiny_llm, tmp_path, perfect):
    import numpy as np

    from rgenima_app.analysis.metrics import chance_check

    y = ["NC", "SMC", "MCI", "AD"] * 5
    proba = np.eye(4)[[0, 1, 2, 3] * 5] if perfect else np.tile([0.7, 0.1, 0.1, 0.1], (20, 1))
    check = chance_check(y, proba, n_permutations=200)
    path = save_bundle(tmp_path / "m", build(fresh_tiny_llm), metrics={"chance": check.to_dict()})
    stored = json.loads((path / "rgenima.json").read_text())["metrics"]["chance"]
    assert stored["beats_chance"] is perfect and stored["majority_rate"] == pytest.approx(0.25)
    assert stored["p_value"] == pytest.approx(check.p_value) and stored["n_permutations"] == 200
    assert load_bundle(path).chance["state"] == ("beats" if perfect else "fails")
    card = (path / "MODEL_CARD.md").read_text()
    banner = "> **WARNING: THE MODEL DOES NOT BEAT CHANCE"
    assert (banner in card) is not perfect
    if not perfect:  # the banner comes first, before anything a reader might take as a result
        assert card.index(banner) < card.index("## Model")


def edit_metadata(path, **changes):
    meta = json.loads((path / "rgenima.json").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            meta[section][field] = value
        else:
            meta[section] = value
    (path / "rgenima.json").write_text(json.dumps(meta))


def test_refuses_wrong_format_version(bundle):
    _, path = bundle
    edit_metadata(path, format_version=99)
    with pytest.raises(MissingInputError, match="version 99"):
        load_bundle(path)


def test_refuses_other_labels_and_rois(bundle):
    _, path = bundle
    edit_metadata(path, labels=["CN", "SMC", "MCI", "AD"])
    with pytest.raises(MissingInputError, match="labels"):
        load_bundle(path)
    edit_metadata(path, labels=["NC", "SMC", "MCI", "AD"], rois__names=["Left-Hippocampus"] * N_ROIS)
    with pytest.raises(MissingInputError, match="ROI list"):
        load_bundle(path)


def test_refuses_other_roi_size(bundle):
    _, path = bundle
    with pytest.raises(UsageError, match="ROI size 8"):
        load_bundle(path, expected_roi_size=12)
    assert load_bundle(path, expected_roi_size=S).roi_size == S


def test_refuses_missing_tensor(bundle):
    _, path = bundle
    state = load_file(str(path / "connector.safetensors"))
    state.pop(sorted(state)[0])
    save_file(state, str(path / "connector.safetensors"))
    with pytest.raises(MissingInputError, match="missing tensor"):
        load_bundle(path)


def test_refuses_missing_file(bundle):
    _, path = bundle
    (path / "rit.safetensors").unlink()
    with pytest.raises(MissingInputError, match="rit.safetensors is missing"):
        load_bundle(path)


@pytest.mark.parametrize("name", ["llm/pytorch_model.bin", "rit.pt", "connector.pkl"])
def test_refuses_pickles(bundle, name):
    _, path = bundle
    (path / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(MissingInputError, match="safetensors only"):
        load_bundle(path)


def test_refuses_non_bundles(tmp_path, bundle):
    with pytest.raises(MissingInputError, match="not found"):
        load_bundle(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingInputError, match="not an rgenima model bundle"):
        load_bundle(tmp_path / "empty")
    model, path = bundle
    with pytest.raises(OutputNotWritableError, match="already exists"):
        save_bundle(path, model)


def test_refuses_incomplete_llm_weights(bundle):
    _, path = bundle
    file = next((path / "llm").glob("*.safetensors"))
    state = load_file(str(file))
    state.pop(next(k for k in state if "layers.0.mlp" in k))
    save_file(state, str(file), metadata={"format": "pt"})
    with pytest.raises(MissingInputError, match="incomplete"):
        load_bundle(path)


@pytest.mark.parametrize("key", ["intermediate_size", "vocab_size"])
def test_llm_config_that_disagrees_with_its_weights_is_a_damaged_bundle(bundle, key):
    """llm/config.json edited after saving: 66 naming the file, not transformers' RuntimeError (issue 21)."""
    _, path = bundle
    config_file = path / "llm" / "config.json"
    config = json.loads(config_file.read_text())
    config[key] = config[key] * 2
    config_file.write_text(json.dumps(config))
    with pytest.raises(MissingInputError, match=r"llm/config\.json does not match the weights") as caught:
        load_bundle(path)
    assert "of another shape" in str(caught.value)


def test_local_llm_frozen_bundle_keeps_only_a_description(fresh_tiny_llm, tmp_path):
    """A frozen local LLM is not copied into the bundle; loading finds it (or an override) and checks it."""
    from rgenima_app.models.llm import build_llm

    llm, tok, _ = fresh_tiny_llm
    local = tmp_path / "base-llm"
    llm.save_pretrained(local)
    tok.save_pretrained(local)
    llm2, tok2, desc = build_llm(str(local))
    assert desc["kind"] == "local"
    model = set_finetune_mode(RGenIMA(llm2, tok2, image_dim=D, llm_description=desc), "frozen").eval()
    path = save_bundle(tmp_path / "frozen-local", model)
    assert not (path / "llm").exists()
    loaded = load_bundle(path)
    sample = [MLLMSample(GENOME, torch.randn(N_ROIS, D), "AD")]
    assert torch.equal(model.answer_log_likelihoods(sample), loaded.model.answer_log_likelihoods(sample))
    moved = tmp_path / "moved-llm"
    local.rename(moved)
    with pytest.raises(MissingInputError, match="not available"):
        load_bundle(path)
    assert load_bundle(path, base_llm=moved).metadata["finetune"] == "frozen"
    (moved / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(MissingInputError, match="pickled"):
        build_llm(str(moved))


def test_bundle_files_are_readable_by_others_under_a_plain_umask(tmp_path, tiny_llm):
    import os
    import stat

    from rgenima_app.models.mllm import RGenIMA

    llm, tokenizer, desc = tiny_llm
    old = os.umask(0o022)
    try:
        path = save_bundle(tmp_path / "shared", RGenIMA(llm, tokenizer, image_dim=8, llm_description=desc))
    finally:
        os.umask(old)
    for item in [path, *path.rglob("*")]:
        mode = stat.S_IMODE(item.stat().st_mode)
        assert mode & 0o044 == 0o044, f"{item} is {oct(mode)}"
