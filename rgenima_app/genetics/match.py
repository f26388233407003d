"""Matching a model's SNP panel to the variants of a user's genotype file (docs/genetics.md, "Panel matching").

A panel SNP (``snp, chrom, pos, a1, a2``; the dosage counts its ``a1``) is looked for in the file

1. by position: the file variant's chromosome and position, or the ones its ID spells (PLINK/VCF-style
   IDs ``1:12345``, ``1:12345:A:G``, ``chr1:12345:A:G``, ``1_12345_A_G``), equal to the panel SNP's own
   (or to the ones the panel SNP's ID spells);
2. else by rsID (``rs123``; a VCF ID column with several IDs, ``rs1;rs2``, offers each), which finds the
   SNP in a file of another genome build too.

A candidate is kept only when its alleles are the panel SNP's:

- ``same``: file A1/A2 = panel A1/A2, dosage d;
- ``swapped``: file A1/A2 = panel A2/A1 (e.g. the file's ALT is the panel's A2): dosage 2 - d;
- ``strand`` / ``strand_swapped``: the same after complementing the file's alleles (A<->T, C<->G; the file
  was written on the other DNA strand), for SNPs that are not palindromic only.

A palindromic SNP (A/T or C/G) reads the same on both strands, so a swap and a strand flip cannot be told
apart. It is matched by its letters (both sides taken to be on the forward strand, as VCFs and the 1000
Genomes files are) only when no non-palindromic SNP of the same file needed a strand complement; in a file
where some did, the palindromic SNPs are left unobserved (``ambiguous``) rather than risk counting the
wrong allele. A PLINK monomorphic variant (A1 ``0``) matches when its other allele is one of the panel's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rgenima_app.genetics.readers import normalize_chrom

COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}
#: Order of preference when a panel SNP has several candidates: position before rsID, then orientation.
ORIENTATIONS = ("same", "swapped", "strand", "strand_swapped")
_ID_POSITION = re.compile(r"(?:chr)?([0-9]{1,2}|X|Y|XY|MT|M)[:_-]([0-9]+)(?:[:_-][ACGTN]+[:_/-][ACGTN]+)?",
                          re.IGNORECASE)
_RSID = re.compile(r"rs[0-9]+", re.IGNORECASE)


def id_position(text: object) -> tuple[str, int] | None:
    """The chromosome and position a PLINK- or VCF-style variant ID spells (``chr1:12345:A:G`` ->
    ``("1", 12345)``), None for an rsID or any other ID."""
    match = _ID_POSITION.fullmatch(str(text).strip())
    return (normalize_chrom(match.group(1).upper()), int(match.group(2))) if match else None


def rsids(text: object) -> list[str]:
    """The rsIDs of a variant ID field (``rs123``, ``RS123``, ``rs1;rs2``), lower-cased."""
    return [part.strip().lower() for part in str(text).split(";") if _RSID.fullmatch(part.strip())]


def is_palindromic(a1: str, a2: str) -> bool:
    return COMPLEMENT.get(a1) == a2


def orientation(a1: str, a2: str, b1: str, b2: str) -> str | None:
    """How a file variant's alleles ``b1/b2`` (dosage counts ``b1``) relate to a panel SNP's ``a1/a2``."""
    if b1 == "0" and b2 in (a1, a2):  # PLINK's monomorphic variant: the unseen allele is the other one
        b1 = a2 if b2 == a1 else a1
    if (b1, b2) == (a1, a2):
        return "same"
    if (b1, b2) == (a2, a1):
        return "swapped"
    if is_palindromic(a1, a2):
        return None
    c1, c2 = COMPLEMENT.get(b1), COMPLEMENT.get(b2)
    if (c1, c2) == (a1, a2):
        return "strand"
    if (c1, c2) == (a2, a1):
        return "strand_swapped"
    return None


@dataclass
class PanelMatch:
    """For each panel SNP (in panel order): ``row`` (index into the file variants, -1 when not observed),
    ``via`` (position, rsid or ""), ``orientation`` (same, swapped, strand, strand_swapped or ""),
    ``status`` (matched, absent, other_alleles, ambiguous) and ``flip`` (dosage = 2 - d)."""

    table: pd.DataFrame

    @property
    def rows(self) -> np.ndarray:
        return self.table["row"].to_numpy(int)

    @property
    def flip(self) -> np.ndarray:
        return self.table["orientation"].isin(["swapped", "strand_swapped"]).to_numpy(bool)

    @property
    def n_matched(self) -> int:
        return int((self.table["status"] == "matched").sum())

    def summary(self) -> dict[str, int]:
        """Counts for the log and sidecars: matched by position / by rsID, allele-swapped, strand-flipped,
        and the unmatched by reason."""
        t, matched = self.table, self.table["status"] == "matched"
        return {"panel": len(t), "matched": int(matched.sum()),
                "by_position": int((matched & (t["via"] == "position")).sum()),
                "by_rsid": int((matched & (t["via"] == "rsid")).sum()),
                "allele_swapped": int((matched & t["orientation"].isin(["swapped", "strand_swapped"])).sum()),
                "strand_flipped": int((matched & t["orientation"].isin(["strand", "strand_swapped"])).sum()),
                "absent": int((t["status"] == "absent").sum()),
                "other_alleles": int((t["status"] == "other_alleles").sum()),
                "ambiguous_palindromic": int((t["status"] == "ambiguous").sum())}


def _position_keys(table: pd.DataFrame) -> pd.DataFrame:
    """``(i, chrom, pos)`` of each variant: its own position and the one its ID spells, if any."""
    own = pd.DataFrame({"i": np.arange(len(table)), "chrom": table["chrom"].astype(str).map(normalize_chrom).to_numpy(),
                        "pos": table["pos"].to_numpy(np.int64)})
    spelled = [(i, *p) for i, p in enumerate(map(id_position, table["snp"])) if p is not None]
    keys = pd.concat([own, pd.DataFrame(spelled, columns=["i", "chrom", "pos"])], ignore_index=True)
    return keys.astype({"pos": np.int64}).drop_duplicates()


def _rsid_keys(table: pd.DataFrame) -> pd.DataFrame:
    rows = [(i, r) for i, snp in enumerate(table["snp"]) for r in rsids(snp)]
    return pd.DataFrame(rows, columns=["i", "rsid"]).drop_duplicates()


def match_panel(panel: pd.DataFrame, variants: pd.DataFrame) -> PanelMatch:
    """Match every SNP of ``panel`` to at most one of ``variants`` (both ``snp, chrom, pos, a1, a2``)."""
    panel, variants = panel.reset_index(drop=True), variants.reset_index(drop=True)
    by_position = _position_keys(panel).merge(_position_keys(variants), on=["chrom", "pos"], suffixes=("", "_file"))
    by_rsid = _rsid_keys(panel).merge(_rsid_keys(variants), on="rsid", suffixes=("", "_file"))
    pairs = pd.concat([by_position[["i", "i_file"]].assign(via="position"),
                       by_rsid[["i", "i_file"]].assign(via="rsid")], ignore_index=True)
    pa1, pa2 = panel["a1"].astype(str).str.upper().to_numpy(), panel["a2"].astype(str).str.upper().to_numpy()
    fa1, fa2 = variants["a1"].astype(str).str.upper().to_numpy(), variants["a2"].astype(str).str.upper().to_numpy()
    pairs["orientation"] = [orientation(pa1[i], pa2[i], fa1[j], fa2[j]) for i, j in zip(pairs["i"], pairs["i_file"])]
    found = set(pairs["i"])
    pairs = pairs.dropna(subset=["orientation"])
    pairs["rank"] = (pairs["via"] != "position") * 10 + pairs["orientation"].map(ORIENTATIONS.index)
    best = pairs.sort_values(["i", "rank", "i_file"]).drop_duplicates("i").set_index("i")

    table = pd.DataFrame({"row": -1, "via": "", "orientation": "", "status": "absent"}, index=range(len(panel)))
    table.loc[[i for i in found if i not in best.index], "status"] = "other_alleles"
    table.loc[best.index, ["row", "via", "orientation"]] = best[["i_file", "via", "orientation"]].to_numpy()
    table.loc[best.index, "status"] = "matched"
    palindromic = np.array([is_palindromic(a, b) for a, b in zip(pa1, pa2)], dtype=bool)
    matched = (table["status"] == "matched").to_numpy()
    strand_used = (matched & ~palindromic & table["orientation"].str.startswith("strand").to_numpy()).any()
    if strand_used:  # the file mixes or flips strands: a palindromic SNP's orientation cannot be known
        ambiguous = matched & palindromic
        table.loc[ambiguous, ["row", "via", "orientation", "status"]] = [-1, "", "", "ambiguous"]
    return PanelMatch(table.astype({"row": int}))
