"""Matching genotype sample IDs to BIDS participants.

A participant's genotype sample is, in order of preference: the ``genetic_id`` column of
participants.tsv (BIDS Genetic Descriptor) when it is filled in, else the participant label with its
``sub-`` prefix, else the label without it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

LOG = logging.getLogger(__name__)


@dataclass
class SampleMatch:
    """``matched``: participant_id (``sub-XX``) -> genotype sample ID, in participants.tsv order."""

    matched: dict[str, str] = field(default_factory=dict)
    unmatched_participants: list[str] = field(default_factory=list)
    unmatched_samples: list[str] = field(default_factory=list)

    def log(self, logger: logging.Logger = LOG, source: str = "genotypes") -> None:
        """Report the match in the run log (participants without genotypes, samples without participants)."""
        logger.info("%s: %d participants matched to genotype samples", source, len(self.matched))
        if self.unmatched_participants:
            logger.warning("%s: %d participants have no genotypes: %s", source, len(self.unmatched_participants),
                           ", ".join(self.unmatched_participants))
        if self.unmatched_samples:
            logger.info("%s: %d genotype samples match no participant: %s", source, len(self.unmatched_samples),
                        ", ".join(self.unmatched_samples[:20]) + (" ..." if len(self.unmatched_samples) > 20 else ""))


def match_samples(participants: pd.DataFrame | Sequence[str], genotype_samples: Sequence[str]) -> SampleMatch:
    """Match participants (a participants.tsv table, or participant IDs) to genotype sample IDs."""
    table = (participants if isinstance(participants, pd.DataFrame)
             else pd.DataFrame({"participant_id": list(participants)}))
    available = set(genotype_samples)
    match = SampleMatch()
    used: set[str] = set()
    for row in table.to_dict("records"):
        pid = str(row["participant_id"])
        pid = pid if pid.startswith("sub-") else f"sub-{pid}"
        candidates = []
        genetic_id = row.get("genetic_id")
        if genetic_id is not None and not pd.isna(genetic_id) and str(genetic_id).strip() not in ("", "n/a"):
            candidates.append(str(genetic_id).strip())
        candidates += [pid, pid[len("sub-"):]]
        sample = next((c for c in candidates if c in available), None)
        if sample is None:
            match.unmatched_participants.append(pid)
        else:
            match.matched[pid] = sample
            used.add(sample)
    match.unmatched_samples = [s for s in genotype_samples if s not in used]
    return match
