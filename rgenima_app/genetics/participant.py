"""The participant level's genotype stage: panel genotypes of the selected participants, as derivatives.

Without a model, the SNP panel is every SNP of the gene panel's regions that passes QC in the whole
genotype file (``select_panel_snps`` on all its samples), and missing calls are imputed with the file's
A1 frequencies. With a model, the caller passes the model's own SNP panel (training frequencies).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rgenima_app.genetics.extract import matched_panel_genotypes, select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.genetics.readers import open_genotypes
from rgenima_app.genetics.samples import match_samples

log = logging.getLogger("rgenima")


@dataclass(frozen=True)
class GenotypeInput:
    """The run's genotypes: the file (PLINK .bed or VCF/BCF), its genome build, the gene panel (None: packaged)."""

    path: Path
    genome_build: str = "GRCh37"
    gene_panel: Path | None = None


def participant_genotypes(genotypes: str | os.PathLike, participants: pd.DataFrame, subjects: list[str], *,
                          genome_build: str = "GRCh37", panel_path: str | os.PathLike | None = None,
                          snp_panel: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Panel genotypes (``snp, gene, chrom, pos, a1, a2, dosage, imputed``) of each subject that has them.

    ``participants``: the participants.tsv table (index: labels without ``sub-``; optional ``genetic_id``).
    ``subjects``: the labels to process. Subjects without a genotype sample are logged and left out.
    """
    reader = open_genotypes(genotypes)
    model_panel = snp_panel is not None
    if snp_panel is None:
        snp_panel, _ = select_panel_snps(reader, gene_panel(panel_path, genome_build), build=genome_build)
        log.info("%s: %d SNPs of the gene panel pass QC (all %d samples)", reader.path.name, len(snp_panel),
                 len(reader.samples))
    table = pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects]})
    if "genetic_id" in participants.columns:
        table["genetic_id"] = [participants["genetic_id"].get(s) for s in subjects]
    match = match_samples(table, reader.samples)
    match.log(log, source=reader.path.name)
    if not match.matched:
        return {}
    tables, panel_match = matched_panel_genotypes(reader, snp_panel, match.matched)
    if model_panel:
        log_panel_match(panel_match.summary(), reader.path.name)
    return tables


def log_panel_match(summary: dict[str, int], source: str) -> None:
    """How many of the model's panel SNPs the genotype file has, and how they were found (a warning
    when under half: a file of another build, or one named and placed otherwise than the model's)."""
    level = logging.WARNING if summary["matched"] <= summary["panel"] / 2 else logging.INFO
    log.log(level, "%s: %d of the model's %d panel SNPs found (%d by position, %d by rsID; %d with the alleles "
            "swapped, %d on the other strand); not found: %d absent, %d with other alleles, %d palindromic "
            "(A/T, C/G) left out because the file has SNPs on the other strand", source, summary["matched"],
            summary["panel"], summary["by_position"], summary["by_rsid"], summary["allele_swapped"],
            summary["strand_flipped"], summary["absent"], summary["other_alleles"], summary["ambiguous_palindromic"])


def participant_genotypes_path(writer, subject: str) -> Path:
    """``sub-XX/genotype/sub-XX_desc-panel_genotypes.tsv`` (its sidecar beside it)."""
    return writer.path(subject, datatype="genotype", desc="panel", suffix="genotypes", extension=".tsv")


def write_participant_genotypes(writer, subject: str, table: pd.DataFrame, genotypes: Path,
                                genome_build: str, provenance: str | None = None) -> Path:
    """``sub-XX/genotype/sub-XX_desc-panel_genotypes.tsv`` with its sidecar (``provenance`` recorded in it)."""
    path = participant_genotypes_path(writer, subject)
    sidecar = {
        "Description": "Genotypes of the gene panel's SNPs for this participant",
        "Sources": [writer.source_uri(genotypes)],
        "DosageOf": "the A1 allele of the panel (PLINK A1 / VCF ALT), 0-2; imputed calls are fractional",
        "GenomeBuild": genome_build,
    }  # the columns are described in bids_spec/derivatives.yaml
    if provenance is not None:
        sidecar["ProvenanceKey"] = provenance
    return writer.write_tsv(path, table, sidecar=sidecar)
