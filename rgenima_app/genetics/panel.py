"""The gene panel: genes and their coordinates in GRCh37 or GRCh38.

The default panel is packaged as ``rgenima_app/data/gene_panel.tsv`` (``scripts/build_gene_panel.py``
regenerates it from public AD gene tables).
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

GENOME_BUILDS = ("GRCh37", "GRCh38")


def load_gene_panel(build: str = "GRCh37") -> pd.DataFrame:
    """The default panel as columns ``gene, chrom, start, end`` (1-based, inclusive) for ``build``."""
    if build not in GENOME_BUILDS:
        raise ValueError(f"unknown genome build {build!r}; choose one of {', '.join(GENOME_BUILDS)}")
    with resources.files("rgenima_app.data").joinpath("gene_panel.tsv").open("r") as fh:
        table = pd.read_csv(fh, sep="\t", comment="#", dtype={f"chrom_{build}": str})
    return pd.DataFrame({
        "gene": table["gene"],
        "chrom": table[f"chrom_{build}"],
        "start": table[f"start_{build}"].astype(int),
        "end": table[f"end_{build}"].astype(int),
    })
