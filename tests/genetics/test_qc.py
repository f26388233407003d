"""QC: the Wigginton exact test against exact rational arithmetic, and PLINK 1.9 on real and edited sets."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from rgenima_app.genetics.qc import QC_COLUMNS, hwe_exact_p, impute_missing, run_qc
from rgenima_app.genetics.readers import PlinkReader
from rgenima_app.genetics.writers import write_plink

from .conftest import run_plink, synthetic_genotypes

PLINK_QC = ("--geno", "0.05", "--maf", "0.05", "--hwe", "1e-6", "include-nonctrl")


def exact_hwe(het: int, hom1: int, hom2: int, midp: bool = False) -> float:
    """Wigginton et al. (2005) by exact rational arithmetic: an oracle independent of the float code."""
    n, rare = het + hom1 + hom2, 2 * min(hom1, hom2) + het
    if n == 0 or rare == 0:
        return 0.5 if midp else 1.0
    # P(k) is proportional to the integer 2^k n! / (homr! homc! k!): compare and sum exact integers
    fact = [1]
    for i in range(1, n + 1):
        fact.append(fact[-1] * i)
    weights = {}
    for k in range(rare % 2, rare + 1, 2):
        homr = (rare - k) // 2
        weights[k] = (fact[n] // (fact[homr] * fact[n - k - homr] * fact[k])) << k
    observed = weights[het]
    tail = Fraction(sum(w for w in weights.values() if w <= observed))
    if midp:
        tail -= Fraction(sum(w for w in weights.values() if w == observed), 2)
    return float(tail / sum(weights.values()))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 120), st.integers(0, 120)), min_size=1, max_size=20),
       st.booleans())
def test_hwe_matches_exact_rational_arithmetic(triples, midp):
    got = hwe_exact_p(*np.array(triples).T, midp=midp)
    want = np.array([exact_hwe(*t, midp=midp) for t in triples])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_hwe_large_counts_and_extreme_tails():
    # large n exercises the windowed sums; strong excess of homozygotes gives tiny p-values
    triples = [(1000, 500, 500), (4, 998, 998), (800, 600, 600), (1, 1800, 199), (1800, 100, 100)]
    got = hwe_exact_p(*np.array(triples).T)
    want = np.array([exact_hwe(*t) for t in triples])
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert got[1] < 1e-100


def test_report_columns_reasons_and_imputation(tmp_path):
    variants, dosage, samples = synthetic_genotypes(n_samples=100, n_variants=30, missing=0.0)
    dosage[0, :10] = -1            # 10 % missing -> geno
    dosage[1, :] = 0
    dosage[1, :2] = 1               # MAF 0.01 -> maf
    dosage[2, :50], dosage[2, 50:] = 0, 2   # no heterozygotes -> hwe
    variants.loc[3, "chrom"] = "X"
    write_plink(tmp_path / "c", variants, dosage, samples)
    report = run_qc(tmp_path / "c")
    assert list(report.columns) == QC_COLUMNS
    assert report.loc[0, "reason"] == "geno" and report.loc[0, "missing_rate"] == pytest.approx(0.1)
    assert report.loc[1, "reason"] == "maf" and report.loc[1, "maf"] == pytest.approx(0.01)
    assert report.loc[2, "reason"] == "hwe" and report.loc[2, "hwe_p"] < 1e-20
    assert report.loc[3, "reason"] == "non_autosomal"
    assert (report["reason"].iloc[4:] == "").all() and report["kept"].iloc[4:].all()
    # sample subset: QC on the first half only
    half = run_qc(tmp_path / "c", samples=samples[:50])
    assert half.attrs["n_samples"] == 50 and half.loc[0, "n_missing"] == 10
    filled, imputed = impute_missing(dosage[:1], report["a1_freq"].to_numpy()[:1])
    assert imputed.sum() == 10
    np.testing.assert_allclose(filled[0, :10], 2 * report.loc[0, "a1_freq"], rtol=1e-6)
    assert np.array_equal(filled[0, 10:], dosage[0, 10:])


def _plink_kept(plink, tmp_path, bfile_args, *extra) -> set[str]:
    out = tmp_path / "kept"
    run_plink(plink, *bfile_args, *PLINK_QC, *extra, "--write-snplist", "--out", str(out))
    return set((out.with_suffix(".snplist")).read_text().split())


def test_kept_set_equals_plink_on_real_plink_set(plink, eur, tmp_path):
    report = run_qc(eur, geno=0.05, maf=0.05, hwe=1e-6)
    assert set(report.loc[report["kept"], "snp"]) == _plink_kept(plink, tmp_path, ["--bfile", str(eur)])
    assert (report["reason"] == "hwe").sum() > 50  # the set exercises every filter it can
    # MAF and HWE p against PLINK's reports
    run_plink(plink, "--bfile", str(eur), "--freq", "counts", "--hardy", "--out", str(tmp_path / "st"))
    freq = pd.read_csv(tmp_path / "st.frq.counts", sep=r"\s+")
    plink_maf = np.minimum(freq["C1"], freq["C2"]) / (freq["C1"] + freq["C2"])
    np.testing.assert_allclose(report["maf"].to_numpy(), plink_maf.to_numpy(), rtol=1e-12)
    hardy = pd.read_csv(tmp_path / "st.hwe", sep=r"\s+")
    hardy = hardy[hardy["TEST"] == "ALL"]
    # .hwe prints 4 significant digits: agreement to that precision on every variant ...
    np.testing.assert_allclose(report["hwe_p"].to_numpy(), hardy["P"].to_numpy(), rtol=5.001e-4)


def test_hwe_p_agrees_with_plink_to_1e6(plink, eur, tmp_path):
    """... and to 1e-6 relative on a spread of variants, by bracketing each p with PLINK's own --hwe filter."""
    report = run_qc(eur, geno=None, maf=None, hwe=None)
    ps = report.loc[report["hwe_p"].between(1e-30, 0.9)].sort_values("hwe_p")
    probe = ps.iloc[np.linspace(0, len(ps) - 1, 8).astype(int)]
    anchor = report.loc[report["hwe_p"] == 1.0, "snp"].iloc[0]  # always kept: PLINK never ends empty
    for row in probe.itertuples():
        (tmp_path / "one.txt").write_text(f"{row.snp}\n{anchor}\n")
        for factor, kept in ((1 + 1e-6, False), (1 - 1e-6, True)):
            out = tmp_path / "probe"
            run_plink(plink, "--bfile", str(eur), "--extract", str(tmp_path / "one.txt"), "--hwe",
                      repr(row.hwe_p * factor), "include-nonctrl", "--write-snplist", "--out", str(out))
            snps = set(out.with_suffix(".snplist").read_text().split()) if out.with_suffix(".snplist").exists() else set()
            out.with_suffix(".snplist").unlink(missing_ok=True)
            assert (row.snp in snps) is kept, (row.snp, row.hwe_p, factor)


