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
