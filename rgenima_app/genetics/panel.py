"""The gene panel: genes and their coordinates in GRCh37 or GRCh38, and SNP -> gene assignment.

The default panel is packaged as ``rgenima_app/data/gene_panel.tsv`` (105 AD candidate genes, the
paper's size; ``scripts/build_gene_panel.py`` regenerates it and says how genes are chosen). A user panel
(``--gene-panel``) is a TSV with columns ``gene, chrom, start, end`` (1-based, inclusive) that replaces
it. The packaged GWAS-supported AD gene list (``ad_gwas_genes.tsv``) is the reference set of the
enrichment test; ``known_snp_positions.tsv`` lets :func:`check_genome_build` catch a genotype file in the
other build.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from rgenima_app.bids.tsv import read_tsv
from rgenima_app.errors import MissingInputError, ProcessingError
from rgenima_app.genetics.readers import GenotypeReader, Region, normalize_chrom, normalize_chroms

GENOME_BUILDS = ("GRCh37", "GRCh38")
PANEL_COLUMNS = ["gene", "chrom", "start", "end"]


def _packaged(name: str, **kwargs) -> pd.DataFrame:
    with resources.files("rgenima_app.data").joinpath(name).open("r") as fh:
        return read_tsv(fh, comment="#", **kwargs)


def _check_build(build: str) -> None:
    if build not in GENOME_BUILDS:
        raise ValueError(f"unknown genome build {build!r}; choose one of {', '.join(GENOME_BUILDS)}")


def load_gene_panel(build: str = "GRCh37") -> pd.DataFrame:
    """The default panel as columns ``gene, chrom, start, end`` (1-based, inclusive) for ``build``."""
    _check_build(build)
    table = _packaged("gene_panel.tsv", dtype={f"chrom_{build}": str})
    return pd.DataFrame({
        "gene": table["gene"],
        "chrom": table[f"chrom_{build}"],
        "start": table[f"start_{build}"].astype(int),
        "end": table[f"end_{build}"].astype(int),
    })


def read_gene_panel(path: str | os.PathLike) -> pd.DataFrame:
    """A user-supplied panel TSV (``gene, chrom, start, end``; ``#`` comments allowed), validated."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"gene panel {path} not found", hint="--gene-panel takes a TSV file")
    try:
        table = read_tsv(path, comment="#", dtype={"chrom": str})
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise MissingInputError(f"cannot read gene panel {path}: {exc}") from exc
    missing = [c for c in PANEL_COLUMNS if c not in table.columns]
    if missing:
        raise MissingInputError(f"gene panel {path} lacks column(s) {', '.join(missing)}",
                                hint="the header must name gene, chrom, start, end (tab-separated)")
    table = table[PANEL_COLUMNS].copy()
    try:
        table["start"] = table["start"].astype(int)
        table["end"] = table["end"].astype(int)
    except (ValueError, TypeError) as exc:
        raise MissingInputError(f"gene panel {path}: start/end must be integers", hint="check the rows") from exc
    bad = table[(table["end"] < table["start"]) | (table["start"] < 1)]
    if len(bad):
        raise MissingInputError(f"gene panel {path}: invalid interval for gene {bad['gene'].iloc[0]}",
                                hint="start must be >= 1 and <= end (1-based, inclusive)")
    dups = table["gene"][table["gene"].duplicated()]
    if len(dups):
        raise MissingInputError(f"gene panel {path}: gene {dups.iloc[0]} is listed twice")
    if table.empty:
        raise MissingInputError(f"gene panel {path} lists no genes")
    table["chrom"] = normalize_chroms(table["chrom"])
    return table.reset_index(drop=True)


def gene_panel(path: str | os.PathLike | None = None, build: str = "GRCh37") -> pd.DataFrame:
    """The panel in force: the user's (``--gene-panel``) when given, else the packaged one for ``build``."""
    return read_gene_panel(path) if path is not None else load_gene_panel(build)


def panel_regions(panel: pd.DataFrame, window: int = 0) -> list[Region]:
    """Genomic regions to read: each gene widened by ``window`` bp on both sides."""
    return [Region(normalize_chrom(r.chrom), max(1, int(r.start) - window), int(r.end) + window)
            for r in panel.itertuples(index=False)]


def assign_genes(variants: pd.DataFrame, panel: pd.DataFrame, window: int = 0) -> pd.Series:
    """The gene of each variant (``None`` when outside every gene +- ``window`` bp).

    A variant within several genes goes to the one whose interval it is nearest to (inside counts as 0),
    ties going to the gene listed first: each SNP belongs to exactly one gene block.
    """
    chrom = variants["chrom"].astype(str).map(normalize_chrom).to_numpy()
    pos = variants["pos"].to_numpy(dtype=np.int64)
    best_gene = np.full(len(variants), None, dtype=object)
    best_dist = np.full(len(variants), np.inf)
    for gene in panel.itertuples(index=False):
        on = chrom == normalize_chrom(gene.chrom)
        dist = np.maximum(np.maximum(gene.start - pos, pos - gene.end), 0).astype(float)
        better = on & (dist <= window) & (dist < best_dist)
        best_gene[better] = gene.gene
        best_dist[better] = dist[better]
    return pd.Series(best_gene, index=variants.index, name="gene")


def load_gwas_genes(min_assoc: int = 1, include_loci: bool = True) -> pd.DataFrame:
    """GWAS-supported AD genes: ``gene, gwas_catalog_n_assoc, gwas_catalog_min_p, lead_variant,
    schwartzentruber2021_locus``. Keeps genes with at least ``min_assoc`` GWAS Catalog associations at
    p <= 5e-8 and, when ``include_loci``, the genes of the Schwartzentruber et al. 2021 loci."""
    table = _packaged("ad_gwas_genes.tsv")
    keep = table["gwas_catalog_n_assoc"] >= min_assoc
    if include_loci:
        keep |= table["schwartzentruber2021_locus"].astype(bool)
    return table[keep].reset_index(drop=True)


def load_known_positions() -> pd.DataFrame:
    """rsIDs with their GRCh37 and GRCh38 positions (``rsid, chrom, pos_GRCh37, pos_GRCh38, source``)."""
    return _packaged("known_snp_positions.tsv", dtype={"chrom": str})


def detect_genome_build(variants: pd.DataFrame) -> dict[str, int]:
    """How many variants sit at the known GRCh37 / GRCh38 position of their rsID."""
    known = load_known_positions().set_index("rsid")
    hits = variants[variants["snp"].isin(known.index)]
    ref = known.loc[hits["snp"]]
    same_chrom = hits["chrom"].astype(str).map(normalize_chrom).to_numpy() == ref["chrom"].to_numpy()
    pos = hits["pos"].to_numpy()
    return {b: int((same_chrom & (pos == ref[f"pos_{b}"].to_numpy())).sum()) for b in GENOME_BUILDS}


def check_file_build(reader: GenotypeReader, build: str) -> dict[str, int]:
    """:func:`check_genome_build` on a genotype file, reading only the known SNPs' positions in both builds."""
    known = load_known_positions()
    regions = [Region(normalize_chrom(c), int(p), int(p)) for b in GENOME_BUILDS
               for c, p in zip(known["chrom"], known[f"pos_{b}"])]
    return check_genome_build(reader.read(regions).variants, build, reader.path)


def check_genome_build(variants: pd.DataFrame, build: str, source: str | os.PathLike) -> dict[str, int]:
    """Raise :class:`ProcessingError` when the known SNPs of ``variants`` sit at the other build's positions."""
    _check_build(build)
    votes = detect_genome_build(variants)
    other = next(b for b in GENOME_BUILDS if b != build)
    if votes[other] > votes[build]:
        raise ProcessingError(
            f"genotype file {source} looks like {other}, not {build}: {votes[other]} known SNP(s) sit at their "
            f"{other} position and {votes[build]} at their {build} position",
            hint=f"pass --genome-build {other}, or lift the file over to {build}")
    return votes
