"""Tiny R-GenIMA models and inputs for the inference tests (plain helpers; the fixtures are in conftest.py).

The models are untrained (random weights): the inference code must not care whether a model is good,
and building one takes seconds. The ``tiny_tokenizer`` fixture (conftest.py) is trained once per session;
models of every size reuse it. Imported by tests/test_reliability.py and benchmarks/bench_rollout.py too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from rgenima_app.genetics.serialize import serialize_genotypes
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.mllm import MLLMSample, RGenIMA
from rgenima_app.models.rit import RiT, RiTConfig
from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm

ROI_SIZE, IMAGE_DIM = 8, 32
VOCAB = 1024


def tiny_model(tokenizer, *, layers: int = 2, heads: int = 4, hidden: int = 64, kv_heads: int | None = None,
               seed: int = 0, with_rit: bool = True) -> RGenIMA:
    """An untrained R-GenIMA: a Qwen2 LM of the given size, a linear connector and a small RiT."""
    cfg = TinyLLMConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        num_key_value_heads=kv_heads or heads, intermediate_size=2 * hidden, vocab_size=VOCAB,
                        seed=seed)
    llm, tok = build_tiny_llm(cfg, tokenizer=tokenizer)
    desc = {"kind": "tiny", "tiny_config": cfg.to_dict(), "dtype": "float32"}
    torch.manual_seed(seed)
    rit = RiT(RiTConfig(roi_size=ROI_SIZE, dim=IMAGE_DIM, depth=1, heads=4, patch_encoder="strided")) \
        if with_rit else None
    return RGenIMA(llm, tok, image_dim=IMAGE_DIM, image_encoder=rit, llm_description=desc).eval()


def genome_text(n_genes: int = 8, snps: int = 3, seed: int = 0, fmt: str = "compact") -> str:
    """A serialized genotype text over the first ``n_genes`` genes of the packaged panel."""
    from rgenima_app.genetics.panel import load_gene_panel

    rng = np.random.default_rng(seed)
    genes = list(load_gene_panel("GRCh37")["gene"])[:n_genes]
    rows = [{"snp": f"rs{100 * g + s}", "gene": gene, "a1": "A", "a2": "G", "dosage": int(rng.integers(0, 3))}
            for g, gene in enumerate(genes) for s in range(snps)]
    return serialize_genotypes(pd.DataFrame(rows), fmt)


def image_sample(seed: int = 0, genome: str | None = None) -> MLLMSample:
    gen = torch.Generator().manual_seed(seed)
    return MLLMSample(genome, torch.randn(N_ROIS, IMAGE_DIM, generator=gen))


DECISIVE_ROI = 40


def decisive_samples(n: int, seed: int, roi: int = DECISIVE_ROI) -> list[MLLMSample]:
    """Image-only samples whose stage is written in one ROI token: NC when its features are about -2, AD when
    about +2; every other ROI token is small noise that carries nothing (alternating NC, AD)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        features = 0.1 * torch.randn(N_ROIS, IMAGE_DIM, generator=gen)
        ad = i % 2 == 1
        features[roi] = (2.0 if ad else -2.0) + 0.3 * torch.randn(IMAGE_DIM, generator=gen)
        out.append(MLLMSample(None, features, "AD" if ad else "NC"))
    return out


def decisive_model(tokenizer, max_steps: int = 600) -> RGenIMA:
    """A tiny R-GenIMA trained (Adam, batches of 8) on ``decisive_samples`` until it classifies all of them
    right with probability > 0.9 (checked every 25 steps): a model whose explanation is known."""
    model = tiny_model(tokenizer, layers=2, heads=4, with_rit=False).train()
    train = decisive_samples(32, seed=1)
    unlabelled = [MLLMSample(None, s.image_tokens) for s in train]
    truth = torch.tensor([0 if s.label == "NC" else 3 for s in train])  # STAGES index
    gen = torch.Generator().manual_seed(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(1, max_steps + 1):
        loss = model.loss([train[j] for j in torch.randint(0, len(train), (8,), generator=gen)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            p = model.eval().answer_probabilities(unlabelled)
            model.train()
            if bool((p[torch.arange(len(train)), truth] > 0.9).all()):
                break
    return model.eval()
