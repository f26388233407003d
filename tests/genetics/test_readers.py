"""Genotype readers: round trips, region streaming, PLINK vs VCF dosages, bad inputs."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from rgenima_app.errors import MissingInputError
from rgenima_app.genetics.readers import (PlinkReader, Region, VcfReader, decode_packed, dosage_counts,
                                          open_genotypes, packed_counts)
from rgenima_app.genetics.writers import write_plink, write_vcf

from .conftest import run_plink, synthetic_genotypes


def test_plink_round_trip_and_counts(tmp_path):
    variants, dosage, samples = synthetic_genotypes(n_samples=61, n_variants=37)
    write_plink(tmp_path / "c", variants, dosage, samples)
    reader = open_genotypes(tmp_path / "c.bed")
    assert isinstance(reader, PlinkReader) and reader.samples == samples
    chunks = list(reader.iter_chunks(chunk_size=10))
    assert [len(c.variants) for c in chunks] == [10, 10, 10, 7]
    assert np.array_equal(np.concatenate([c.dosage for c in chunks]), dosage)
    counts = np.concatenate([c for _, c in reader.iter_counts(chunk_size=8)])
    assert np.array_equal(counts, dosage_counts(dosage))
    mask = np.arange(61) % 3 == 0
    masked = np.concatenate([c for _, c in reader.iter_counts(sample_mask=mask)])
    assert np.array_equal(masked, dosage_counts(dosage[:, mask]))
    # the prefix works as well as a member name
    assert open_genotypes(tmp_path / "c").read().dosage.shape == dosage.shape


def test_lookup_decoding_matches_bit_arithmetic():
    rng = np.random.default_rng(3)
    packed = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    codes = (packed[:, :, None] >> (2 * np.arange(4))) & 3
    expected = np.array([2, -1, 1, 0])[codes].reshape(5, -1)[:, :26]
    assert np.array_equal(decode_packed(packed, 26), expected)
    assert np.array_equal(packed_counts(packed, 26)[:, :3].sum(1) + packed_counts(packed, 26)[:, 3], [26] * 5)


def test_region_reads_only_the_region(tmp_path):
    variants, dosage, samples = synthetic_genotypes(n_variants=40)
    write_plink(tmp_path / "c", variants, dosage, samples)
    reader = PlinkReader(tmp_path / "c")
    got = reader.read([Region("19", 45_003_000, 45_005_000), Region("20", 45_000_000, 45_001_000)])
    assert got.variants["snp"].tolist() == ["rs1003", "rs1004", "rs1005", "rs1020", "rs1021"]
    rows = variants.index[variants["snp"].isin(got.variants["snp"])]
    assert np.array_equal(got.dosage, dosage[rows])
    assert reader.read([Region("7", 1, 10**9)]).dosage.shape == (0, len(samples))


@pytest.mark.parametrize("indexed", [False, True])
def test_vcf_round_trip(tmp_path, indexed):
    variants, dosage, samples = synthetic_genotypes(n_samples=20, n_variants=12)
    path = write_vcf(tmp_path / "c.vcf", variants, dosage, samples)
    if indexed:
        if shutil.which("bcftools") is None:
            pytest.skip("bcftools not installed: cannot make an indexed VCF")
        subprocess.run(["bcftools", "view", "-Oz", "-o", str(tmp_path / "c.vcf.gz"), str(path)], check=True)
        subprocess.run(["bcftools", "index", str(tmp_path / "c.vcf.gz")], check=True)
        path = tmp_path / "c.vcf.gz"
        assert VcfReader(path)._indexed
    reader = open_genotypes(path)
    assert isinstance(reader, VcfReader) and reader.samples == samples
    whole = reader.read()
    assert np.array_equal(whole.dosage, dosage)
    assert whole.variants[["snp", "a1", "a2"]].equals(variants[["snp", "a1", "a2"]])
    part = reader.read([Region("20", 45_000_000, 45_002_000)])
    assert part.variants["snp"].tolist() == ["rs1006", "rs1007", "rs1008"]


def test_vcf_multiallelic_skipped_and_reported(chr19_vcf):
    reader = VcfReader(chr19_vcf)
    chunk = reader.read()
    skipped = reader.skipped
    assert len(chunk.variants) + len(skipped) == 1120
    assert set(skipped["reason"]) == {"multiallelic"} and len(skipped) == 22
    # records without an ID get chrom:pos:ref:alt names, so IDs stay unique
    assert chunk.variants["snp"].is_unique
    assert chunk.dosage.min() >= 0 and chunk.dosage.max() <= 2


def test_plink_and_vcf_dosages_agree_on_converted_set(plink, eur, tmp_path):
    """The real EUR set exported to VCF by PLINK reads back with the same dosages (A1 = ALT)."""
    run_plink(plink, "--bfile", str(eur), "--chr", "19", "--from-bp", "45000000", "--to-bp", "46000000",
              "--make-bed", "--out", str(tmp_path / "sub"))
    run_plink(plink, "--bfile", str(tmp_path / "sub"), "--recode", "vcf-iid", "bgz", "--out", str(tmp_path / "sub"))
    bed = PlinkReader(tmp_path / "sub").read()
    vcf = open_genotypes(tmp_path / "sub.vcf.gz").read()
    assert len(bed.variants) > 100
    assert vcf.variants["snp"].tolist() == bed.variants["snp"].tolist()
    # PLINK writes A1 as ALT unless told otherwise: align the counted allele before comparing
    flip = (vcf.variants["a1"] != bed.variants["a1"]).to_numpy()
    assert np.array_equal(vcf.variants["a1"].where(~flip, vcf.variants["a2"]), bed.variants["a1"])
    aligned = np.where(flip[:, None], 2 - vcf.dosage, vcf.dosage)
    assert np.array_equal(aligned, bed.dosage)


def test_vcf_to_plink_dosages_agree(plink, chr20_vcf, tmp_path):
    run_plink(plink, "--vcf", str(chr20_vcf), "--chr", "20", "--from-bp", "1000000", "--to-bp", "1200000",
              "--keep-allele-order", "--make-bed", "--out", str(tmp_path / "c20"))
    bed = PlinkReader(tmp_path / "c20").read()
    vcf = VcfReader(chr20_vcf).read([Region("20", 1_000_000, 1_200_000)])
    key = ["chrom", "pos", "a1", "a2"]
    merged = vcf.variants.reset_index().merge(bed.variants.reset_index(), on=key, suffixes=("_v", "_b"))
    assert len(merged) == len(bed.variants) > 500
    assert np.array_equal(vcf.dosage[merged["index_v"]], bed.dosage[merged["index_b"]])


# ------------------------------------------------------------------------------------------ bad inputs
def test_truncated_bed_names_the_file(tmp_path):
    variants, dosage, samples = synthetic_genotypes()
    bed = write_plink(tmp_path / "c", variants, dosage, samples)
    data = bed.read_bytes()
    bed.write_bytes(data[:-7])
    with pytest.raises(MissingInputError, match="c.bed is truncated"):
        PlinkReader(bed)


def test_bim_fam_counts_disagree_with_bed(tmp_path):
    variants, dosage, samples = synthetic_genotypes()
    write_plink(tmp_path / "c", variants, dosage, samples)
    fam = tmp_path / "c.fam"
    fam.write_text("".join(fam.read_text().splitlines(keepends=True)[:-5]))
    with pytest.raises(MissingInputError, match=r"c.bed is longer than expected.*c.fam 55 samples"):
        PlinkReader(tmp_path / "c")
    write_plink(tmp_path / "d", variants, dosage, samples)
    bim = tmp_path / "d.bim"
    bim.write_text(bim.read_text() + "20\trs_extra\t0\t46000000\tA\tG\n")
    with pytest.raises(MissingInputError, match=r"d.bed is truncated.*d.bim lists 41 variants"):
        PlinkReader(tmp_path / "d.bed")


@pytest.mark.parametrize("change", [-1, -2, -3])
def test_fam_a_few_lines_short_is_refused_naming_bed_and_fam(tmp_path, change):
    """60 samples -> 57..59 in the .fam: same bytes per variant, so only the padding bits tell (issue 21)."""
    variants, dosage, samples = synthetic_genotypes(n_samples=60)
    dosage[:, 56:] = 1  # the dropped samples are heterozygous: their bit pairs are never 00 (padding)
    write_plink(tmp_path / "c", variants, dosage, samples)
    fam = tmp_path / "c.fam"
    fam.write_text("".join(fam.read_text().splitlines(keepends=True)[:change]))
    with pytest.raises(MissingInputError, match=r"c\.bed does not belong to .*c\.fam.*padding bits") as caught:
        PlinkReader(tmp_path / "c")
    assert "each other's genotypes" in str(caught.value)


def test_fam_a_line_long_is_refused(tmp_path):
    """57 samples, a .fam of 58: the last one would read the padding (hom A1 everywhere) (issue 21)."""
    variants, dosage, samples = synthetic_genotypes(n_samples=57, n_variants=80)
    write_plink(tmp_path / "c", variants, dosage, samples)
    fam = tmp_path / "c.fam"
    fam.write_text(fam.read_text() + "extra extra 0 0 0 -9\n")
    with pytest.raises(MissingInputError, match=r"c\.bed does not belong to .*c\.fam: the last sample of the "
                                                r"\.fam \(extra\) is homozygous for A1 at all 80 variants"):
        PlinkReader(tmp_path / "c")
    write_plink(tmp_path / "d", variants[:40], dosage[:40], samples)  # too few variants to tell: read
    (tmp_path / "d.fam").write_text((tmp_path / "d.fam").read_text() + "extra extra 0 0 0 -9\n")
    assert PlinkReader(tmp_path / "d").samples[-1] == "extra"


def test_padding_is_checked_on_every_row_read(tmp_path):
    """Rows beyond the check at opening are checked as they are read."""
    variants, dosage, samples = synthetic_genotypes(n_samples=59)
    write_plink(tmp_path / "c", variants, dosage, samples)
    reader = PlinkReader(tmp_path / "c")
    bed = tmp_path / "c.bed"
    raw = bytearray(bed.read_bytes())
    raw[3 + 30 * reader.bytes_per_variant + reader.bytes_per_variant - 1] |= 0xC0  # row 30's padding
    bed.write_bytes(bytes(raw))
    with pytest.raises(MissingInputError, match="padding bits set in the row of rs1030"):
        list(reader.iter_chunks(chunk_size=8))


@pytest.mark.parametrize("suffix", [".vcf", ".vcf.gz"])
def test_vcf_sample_lines_that_disagree_with_the_header_are_refused(tmp_path, suffix, monkeypatch):
    """A header one sample short (htslib would drop the extra calls silently) is refused at opening; a line
    one column short fails in htslib and is reported naming the file and where (issue 21)."""
    import gzip

    variants, dosage, samples = synthetic_genotypes(n_samples=5, n_variants=6)
    opener = gzip.open if suffix.endswith(".gz") else open
    path = write_vcf(tmp_path / f"a{suffix}", variants, dosage, samples)
    with opener(path, "rt") as fh:
        lines = fh.read().splitlines(keepends=True)
    header = next(i for i, line in enumerate(lines) if line.startswith("#CHROM"))
    short_header = lines[header].replace(f"\t{samples[2]}", "")
    with opener(path, "wt") as fh:
        fh.writelines([*lines[:header], short_header, *lines[header + 1:]])
    with pytest.raises(MissingInputError, match=r"a\.vcf.*data line 1\) has 5 sample column\(s\), but the header "
                                                r"names 4 samples"):
        VcfReader(path)
    short_line = lines[header + 3].rsplit("\t", 1)[0] + "\n"
    with opener(path, "wt") as fh:
        fh.writelines([*lines[:header + 3], short_line, *lines[header + 4:]])
    with pytest.raises(MissingInputError, match=r"a\.vcf.*data line 3\) has 4 sample column"):
        VcfReader(path)
    # beyond the lines counted at opening, htslib's failure names the file and where it happened
    monkeypatch.setattr(VcfReader, "_check_sample_columns", lambda self: None)
    with pytest.raises(MissingInputError, match=r"a\.vcf(\.gz)?: a line after the record at 19:45001000 cannot be read"):
        VcfReader(path).read()


def test_missing_member_and_bad_magic(tmp_path):
    variants, dosage, samples = synthetic_genotypes()
    write_plink(tmp_path / "c", variants, dosage, samples)
    (tmp_path / "c.fam").unlink()
    with pytest.raises(MissingInputError, match="c.fam is missing"):
        open_genotypes(tmp_path / "c.bed")
    write_plink(tmp_path / "d", variants, dosage, samples)
    (tmp_path / "d.bed").write_bytes(b"\x00\x00\x00" + (tmp_path / "d.bed").read_bytes()[3:])
    with pytest.raises(MissingInputError, match="d.bed is not a PLINK 1 binary"):
        PlinkReader(tmp_path / "d")


def test_vcf_without_gt(tmp_path):
    variants, dosage, samples = synthetic_genotypes(n_variants=4)
    path = write_vcf(tmp_path / "ds.vcf.gz", variants, dosage, samples, with_gt=False)
    with pytest.raises(MissingInputError, match="ds.vcf.gz has no GT"):
        VcfReader(path)


def test_unknown_genotype_input(tmp_path):
    with pytest.raises(MissingInputError, match="nothing.txt"):
        open_genotypes(tmp_path / "nothing.txt")
