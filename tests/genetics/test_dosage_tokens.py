"""One token per SNP dosage in the compact SNP text, for every tokenizer rgenima ships or loads.

A tokenizer that merges digits (``2210`` -> `` 2``, ``210``) gives no token of its own to a SNP's
dosage (issue 18); ``dosage_separator`` picks the separator that avoids it, and the compact format
must stay shorter than the verbose one.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rgenima_app.genetics.serialize import (count_tokens, dosage_separator, dosages_with_own_token, one_token_per_dosage,
                                            parse_genotype_text, serialize_genotypes)


def panel_table(seed: int, genes: int = 12, per_gene: tuple[int, int] = (1, 40)) -> pd.DataFrame:
    """A panel-shaped table with real gene names and random dosages."""
    from rgenima_app.genetics.panel import load_gene_panel

    rng = np.random.default_rng(seed)
    names = list(load_gene_panel("GRCh37")["gene"])[:genes]
    rows = []
    for gene in names:
        for _ in range(int(rng.integers(*per_gene))):
            a1, a2 = rng.choice(list("ACGT"), 2, replace=False)
            rows.append((f"rs{rng.integers(1, 10**9)}", gene, a1, a2, float(rng.integers(0, 3))))
    return pd.DataFrame(rows, columns=["snp", "gene", "a1", "a2", "dosage"])


def dosage_tokens_per_snp(tokenizer, table: pd.DataFrame, sep: str) -> list[int]:
    """For every SNP of the compact text, 1 when its dosage digit is a token of its own (nothing but
    spacing beside it), else 0 (the digit shares a token with another dosage or other characters)."""
    own = dosages_with_own_token(tokenizer, serialize_genotypes(table, "compact", sep=sep))
    assert len(own) == len(table)
    return [int(x) for x in own]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from rgenima_app.models.tiny_llm import train_tiny_tokenizer

    return train_tiny_tokenizer(2048)


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_dir, local_files_only=True)


@pytest.fixture(params=["tiny", "smollm2"])
def tokenizer(request):
    return request.getfixturevalue(f"{request.param}_tokenizer")


def test_one_token_per_dosage_in_the_compact_format(tokenizer):
    sep = dosage_separator(tokenizer)
    assert sep == ""  # both split digits one by one: no separator needed, no token spent on one
    for seed in range(5):
        table = panel_table(seed)
        counts = dosage_tokens_per_snp(tokenizer, table, sep)
        assert counts == [1] * len(table), f"SNP dosages merged into shared tokens: {counts}"
        back = parse_genotype_text(serialize_genotypes(table, "compact", sep=sep), table, "compact", sep=sep)
        assert back["dosage"].tolist() == table["dosage"].astype(int).tolist()


def test_compact_is_shorter_than_verbose(tokenizer):
    sep = dosage_separator(tokenizer)
    tables = [panel_table(seed) for seed in range(10)]
    compact = np.mean(count_tokens([serialize_genotypes(t, "compact", sep=sep) for t in tables], tokenizer))
    verbose = np.mean(count_tokens([serialize_genotypes(t, "verbose") for t in tables], tokenizer))
    snps = np.mean([len(t) for t in tables])
    assert compact < verbose / 3
    # one token per dosage plus the gene names and block separators
    assert snps <= compact < snps + 12 * 6


def test_a_digit_merging_tokenizer_gets_a_space_between_dosages():
    """A byte-level BPE trained on digit strings (as the tiny tokenizer was before it split digits, and
    like Llama-3 / Qwen grouping) merges dosages; the probe then separates them with spaces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = np.random.default_rng(0)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["APOE " + "".join(map(str, rng.integers(0, 3, 30))) for _ in range(300)]
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    merging = PreTrainedTokenizerFast(tokenizer_object=bpe)
    assert not one_token_per_dosage(merging, "")
    assert dosage_separator(merging) == " "
    table = panel_table(1)
    assert dosage_tokens_per_snp(merging, table, " ") == [1] * len(table)
    assert serialize_genotypes(table.head(3).assign(gene="APOE"), "compact", sep=" ").count(" ") == 3
    spaced = serialize_genotypes(table, "compact", sep=" ")
    back = parse_genotype_text(spaced, table, "compact", sep=" ")
    assert back["dosage"].tolist() == table["dosage"].astype(int).tolist()


def test_the_model_carries_the_separator():
    """The separator is part of the model (probed from its tokenizer unless a bundle gives it)."""
    from rgenima_app.models.mllm import RGenIMA
    from rgenima_app.models.llm import build_llm
    from rgenima_app.models.tiny_llm import TinyLLMConfig

    llm, tok, desc = build_llm("tiny", tiny=TinyLLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                          num_key_value_heads=1, intermediate_size=64,
                                                          vocab_size=512))
    assert RGenIMA(llm, tok, image_dim=8, n_image_tokens=2).dosage_separator == ""
    assert RGenIMA(llm, tok, image_dim=8, n_image_tokens=2, dosage_separator=" ").dosage_separator == " "