def test_kept_set_equals_plink_with_missing_calls_and_mind(plink, eur, tmp_path):
    """Real genotypes with injected missing calls (including exact 5 % boundaries) and --mind."""
    reader = PlinkReader(eur)
    chunk = reader.read()
    rng = np.random.default_rng(7)
    rows = rng.choice(len(chunk.variants), 3000, replace=False)
    rows.sort()
    variants, dosage = chunk.variants.iloc[rows].reset_index(drop=True), chunk.dosage[rows].copy()
    samples = reader.samples[:200]
    dosage = dosage[:, :200]
    rates = rng.choice([0.0, 0.01, 0.03, 0.05, 0.055, 0.08], len(variants))
    dosage[rng.random(dosage.shape) < rates[:, None]] = -1
    dosage[0, :] = np.where(np.arange(200) < 10, -1, np.maximum(dosage[0], 0))  # exactly 5 % missing
    dosage[:, 5][rng.random(len(variants)) < 0.3] = -1  # one sample with 30 % missing
    write_plink(tmp_path / "m", variants, dosage, samples)
    report = run_qc(tmp_path / "m")
    assert report.loc[0, "missing_rate"] == 0.05 and "geno" not in report.loc[0, "reason"]
    assert set(report.loc[report["kept"], "snp"]) == _plink_kept(plink, tmp_path, ["--bfile", str(tmp_path / "m")])
    with_mind = run_qc(tmp_path / "m", mind=0.1)
    assert with_mind.attrs["removed_samples"] == [samples[5]]
    assert set(with_mind.loc[with_mind["kept"], "snp"]) == _plink_kept(
        plink, tmp_path, ["--bfile", str(tmp_path / "m")], "--mind", "0.1")


def test_maf_boundary_matches_plink(plink, tmp_path):
    """MAF exactly at the threshold is kept, as by PLINK."""
    variants, dosage, samples = synthetic_genotypes(n_samples=200, n_variants=4, missing=0.0)
    dosage[:] = 0
    dosage[0, :20] = 1  # 20 / 400 = 0.05 exactly
    dosage[1, :19] = 1  # 0.0475
    dosage[2, :21] = 1
    dosage[3, :100] = 1
    write_plink(tmp_path / "b", variants, dosage, samples)
    report = run_qc(tmp_path / "b")
    assert report["kept"].tolist() == [True, False, True, False]  # the last one fails HWE
    assert set(report.loc[report["kept"], "snp"]) == _plink_kept(plink, tmp_path, ["--bfile", str(tmp_path / "b")])


@pytest.mark.parametrize("vcf_name", ["chr19_vcf", "chr20_vcf"])
def test_kept_set_equals_plink_on_real_vcf(plink, request, tmp_path, vcf_name):
    vcf = request.getfixturevalue(vcf_name)
    report = run_qc(vcf, geno=0.05, maf=0.05, hwe=1e-6)
    out = tmp_path / "k"
    run_plink(plink, "--vcf", str(vcf), "--biallelic-only", "strict", "--keep-allele-order", *PLINK_QC,
              "--make-just-bim", "--out", str(out))
    bim = pd.read_csv(out.with_suffix(".bim"), sep="\t", header=None, dtype=str)
    plink_kept = set(zip(bim[0], bim[3].astype(int), bim[4], bim[5]))
    ours = report[report["kept"]]
    assert set(zip(ours["chrom"], ours["pos"], ours["a1"], ours["a2"])) == plink_kept
    assert len(plink_kept) > 100


def test_midp_matches_plink_hardy_midp(plink, eur, tmp_path):
    run_plink(plink, "--bfile", str(eur), "--chr", "22", "--hardy", "midp", "--out", str(tmp_path / "h"))
    hardy = pd.read_csv(tmp_path / "h.hwe", sep=r"\s+")
    hardy = hardy[hardy["TEST"] == "ALL"]
    report = run_qc(eur, hwe_midp=True)
    report = report[report["chrom"] == "22"]
    np.testing.assert_allclose(report["hwe_p"].to_numpy(), hardy["P"].to_numpy(), rtol=5.001e-4)
