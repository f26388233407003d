"""Gene panel, GWAS gene list, SNP -> gene assignment, build check, sample matching, panel extraction."""
from __future__ import annotations

import pandas as pd
import pytest

from rgenima_app.errors import MissingInputError, ProcessingError
from rgenima_app.genetics.extract import PARTICIPANT_COLUMNS, SNP_PANEL_COLUMNS, panel_genotypes, select_panel_snps
from rgenima_app.genetics.panel import (assign_genes, check_genome_build, load_gene_panel, load_gwas_genes,
                                        read_gene_panel)
from rgenima_app.genetics.samples import match_samples
from rgenima_app.genetics.writers import write_plink

from .conftest import synthetic_genotypes


def test_packaged_panel_both_builds():
    p37, p38 = load_gene_panel("GRCh37"), load_gene_panel("GRCh38")
    assert list(p37.columns) == ["gene", "chrom", "start", "end"]
    assert len(p37) == len(p38) == 105 and p37["gene"].is_unique
    assert {"APOE", "TOMM40", "NECTIN2", "BIN1", "CLU", "TREM2", "SORL1"} <= set(p37["gene"])
    apoe37 = p37.set_index("gene").loc["APOE"]
    apoe38 = p38.set_index("gene").loc["APOE"]
    assert apoe37["chrom"] == "19" and apoe37["start"] <= 45411941 <= apoe37["end"]  # rs429358, GRCh37
    assert apoe38["start"] <= 44908684 <= apoe38["end"]                             # rs429358, GRCh38
    with pytest.raises(ValueError):
        load_gene_panel("hg17")


def test_gwas_gene_list():
    genes = load_gwas_genes()
    assert {"APOE", "BIN1", "CLU"} <= set(genes["gene"])
    strict = load_gwas_genes(min_assoc=2, include_loci=False)
    assert (strict["gwas_catalog_n_assoc"] >= 2).all() and len(strict) < len(genes)


def test_user_panel_and_errors(tmp_path):
    good = tmp_path / "panel.tsv"
    good.write_text("# my genes\ngene\tchrom\tstart\tend\nG1\tchr19\t100\t200\nG2\t19\t150\t400\n")
    panel = read_gene_panel(good)
    assert panel["chrom"].tolist() == ["19", "19"]
    variants = pd.DataFrame({"chrom": ["19"] * 5, "pos": [50, 120, 160, 390, 450]})
    assert assign_genes(variants, panel).fillna("-").tolist() == ["-", "G1", "G1", "G2", "-"]
    assert assign_genes(variants, panel, window=60).tolist() == ["G1", "G1", "G1", "G2", "G2"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene\tchrom\tbegin\tend\nG1\t1\t1\t2\n")
    with pytest.raises(MissingInputError, match="bad.tsv lacks column"):
        read_gene_panel(bad)
    with pytest.raises(MissingInputError, match="absent.tsv"):
        read_gene_panel(tmp_path / "absent.tsv")


def test_build_mismatch_is_detected():
    variants = pd.DataFrame({"snp": ["rs429358", "rs6859", "rs1"], "chrom": ["19", "19", "1"],
                             "pos": [45411941, 45382034, 5]})
    assert check_genome_build(variants, "GRCh37", "x.bed") == {"GRCh37": 2, "GRCh38": 0}
    with pytest.raises(ProcessingError, match="x.bed looks like GRCh37, not GRCh38"):
        check_genome_build(variants, "GRCh38", "x.bed")


def test_build_mismatch_on_real_file(eur):
    with pytest.raises(ProcessingError, match="EUR_subset.bed looks like GRCh37"):
        select_panel_snps(eur, load_gene_panel("GRCh38"), build="GRCh38")


def test_empty_panel_overlap(chr20_vcf):
    with pytest.raises(ProcessingError, match="no variant of .*unphased.vcf.gz lies in the 105 genes"):
        select_panel_snps(chr20_vcf, load_gene_panel("GRCh37"))


def test_sample_matching():
    participants = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03", "sub-04"],
                                 "genetic_id": ["NA100", None, "n/a", "NA404"]})
    match = match_samples(participants, ["NA100", "sub-02", "03", "NA999"])
    assert match.matched == {"sub-01": "NA100", "sub-02": "sub-02", "sub-03": "03"}
    assert match.unmatched_participants == ["sub-04"]
    assert match.unmatched_samples == ["NA999"]
    assert match_samples(["01"], ["01"]).matched == {"sub-01": "01"}


def test_panel_selection_and_participant_tables_on_real_set(eur):
    snp_panel, report = select_panel_snps(eur, load_gene_panel("GRCh37"), samples=None)
    assert list(snp_panel.columns) == SNP_PANEL_COLUMNS
    assert {"TOMM40", "NECTIN2", "APOE"} & set(snp_panel["gene"])
    assert "rs157580" in set(snp_panel["snp"])  # TOMM40
    assert report["gene"].notna().any() and (report.loc[report["kept"], "maf"] >= 0.05).all()
    tables = panel_genotypes(eur, snp_panel, {"sub-01": "HG00096", "sub-02": "HG00097"})
    assert set(tables) == {"sub-01", "sub-02"}
    table = tables["sub-01"]
    assert list(table.columns) == PARTICIPANT_COLUMNS and len(table) == len(snp_panel)
    assert not table["imputed"].any() and set(table["dosage"].unique()) <= {0.0, 1.0, 2.0}


def test_participant_genotypes_flip_and_impute(tmp_path):
    variants, dosage, samples = synthetic_genotypes(n_samples=10, n_variants=6, missing=0.0)
    snp_panel = variants.assign(gene=["G1", "G1", "G2", "G2", "G3", "G3"], a1_freq=0.25)
    # the participant's file: A1/A2 swapped on variant 1, a missing call on variant 2, variant 3 absent
    file_variants = variants.copy()
    file_variants.loc[1, ["a1", "a2"]] = variants.loc[1, ["a2", "a1"]].to_numpy()
    file_dosage = dosage.copy()
    file_dosage[1] = 2 - dosage[1]
    file_dosage[2, 0] = -1
    keep = [0, 1, 2, 4, 5]
    write_plink(tmp_path / "p", file_variants.iloc[keep], file_dosage[keep], samples)
    table = panel_genotypes(tmp_path / "p", snp_panel, [samples[0]])[samples[0]]
    assert table["dosage"].iloc[0] == dosage[0, 0]
    assert table["dosage"].iloc[1] == dosage[1, 0]  # flipped back to the panel's A1
    assert table["imputed"].tolist() == [False, False, True, True, False, False]
    assert table["dosage"].iloc[2] == pytest.approx(0.5) and table["dosage"].iloc[3] == pytest.approx(0.5)
    with pytest.raises(ProcessingError, match="not in"):
        panel_genotypes(tmp_path / "p", snp_panel, ["nobody"])
