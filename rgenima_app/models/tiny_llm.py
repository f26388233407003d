"""``--llm tiny``: a Qwen2-architecture LM of a few million parameters and a tokenizer trained offline.

Nothing is downloaded. The tokenizer is a byte-level BPE (the ``tokenizers`` library, like Qwen's own)
trained on a small corpus made here: the prompt template, the four answers, the gene names of the
packaged panel and synthetic SNP lines in the shapes SNP text takes (gene blocks of rsIDs, alleles and
dosages, or dosage strings). Byte-level BPE can encode any text, so an unseen serialization still
tokenizes, only less compactly. Digits are split one by one before BPE (``Digits(individual_digits=True)``),
so every SNP dosage of the compact SNP text is a token of its own (a merged ``210`` would stand for
three SNPs at once). Both the model (random initialisation) and the tokenizer are saved in
the model bundle, so a bundle never depends on rebuilding them identically.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import torch

from rgenima_app import STAGES
from rgenima_app.genetics.panel import load_gene_panel
from rgenima_app.models.prompt import ANSWER_TEMPLATE, IMAGE_TOKEN, PROMPT_TEMPLATE, user_prompt

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


@dataclass
class TinyLLMConfig:
    """Size of the tiny LM (defaults: about 3.5 M parameters with the default 2,048-token vocabulary)."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 688
    max_position_embeddings: int = 32768
    vocab_size: int = 2048
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _corpus(seed: int) -> list[str]:
    """Training text for the tokenizer: prompts, answers, gene names and SNP-text shapes."""

    rng = random.Random(seed)
    genes = list(load_gene_panel("GRCh37")["gene"])
    alleles = "ACGT"
    lines = [PROMPT_TEMPLATE, user_prompt("x", True), user_prompt("x", False), user_prompt(None, True)]
    lines += [ANSWER_TEMPLATE.format(label=s) for s in STAGES] * 20
    lines += [" ".join(genes), ", ".join(genes)]
    for _ in range(400):
        gene = rng.choice(genes)
        snps = []
        for _ in range(rng.randint(1, 12)):
            a1, a2 = rng.sample(alleles, 2)
            snps.append(f"rs{rng.randint(1, 999_999_999)} {a1}/{a2} {rng.randint(0, 2)}")
        lines.append(f"{gene}: " + ", ".join(snps) + ";")
        lines.append(f"{gene}: " + "".join(str(rng.randint(0, 2)) for _ in range(rng.randint(1, 40))) + ";")
        lines.append(f"{gene} " + " ".join(f"{a1}{a2}" for a1, a2 in (rng.sample(alleles, 2) for _ in range(5))))
    lines += ["".join(str(rng.randint(0, 9)) for _ in range(30)) for _ in range(50)]
    return lines


def train_tiny_tokenizer(vocab_size: int = 2048, seed: int = 0, split_digits: bool = True):
    """A byte-level BPE tokenizer (a transformers fast tokenizer) with EOS, pad and the image token; digits
    are never merged (``split_digits=False``: the tokenizer of rgenima before issue 18, for comparisons)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]) \
        if split_digits else byte_level
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS_TOKEN, PAD_TOKEN, IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(_corpus(seed), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
                                   additional_special_tokens=[IMAGE_TOKEN], model_max_length=10**6)


def build_tiny_llm(config: TinyLLMConfig | None = None, tokenizer=None):
    """(model, tokenizer): a randomly initialised Qwen2ForCausalLM sized by ``config`` and its tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = config or TinyLLMConfig()
    tokenizer = tokenizer or train_tiny_tokenizer(config.vocab_size, config.seed)
    qwen_config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    qwen_config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = Qwen2ForCausalLM(qwen_config)
    return model, tokenizer
