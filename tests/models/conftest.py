"""Fixtures for the model tests: a tiny LLM (built once per session) and SNP texts of both shapes."""
from __future__ import annotations

import copy
import random

import pytest
import torch

from rgenima_app.models.llm import build_llm
from rgenima_app.models.tiny_llm import TinyLLMConfig

TEST_LLM = TinyLLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128, vocab_size=1024)
GENES = ["APOE", "BIN1", "CLU", "PICALM", "CR1", "ABCA7", "SORL1", "TREM2", "CD33", "MS4A6A"]


def make_snp_text(n_snps: int, fmt: str = "verbose", seed: int = 0) -> str:
    """SNP text in gene blocks: verbose ``GENE: rs1 A/G 1, ...;`` or compact ``GENE: 0121...;``."""
    rng = random.Random(seed)
    per_gene = max(1, n_snps // 100)
    blocks, done, g = [], 0, 0
    while done < n_snps:
        n = min(per_gene, n_snps - done)
        gene = f"{GENES[g % len(GENES)]}{g // len(GENES) or ''}"
        if fmt == "verbose":
            body = ", ".join(f"rs{rng.randint(1, 10**9)} {''.join(rng.sample('ACGT', 2))[0]}/"
                             f"{rng.choice('ACGT')} {rng.randint(0, 2)}" for _ in range(n))
        else:
            body = "".join(str(rng.randint(0, 2)) for _ in range(n))
        blocks.append(f"{gene}: {body};")
        done, g = done + n, g + 1
    return " ".join(blocks)


@pytest.fixture(scope="session")
def tiny_llm():
    """(model, tokenizer, description) of a ~100 k-parameter Qwen2 LM; tests must not modify the model."""
    return build_llm("tiny", tiny=TEST_LLM)


@pytest.fixture
def fresh_tiny_llm(tiny_llm):
    """A private copy of the tiny LM's weights (for tests that train or wrap it)."""
    model, tokenizer, desc = tiny_llm
    return copy.deepcopy(model), copy.deepcopy(tokenizer), dict(desc)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def snp_text():
    """The SNP-text maker ``snp_text(n_snps, fmt="verbose"|"compact", seed=0)``."""
    return make_snp_text
