"""Genetic encoders of the baselines: an MLP on the dosage vector, a small BERT on the SNP text.

Both expose ``features(...) -> (tokens (B, N, D), mask (B, N) bool, pooled (B, D))`` for the fusion
baselines and ``forward(...) -> logits (B, 4)`` for the SNP-only rows of the paper's Table 1.
The BERT is built from a config (randomly initialised, trained from scratch: no pretrained weights
can be downloaded) and reads the same byte-level BPE tokens as the tiny LLM unless given another
fast tokenizer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from rgenima_app import STAGES
from rgenima_app.errors import UsageError


class DosageMLP(nn.Module):
    """MLP on the (B, n_snps) dosage vector (0/1/2, imputed values may be fractional)."""

    def __init__(self, n_snps: int, hidden: tuple[int, ...] = (256, 64), dropout: float = 0.2,
                 n_classes: int = len(STAGES)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = n_snps
        for width in hidden:
            layers += [nn.Linear(c_in, width), nn.GELU(), nn.Dropout(dropout)]
            c_in = width
        self.body = nn.Sequential(*layers)
        self.out_dim = c_in
        self.head = nn.Linear(c_in, n_classes)
        self.n_snps = n_snps

    def features(self, dosages: torch.Tensor):
        if dosages.dim() != 2 or dosages.shape[1] != self.n_snps:
            raise ValueError(f"expected dosages of shape (B, {self.n_snps}), got {tuple(dosages.shape)}")
        pooled = self.body(dosages.float())
        return pooled.unsqueeze(1), torch.ones(pooled.shape[0], 1, dtype=torch.bool, device=pooled.device), pooled

    def forward(self, dosages: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(dosages)[2])


@dataclass
class SnpBertConfig:
    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 4096
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)


class SnpBert(nn.Module):
    """A BERT-style encoder over the SNP text (``transformers.BertModel`` from a config)."""

    def __init__(self, tokenizer, config: SnpBertConfig | None = None, n_classes: int = len(STAGES)):
        from transformers import BertConfig, BertModel

        super().__init__()
        self.config = cfg = config or SnpBertConfig()
        self.tokenizer = tokenizer
        bert_cfg = BertConfig(
            vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads, intermediate_size=cfg.intermediate_size,
            max_position_embeddings=cfg.max_position_embeddings + 1, hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout, pad_token_id=tokenizer.pad_token_id,
        )
        self.bert = BertModel(bert_cfg, add_pooling_layer=False)
        # a learned CLS vector in front of the text: the BPE vocabulary has no [CLS] token
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.hidden_size))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.out_dim = cfg.hidden_size
        self.head = nn.Linear(cfg.hidden_size, n_classes)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), right-padded; refuses texts longer than the position table."""
        enc = self.tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        longest = int(enc["attention_mask"].sum(-1).max())
        if longest > self.config.max_position_embeddings:
            raise UsageError(f"an SNP text has {longest} tokens, more than the BERT baseline's "
                             f"{self.config.max_position_embeddings} positions",
                             "use the compact SNP text format or raise max_position_embeddings")
        return enc["input_ids"], enc["attention_mask"]

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(tokens (B, 1 + L, D) with CLS first, mask (B, 1 + L), pooled = CLS state (B, D))."""
        embeds = self.bert.embeddings.word_embeddings(input_ids)
        embeds = torch.cat([self.cls.expand(embeds.shape[0], -1, -1).to(embeds.dtype), embeds], dim=1)
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], 1), attention_mask], dim=1)
        hidden = self.bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        return hidden, mask.bool(), hidden[:, 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(input_ids, attention_mask)[2])
