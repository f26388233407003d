"""Regenerate rgenima's packaged genetics tables from public AD gene facts.

Outputs (in ``rgenima_app/data/``):

- ``gene_panel.tsv``: the default AD candidate-gene panel (about 105 genes, the paper's size), with
  GRCh37 and GRCh38 coordinates (1-based, inclusive) and the reasons each gene is in it;
- ``ad_gwas_genes.tsv``: GWAS-supported AD genes (GWAS Catalog genes reported at p <= 5e-8, and the
  genes of the Schwartzentruber et al. 2021 loci), the reference list of the enrichment test;
- ``known_snp_positions.tsv``: rsIDs with their positions in both builds, to detect a genotype file
  whose genome build differs from ``--genome-build``.

Panel selection, in order: the well-known AD genes; the genes of the 37 Schwartzentruber 2021 loci;
GWAS Catalog genes with at least two genome-wide significant associations; then protein-coding GWAS
Catalog genes with one association, by increasing p-value, one gene per lead variant (so that one
association does not bring in a whole cluster), until the panel has 105 genes. Coordinates come from
Ensembl (GRCh37/GRCh38); where a gene is missing there under its current symbol (e.g. NECTIN2, formerly
PVRL2), from PLINK's glist-hg19 and org.Hs.eg.db (GRCh38).

    python scripts/build_gene_panel.py ../shared/data
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[1] / "rgenima_app" / "data"
PANEL_SIZE = 105
SOURCES = ("GWAS Catalog AD pull 2022-08-16 (via marcoralab/adsp_gvc_paper d6f4ced); Schwartzentruber et al. 2021 "
           "Nat Genet 53:392 loci (Jeremy37/AD_finemap a15ca4e); Ensembl gene coordinates (genostats/Ravages 9e7919e); "
           "PLINK glist-hg19 (gusevlab/fusion_twas 9346c12); org.Hs.eg.db 3.16")


def _coords(genes: pd.DataFrame) -> pd.DataFrame:
    """GRCh37/38 coordinates, Ensembl first, falling back to glist-hg19 / org.Hs.eg.db."""
    out = pd.DataFrame({"gene": genes["gene"]})
    for build, fallback in (("GRCh37", ("chr_hg19_glist", "start_hg19_glist", "end_hg19_glist")),
                            ("GRCh38", ("chr_hg38_orgHs", "start_hg38_orgHs", "end_hg38_orgHs"))):
        ens = genes[[f"chr_{build}", f"start1_{build}", f"end_{build}"]].to_numpy()
        alt = genes[list(fallback)].to_numpy()
        use_alt = pd.isna(ens[:, 0])
        out[f"chrom_{build}"] = [a[0] if f else e[0] for e, a, f in zip(ens, alt, use_alt)]
        out[f"start_{build}"] = [a[1] if f else e[1] for e, a, f in zip(ens, alt, use_alt)]
        out[f"end_{build}"] = [a[2] if f else e[2] for e, a, f in zip(ens, alt, use_alt)]
        out[f"coord_source_{build}"] = ["glist-hg19" if build == "GRCh37" else "org.Hs.eg.db"
                                        if f else "Ensembl" for f in use_alt]
    return out


def build_panel(genes: pd.DataFrame) -> pd.DataFrame:
    n_assoc = pd.to_numeric(genes["gwascat_n_assoc_p5e8"], errors="coerce").fillna(0).astype(int)
    min_p = pd.to_numeric(genes["gwascat_min_p"], errors="coerce")
    well_known = genes["in_brief_list"] == "True"
    locus = genes["in_Schwartzentruber2021_loci"] == "True"
    coords = _coords(genes)
    has_coords = coords[["chrom_GRCh37", "start_GRCh37", "chrom_GRCh38", "start_GRCh38"]].notna().all(axis=1)
    reason = pd.Series("", index=genes.index)
    reason[n_assoc >= 2] = "gwas_catalog_2plus"
    reason[locus] = "schwartzentruber2021_locus"
    reason[well_known] = "well_known"
    chosen = (reason != "") & has_coords
    extra = genes[~chosen & has_coords & (n_assoc == 1) & (genes["gene_type"] == "protein-coding")]
    extra = extra.assign(min_p=min_p[extra.index]).sort_values(["min_p", "gene"])
    extra = extra.drop_duplicates("gwascat_lead_variant")
    for idx in extra.index[: max(0, PANEL_SIZE - int(chosen.sum()))]:
        chosen[idx] = True
        reason[idx] = "gwas_catalog_1_top"
    panel = coords[chosen].copy()
    panel["inclusion"] = reason[chosen]
    panel["well_known"] = well_known[chosen]
    panel["schwartzentruber2021_locus"] = locus[chosen]
    panel["gwas_catalog_n_assoc"] = n_assoc[chosen]
    panel["gwas_catalog_min_p"] = genes.loc[chosen, "gwascat_min_p"]
    panel = panel.astype({c: int for c in panel.columns if c.startswith(("start_", "end_"))})
    panel["chrom_GRCh37"] = panel["chrom_GRCh37"].astype(str)
    panel["chrom_GRCh38"] = panel["chrom_GRCh38"].astype(str)
    key = panel["chrom_GRCh37"].map(lambda c: int(c) if c.isdigit() else 100)
    return panel.assign(_k=key).sort_values(["_k", "start_GRCh37"]).drop(columns="_k").reset_index(drop=True)


def build_gwas_genes(shared: Path, genes: pd.DataFrame) -> pd.DataFrame:
    catalog = pd.read_csv(shared / "genes" / "gwas_catalog_AD_reported_genes_p5e-8_summary.tsv", sep="\t", dtype=str)
    loci = set(genes.loc[genes["in_Schwartzentruber2021_loci"] == "True", "gene"])
    table = pd.DataFrame({"gene": catalog["gene"], "gwas_catalog_n_assoc": catalog["n_assoc_p5e8"].astype(int),
                          "gwas_catalog_min_p": catalog["min_p"], "lead_variant": catalog["variant_id"]})
    extra = sorted(loci - set(table["gene"]))
    table = pd.concat([table, pd.DataFrame({"gene": extra, "gwas_catalog_n_assoc": 0})], ignore_index=True)
    table["schwartzentruber2021_locus"] = table["gene"].isin(loci)
    return table.sort_values(["gwas_catalog_n_assoc", "gene"], ascending=[False, True]).reset_index(drop=True)


def build_known_positions(shared: Path) -> pd.DataFrame:
    """rsIDs with positions in both builds: GRCh37 from Schwartzentruber loci and 1000 Genomes, GRCh38
    from the GWAS Catalog."""
    catalog = pd.read_csv(shared / "genes" / "gwas_catalog_AD_reported_genes_p5e-8_summary.tsv", sep="\t", dtype=str)
    grch38 = catalog.dropna(subset=["pos_GRCh38"]).drop_duplicates("variant_id").set_index("variant_id")
    rows = []
    loci = pd.read_csv(shared / "genes" / "ad_loci" / "Schwartzentruber2021_AD.loci.GRCh37.tsv", sep="\t", dtype=str)
    for _, row in loci.iterrows():
        rsid = row["lead_SNP"].split("_")[0]
        if rsid in grch38.index:
            rows.append((rsid, row["Chr"], int(row["lead_pos"]), int(grch38.loc[rsid, "pos_GRCh38"]),
                         "Schwartzentruber2021 GRCh37 / GWAS Catalog GRCh38"))
    bim = shared / "genotypes" / "boltlmm_EUR_subset" / "EUR_subset.bim"
    if bim.is_file():
        table = pd.read_csv(bim, sep=r"\s+", header=None, dtype=str, names=["chrom", "snp", "cm", "pos", "a1", "a2"])
        table = table[table["snp"].isin(grch38.index)]
        for _, row in table.iterrows():
            rows.append((row["snp"], row["chrom"], int(row["pos"]), int(grch38.loc[row["snp"], "pos_GRCh38"]),
                         "1000 Genomes phase 1 GRCh37 / GWAS Catalog GRCh38"))
    known = pd.DataFrame(rows, columns=["rsid", "chrom", "pos_GRCh37", "pos_GRCh38", "source"])
    return known.drop_duplicates("rsid").sort_values(["chrom", "pos_GRCh37"]).reset_index(drop=True)


def _write(table: pd.DataFrame, name: str, header: str) -> None:
    with open(DATA / name, "w") as fh:
        for line in header.strip().splitlines():
            fh.write(f"# {line}\n")
        table.to_csv(fh, sep="\t", index=False)
    print(f"wrote {len(table)} rows to {DATA / name}")


def main(shared: Path) -> None:
    genes = pd.read_csv(shared / "genes" / "AD_candidate_genes_coords_DERIVED.tsv", sep="\t", dtype=str)
    panel = build_panel(genes)
    _write(panel, "gene_panel.tsv", f"""rgenima default AD candidate-gene panel ({len(panel)} genes); 1-based inclusive coordinates.
Built by scripts/build_gene_panel.py. Selection: well-known AD genes, Schwartzentruber 2021 locus genes,
GWAS Catalog genes with >= 2 associations at p <= 5e-8, then top single-association genes (one per lead variant).
Sources: {SOURCES}""")
    _write(build_gwas_genes(shared, genes), "ad_gwas_genes.tsv", f"""GWAS-supported AD genes: reported at p <= 5e-8 in the GWAS Catalog AD pull of 2022-08-16, plus the
genes of the Schwartzentruber et al. 2021 loci. Built by scripts/build_gene_panel.py. Sources: {SOURCES}""")
    _write(build_known_positions(shared), "known_snp_positions.tsv", """rsIDs with GRCh37 and GRCh38 positions, used to detect a genome-build mismatch of a genotype file.
Built by scripts/build_gene_panel.py from the Schwartzentruber 2021 loci, 1000 Genomes phase 1 and the GWAS Catalog.""")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"))
