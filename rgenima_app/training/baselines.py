"""Baselines of the paper's Table 1, trained and tested on the same split as R-GenIMA (filled in below)."""
from __future__ import annotations

BASELINES = ("snp_mlp", "bert_rit_concat", "bert_rit_cross")
