"""A model's SNP panel matched to a user's genotype file (genetics/match.py): by position and by rsID, with
allele swaps, strand flips, palindromic SNPs and PLINK-/VCF-style IDs, on a tiny VCF written here and the
PLINK .bed plink1.9 makes of it (which reorders alleles: A1 = minor), with dosages known by construction;
and rsID matching on the real 1000 Genomes genotypes beside the project."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from rgenima_app.genetics.extract import matched_panel_genotypes
from rgenima_app.genetics.match import id_position, match_panel, orientation, rsids
from rgenima_app.genetics.readers import PlinkReader

SAMPLES = ["S1", "S2", "S3", "S4", "S5"]
COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}
# the file: chrom, pos, ID, REF, ALT, genotypes (allele indices; None = missing call)
FILE = [
    ("1", 1000, "rs1", "A", "G", [(0, 0), (0, 1), (1, 1), None, (0, 1)]),
    ("1", 2000, "1:2000", "A", "C", [(0, 1), (1, 1), (1, 1), (0, 0), (1, 1)]),
    ("1", 3000, "rs3", "G", "T", [(1, 1), (0, 1), (0, 0), (0, 1), (0, 0)]),
    ("1", 4000, "rs4", "C", "T", [(0, 0), (0, 1), (1, 1), (0, 1), (0, 0)]),
    ("1", 5000, "rs5", "A", "T", [(0, 1), (0, 0), (1, 1), (0, 1), (0, 0)]),
    ("2", 6000, "chr2:6000:G:A", "G", "A", [(0, 1), (1, 1), (0, 0), (0, 0), (0, 1)]),
    ("3", 7000, "rs7", "C", "A", [(1, 1), (0, 0), (0, 1), (1, 1), (1, 1)]),
    ("5", 9000, "rs9", "A", "G", [(0, 1), (0, 1), (0, 1), (0, 1), (0, 0)]),
]
# the model's panel: snp, chrom, pos, a1, a2, the file row it should match, the letter of the file's
# strand that the panel's A1 is, and how it matches (via, orientation) or why not
PANEL = [
    ("rs1", "1", 1000, "G", "A", 0, "G", "position", "same"),
    ("rs2", "1", 2000, "A", "C", 1, "A", "position", "swapped"),           # file ID is PLINK-style 1:2000
    ("rs3", "1", 3000, "A", "C", 2, "T", "position", "strand"),            # T/G on the other strand
    ("rs4", "1", 4000, "G", "A", 3, "C", "position", "strand_swapped"),
    ("2:6000:A:G", "2", 6500, "A", "G", 5, "A", "position", "same"),       # position from the ID (other build)
    ("rs7", "3", 7777, "A", "C", 6, "A", "rsid", "same"),                  # another build's position
    ("rs8", "4", 8000, "A", "G", None, None, "", "absent"),
    ("rs9", "5", 9000, "A", "C", None, None, "", "other_alleles"),
]
PALINDROMIC = ("rs5", "1", 5000, "T", "A", 4, "T", "position", "same")


def _vcf(path, rows=FILE):
    lines = ["##fileformat=VCFv4.2", '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             *[f"##contig=<ID={c}>" for c in ("1", "2", "3", "4", "5")],
             "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *SAMPLES])]
    for chrom, pos, vid, ref, alt, calls in rows:
        gts = ["./." if g is None else f"{g[0]}/{g[1]}" for g in calls]
        lines.append("\t".join([chrom, str(pos), vid, ref, alt, ".", "PASS", ".", "GT", *gts]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _panel(rows):
    return pd.DataFrame([r[:5] for r in rows], columns=["snp", "chrom", "pos", "a1", "a2"]).assign(
        gene="G", a1_freq=0.25)


def _expected(row):
    """Count of the panel's A1 (as the file's strand spells it) in each sample; NaN for a missing call."""
    _, _, _, _, _, file_row, letter, _, _ = row
    chrom, pos, vid, ref, alt, calls = FILE[file_row]
    alleles = (ref, alt)
    return [np.nan if g is None else sum(alleles[k] == letter for k in g) for g in calls]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("match")
    vcf = _vcf(root / "tiny.vcf")
    out = {"vcf": vcf}
    plink = shutil.which("plink1.9") or shutil.which("plink")
    if plink:
        subprocess.run([plink, "--vcf", str(vcf), "--make-bed", "--double-id", "--allow-no-sex",
                        "--out", str(root / "tiny")], check=True, capture_output=True)
        out["bed"] = root / "tiny.bed"
    return out


def test_ids_and_orientations():
    assert id_position("chr1:12345:A:G") == ("1", 12345) and id_position("1:12345") == ("1", 12345)
    assert id_position("1_12345_A_G") == ("1", 12345) and id_position("chrX:5:C:T") == ("X", 5)
    assert id_position("rs123") is None and id_position("AX-1234") is None
    assert rsids("rs1;RS22") == ["rs1", "rs22"] and rsids("1:2000") == []
    assert orientation("A", "G", "A", "G") == "same" and orientation("A", "G", "G", "A") == "swapped"
    assert orientation("A", "G", "T", "C") == "strand" and orientation("A", "G", "C", "T") == "strand_swapped"
    assert orientation("A", "T", "T", "A") == "swapped"        # palindromic: never a strand flip
    assert orientation("A", "G", "0", "G") == "same" and orientation("A", "G", "0", "A") == "swapped"  # A1 "0"
    assert orientation("A", "G", "A", "C") is None


@pytest.mark.parametrize("kind", ["vcf", "bed"])
def test_dosages_count_the_panel_a1(files, kind):
    if kind not in files:
        pytest.skip("plink1.9 is not installed")
    if kind == "bed":  # plink made A1 the minor allele: some of the file's alleles are in the other order
        bim = PlinkReader(files["bed"]).variants
        assert (bim["a1"].to_numpy() != np.array([r[4] for r in FILE])).any()
    tables, match = matched_panel_genotypes(files[kind], _panel(PANEL), SAMPLES)
    table = match.table
    for i, row in enumerate(PANEL):
        via, how = row[7], row[8]
        if row[5] is None:
            assert table.loc[i, "status"] == how and table.loc[i, "row"] == -1, row
            for sample in SAMPLES:
                assert tables[sample]["imputed"].iloc[i] and tables[sample]["dosage"].iloc[i] == 0.5
            continue
        assert table.loc[i, "status"] == "matched" and table.loc[i, "via"] == via, (row, table.loc[i].to_dict())
        if kind == "vcf":
            assert table.loc[i, "orientation"] == how, row
        got = [tables[s]["dosage"].iloc[i] if not tables[s]["imputed"].iloc[i] else np.nan for s in SAMPLES]
        np.testing.assert_array_equal(got, _expected(row), err_msg=str(row))
    summary = match.summary()
    assert summary["matched"] == 6 and summary["by_rsid"] == 1 and summary["absent"] == 1
    assert summary["strand_flipped"] == 2 and summary["other_alleles"] == 1


@pytest.mark.parametrize("kind", ["vcf", "bed"])
def test_palindromic_snps_only_without_strand_flips(files, kind):
    if kind not in files:
        pytest.skip("plink1.9 is not installed")
    forward = [r for r in PANEL if r[8] not in ("strand", "strand_swapped")] + [PALINDROMIC]
    tables, match = matched_panel_genotypes(files[kind], _panel(forward), SAMPLES)
    assert match.table["status"].iloc[-1] == "matched"
    got = [tables[s]["dosage"].iloc[-1] for s in SAMPLES]
    np.testing.assert_array_equal(got, _expected(PALINDROMIC))
    _, match = matched_panel_genotypes(files[kind], _panel(PANEL + [PALINDROMIC]), SAMPLES)
    assert match.table["status"].iloc[-1] == "ambiguous" and match.summary()["ambiguous_palindromic"] == 1


def test_position_match_is_preferred_to_rsid():
    variants = pd.DataFrame({"snp": ["rs1", "x"], "chrom": ["1", "1"], "pos": [50, 100], "a1": ["G", "G"],
                             "a2": ["A", "A"]})
    panel = pd.DataFrame({"snp": ["rs1"], "chrom": ["1"], "pos": [100], "a1": ["A"], "a2": ["G"]})
    table = match_panel(panel, variants).table
    assert table.loc[0, "row"] == 1 and table.loc[0, "via"] == "position" and table.loc[0, "orientation"] == "swapped"


def test_rsid_matching_on_real_1000_genomes(shared_data):
    """The model's panel named by rsIDs but placed at other positions (as a model trained in another build
    would be) is found by rsID in the real 1000 Genomes EUR PLINK set, with dosages equal to the file's."""
    reader = PlinkReader(shared_data / "genotypes" / "boltlmm_EUR_subset" / "EUR_subset.bed")
    snps = ["rs157580", "rs439401", "rs6859"]   # TOMM40, APOE region, NECTIN2 (the data's README)
    real = reader.variants.set_index("snp").loc[snps].reset_index()
    panel = real.assign(pos=real["pos"] + 1_000_000, gene="X", a1_freq=0.3)   # no position match possible
    panel.loc[0, ["a1", "a2"]] = panel.loc[0, ["a2", "a1"]].to_numpy()       # one with the alleles swapped
    samples = reader.samples[:40]
    tables, match = matched_panel_genotypes(reader, panel, samples)
    assert match.summary()["by_rsid"] == 3 and match.summary()["allele_swapped"] == 1
    truth = reader.read(snps=snps)
    order = [list(truth.variants["snp"]).index(s) for s in snps]
    for j, sample in enumerate(samples):
        column = truth.dosage[order, reader.samples.index(sample)].astype(float)
        expected = np.where(column < 0, np.nan, column)
        expected[0] = 2 - expected[0]
        got = np.where(tables[sample]["imputed"], np.nan, tables[sample]["dosage"])
        np.testing.assert_array_equal(got, expected)
    # placed at their real positions, the same SNPs match by position
    _, by_position = matched_panel_genotypes(reader, real.assign(gene="X", a1_freq=0.3), samples[:2])
    assert by_position.summary()["by_position"] == 3
