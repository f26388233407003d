"""In-fold SNP screening: the panel SNPs most associated with stage among the training participants.

With a few hundred training participants, a dense model cannot find a handful of causal SNPs among
hundreds of QC'd ones (docs/genetics.md, "Screening"); univariate screening can. Each QC'd SNP's
dosage is tested against the stage with a one-way ANOVA F test (four groups, so a non-monotone
effect counts too), on the fold's **training** participants only, and the ``top`` SNPs with the
largest F are kept (ties: genome order). Validation and test participants never influence the choice,
so the held-out figures stay honest; the statistic of every QC'd SNP goes into the model bundle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from rgenima_app.errors import UsageError

SELECTIONS = ("all", "screen")


@dataclass(frozen=True)
class Screening:
    """The result of screening: one row per QC'd SNP, in panel order.

    ``table`` columns: ``snp, gene, f_stat, p_value, rank`` (1 = strongest), ``selected``.
    """

    table: pd.DataFrame
    top: int
    n_participants: int

    @property
    def selected(self) -> list[str]:
        return self.table.loc[self.table["selected"], "snp"].tolist()

    def to_dict(self) -> dict:
        """What the bundle records (rgenima.json): the settings and the selected SNPs' statistics."""
        chosen = self.table[self.table["selected"]].sort_values("rank")
        return {"method": "anova_f", "top": self.top, "n_training_participants": self.n_participants,
                "n_screened": int(len(self.table)),
                "selected": [{"snp": r.snp, "gene": r.gene, "f_stat": round(float(r.f_stat), 6),
                              "p_value": float(r.p_value), "rank": int(r.rank)} for r in chosen.itertuples()]}


def dosage_matrix(tables: Mapping[str, pd.DataFrame], participants: Sequence[str]) -> np.ndarray:
    """(n_participants, n_snps) dosages of some participants from their panel tables (same panel each)."""
    return np.stack([tables[p]["dosage"].to_numpy(float) for p in participants]) if participants else \
        np.zeros((0, 0))


def screen_snps(tables: Mapping[str, pd.DataFrame], labels: Mapping[str, str], top: int) -> Screening:
    """Screen the SNPs of ``tables`` (participant -> panel table) on the participants in ``labels``.

    Only the participants named in ``labels`` (the fold's training participants, participant -> stage)
    are read; every other table may change without changing the result.
    """
    if top < 1:
        raise UsageError(f"[genetics] screen_top = {top}", hint="keep at least 1 SNP, or snp_selection = 'all'")
    participants = sorted(labels)
    if not participants:
        raise UsageError("SNP screening needs training participants with genotypes")
    panel = tables[participants[0]][["snp", "gene"]].reset_index(drop=True)
    x = dosage_matrix(tables, participants)
    y = np.array([labels[p] for p in participants])
    groups = [x[y == stage] for stage in sorted(set(y))]
    with np.errstate(divide="ignore", invalid="ignore"):
        f_stat, p_value = stats.f_oneway(*groups, axis=0) if len(groups) > 1 else \
            (np.zeros(x.shape[1]), np.ones(x.shape[1]))
    # a constant SNP carries no evidence; with one participant per stage scipy returns a single NaN for all
    f_stat = np.broadcast_to(np.nan_to_num(np.asarray(f_stat, float), nan=0.0), (x.shape[1],)).copy()
    p_value = np.broadcast_to(np.nan_to_num(np.asarray(p_value, float), nan=1.0), (x.shape[1],)).copy()
    order = np.lexsort((np.arange(len(f_stat)), -f_stat))  # largest F first, then panel (genome) order
    rank = np.empty(len(order), int)
    rank[order] = np.arange(1, len(order) + 1)
    table = panel.assign(f_stat=f_stat, p_value=p_value, rank=rank, selected=rank <= top)
    return Screening(table=table, top=top, n_participants=len(participants))
