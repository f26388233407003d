"""Regenerate rgenima_app/data/gene_panel.tsv, the default AD candidate-gene panel.

Input: ``AD_candidate_genes_coords_DERIVED.tsv`` from the project's shared public data
(GWAS Catalog AD genes, Schwartzentruber et al. 2021 loci, well-known AD genes, with Ensembl GRCh37/38
coordinates). Selection: well-known AD genes, genes of the Schwartzentruber 2021 loci, and GWAS Catalog
genes with at least two genome-wide significant associations; genes need coordinates in both builds.

    python scripts/build_gene_panel.py ../shared/data/genes/AD_candidate_genes_coords_DERIVED.tsv
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "rgenima_app" / "data" / "gene_panel.tsv"


def build(source: Path) -> pd.DataFrame:
    genes = pd.read_csv(source, sep="\t", dtype=str)
    n_assoc = pd.to_numeric(genes["gwascat_n_assoc_p5e8"], errors="coerce").fillna(0)
    chosen = (genes["in_brief_list"] == "True") | (genes["in_Schwartzentruber2021_loci"] == "True") | (n_assoc >= 2)
    chosen &= genes["chr_GRCh37"].notna() & genes["chr_GRCh38"].notna()
    panel = pd.DataFrame({
        "gene": genes["gene"],
        "chrom_GRCh37": genes["chr_GRCh37"],
        "start_GRCh37": genes["start1_GRCh37"],
        "end_GRCh37": genes["end_GRCh37"],
        "chrom_GRCh38": genes["chr_GRCh38"],
        "start_GRCh38": genes["start1_GRCh38"],
        "end_GRCh38": genes["end_GRCh38"],
        "well_known": genes["in_brief_list"] == "True",
        "schwartzentruber2021_locus": genes["in_Schwartzentruber2021_loci"] == "True",
        "gwas_catalog_n_assoc": n_assoc.astype(int),
    })[chosen]
    panel = panel.astype({c: int for c in panel.columns if c.startswith(("start", "end"))})
    return panel.sort_values(["chrom_GRCh37", "start_GRCh37"], key=_chrom_key).reset_index(drop=True)


def _chrom_key(col: pd.Series) -> pd.Series:
    return col.map(lambda c: int(c) if str(c).isdigit() else 100) if col.name.startswith("chrom") else col


if __name__ == "__main__":
    panel = build(Path(sys.argv[1]))
    header = "# rgenima default AD gene panel; 1-based inclusive coordinates; built by scripts/build_gene_panel.py\n"
    with open(OUT, "w") as fh:
        fh.write(header)
        panel.to_csv(fh, sep="\t", index=False)
    print(f"wrote {len(panel)} genes to {OUT}")
