"""From a genotype file to the SNP panel of a model and to per-participant panel genotypes.

- :func:`select_panel_snps` (group level, training): read only the gene panel's regions, run QC on the
  training participants, keep QC-passing SNPs inside panel genes; gives the model's ``snp_panel`` table
  (``snp, chrom, pos, a1, a2, gene, a1_freq``) and the cohort QC report.
- :func:`panel_genotypes` (participant level): the dosages of a SNP panel for some samples, aligned to
  the panel's A1 allele (found by position or rsID, allele swaps and strand flips handled:
  ``genetics/match.py``), missing calls imputed with the panel's training A1 frequency; one table
  ``snp, gene, chrom, pos, a1, a2, dosage, imputed`` per participant.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from rgenima_app.errors import ProcessingError
from rgenima_app.genetics.match import PanelMatch, id_position, match_panel, rsids
from rgenima_app.genetics.panel import assign_genes, check_file_build, panel_regions
from rgenima_app.genetics.qc import impute_missing, run_qc
from rgenima_app.genetics.readers import (GenotypeChunk, GenotypeReader, Region, VcfReader, normalize_chrom,
                                         open_genotypes)

SNP_PANEL_COLUMNS = ["snp", "chrom", "pos", "a1", "a2", "gene", "a1_freq"]
PARTICIPANT_COLUMNS = ["snp", "gene", "chrom", "pos", "a1", "a2", "dosage", "imputed"]


def select_panel_snps(genotypes: str | os.PathLike | GenotypeReader, gene_panel: pd.DataFrame,
                      build: str = "GRCh37", window: int = 0, samples: Iterable[str] | None = None,
                      geno: float | None = 0.05, maf: float | None = 0.05, hwe: float | None = 1e-6,
                      hwe_midp: bool = False, mind: float | None = None,
                      check_build: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """QC the panel's regions on ``samples`` (training participants' genotype IDs; all when None).

    Returns ``(snp_panel, qc_report)``: the kept SNPs (biallelic SNPs, autosomal, in a panel gene +-
    ``window`` bp) with their gene and training A1 frequency, in genome order; and the QC report of every
    variant read, with a ``gene`` column. Raises :class:`ProcessingError` when no variant of the file lies
    in the panel, or when the file's positions belong to the other genome build.
    """
    reader = open_genotypes(genotypes)
    if check_build:
        check_file_build(reader, build)
    report = run_qc(reader, geno=geno, maf=maf, hwe=hwe, hwe_midp=hwe_midp, mind=mind, samples=samples,
                    regions=panel_regions(gene_panel, window), snps_only=True)
    report["gene"] = assign_genes(report, gene_panel, window)
    repeated = report["snp"].duplicated() & report["kept"]  # one row per SNP name in a model's panel
    report.loc[repeated, "reason"] = "duplicate_id"
    report.loc[repeated, "kept"] = False
    outside = report["gene"].isna()
    report.loc[outside & report["kept"], "reason"] = "outside_panel"
    report.loc[outside, "kept"] = False
    if not (~outside).any():
        raise ProcessingError(
            f"no variant of {reader.path} lies in the {len(gene_panel)} genes of the gene panel ({build})",
            hint="check --genome-build and the chromosome names, or give a --gene-panel for this file's regions")
    kept = report[report["kept"]]
    if kept.empty:
        raise ProcessingError(f"no SNP of {reader.path} in the gene panel passes QC "
                              f"(geno={geno}, maf={maf}, hwe={hwe})", hint="see the cohort QC report")
    snp_panel = kept[["snp", "chrom", "pos", "a1", "a2", "gene", "a1_freq"]].reset_index(drop=True)
    return snp_panel, report


def panel_genotypes(genotypes: str | os.PathLike | GenotypeReader, snp_panel: pd.DataFrame,
                    sample_ids: Mapping[str, str] | Iterable[str]) -> dict[str, pd.DataFrame]:
    """Per-participant panel genotypes, ready for ``sub-XX_desc-panel_genotypes.tsv``.

    ``snp_panel``: the model's (or :func:`select_panel_snps`') table ``snp, chrom, pos, a1, a2, gene,
    a1_freq``. ``sample_ids``: participant_id -> genotype sample ID (e.g. ``match_samples(...).matched``),
    or sample IDs used as keys. Panel SNPs are found in the file by position or rsID, allele swaps and
    strand flips handled (``genetics/match.py``); a swapped SNP's dosage is 2 - d. Panel SNPs absent from
    the file, with other alleles, ambiguous, or with a missing call get ``2 * a1_freq`` and
    ``imputed = True``. Dosage = count of the panel's A1.
    """
    return matched_panel_genotypes(genotypes, snp_panel, sample_ids)[0]


def _read_candidates(reader: GenotypeReader, panel: pd.DataFrame) -> GenotypeChunk:
    """The file's variants that may be panel SNPs: those at the panel's positions (or the ones its IDs
    spell) and, for panel SNPs not found there, those with the panel SNP's rsID anywhere in the file
    (a PLINK .bim is in memory and a VCF without index was streamed whole anyway; an indexed VCF is
    scanned whole, without genotypes, only when position matching found at most half of the panel: a
    file of another build or with other positions)."""
    spots = [(c, p) for c, p in zip(panel["chrom"], panel["pos"])]
    spots += [p for p in map(id_position, panel["snp"]) if p is not None]
    chunk = reader.read([Region(normalize_chrom(c), int(p), int(p)) for c, p in spots])
    unmatched = match_panel(panel, chunk.variants).table["status"] != "matched"
    wanted = {r for snp in panel.loc[unmatched.to_numpy(), "snp"] for r in rsids(snp)}
    if not wanted or (isinstance(reader, VcfReader) and reader.indexed and unmatched.mean() <= 0.5):
        return chunk
    variants = reader.variants
    names = variants["snp"].astype(str)
    hit = names.str.lower().isin(wanted)   # vectorised: a genome-wide .bim has millions of rows
    several = names.str.contains(";", regex=False) & ~hit   # a VCF ID field listing several IDs
    hit[several] = names[several].map(lambda s: any(r in wanted for r in rsids(s)))
    elsewhere = variants[hit.to_numpy(bool)]
    if elsewhere.empty:
        return chunk
    extra = reader.read([Region(c, int(p), int(p)) for c, p in zip(elsewhere["chrom"], elsewhere["pos"])],
                        snps=set(elsewhere["snp"]))
    return GenotypeChunk(pd.concat([chunk.variants, extra.variants], ignore_index=True),
                         np.concatenate([chunk.dosage, extra.dosage], axis=0))


def matched_panel_genotypes(genotypes: str | os.PathLike | GenotypeReader, snp_panel: pd.DataFrame,
                            sample_ids: Mapping[str, str] | Iterable[str]) -> tuple[dict[str, pd.DataFrame], PanelMatch]:
    """:func:`panel_genotypes` and how each panel SNP was matched in the file (``PanelMatch``)."""
    reader = open_genotypes(genotypes)
    ids = dict(sample_ids) if isinstance(sample_ids, Mapping) else {s: s for s in sample_ids}
    index = {s: i for i, s in enumerate(reader.samples)}
    unknown = [s for s in ids.values() if s not in index]
    if unknown:
        raise ProcessingError(f"sample(s) {', '.join(unknown[:5])} not in {reader.path}",
                              hint="match participants with rgenima_app.genetics.samples.match_samples")
    panel = snp_panel.reset_index(drop=True)
    chunk = _read_candidates(reader, panel)
    match = match_panel(panel, chunk.variants)
    rows, have = match.rows, match.rows >= 0
    columns = [index[s] for s in ids.values()]
    raw = np.full((len(panel), len(columns)), -1, dtype=np.int8)
    raw[have] = chunk.dosage[rows[have]][:, columns]
    flip = match.flip
    raw[flip] = np.where(raw[flip] >= 0, 2 - raw[flip], -1)
    dosage, imputed = impute_missing(raw, panel["a1_freq"].to_numpy(float))
    base = panel[["snp", "gene", "chrom", "pos", "a1", "a2"]]
    tables = {pid: base.assign(dosage=dosage[:, j], imputed=imputed[:, j])[PARTICIPANT_COLUMNS]
              for j, pid in enumerate(ids)}
    return tables, match
