"""Fixtures of the genetics tests: PLINK 1.9 (skip when absent), real genotype sets, synthetic cohorts."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def plink() -> str:
    """The ``plink1.9`` binary (Debian package plink1.9); skips the test where it cannot be had."""
    exe = shutil.which("plink1.9") or shutil.which("plink")
    if exe is None:
        pytest.skip("plink1.9 not installed (apt-get install plink1.9): PLINK reference comparisons skipped")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "v1.9" not in version:
        pytest.skip(f"{exe} is not PLINK 1.9 ({version.strip()})")
    return exe


def run_plink(exe: str, *args: str) -> None:
    """Run PLINK 1.9 quietly with one thread; fail the test with its log when it fails."""
    out = subprocess.run([exe, "--threads", "1", "--allow-no-sex", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(scope="session")
def eur(shared_data: Path) -> Path:
    """Prefix of the real 1000 Genomes EUR set (379 samples x 54,051 SNPs, GRCh37)."""
    return shared_data / "genotypes" / "boltlmm_EUR_subset" / "EUR_subset"


@pytest.fixture(scope="session")
def chr19_vcf(shared_data: Path) -> Path:
    return shared_data / "genotypes" / "1KG_phase3_subset_chr19" / "1KG_phase3_subset_chr19.vcf.gz"


@pytest.fixture(scope="session")
def chr20_vcf(shared_data: Path) -> Path:
    return shared_data / "genotypes" / "shapeit4_example_1KG_chr20" / "unphased.vcf.gz"


def synthetic_genotypes(n_samples: int = 60, n_variants: int = 40, missing: float = 0.05, seed: int = 0):
    """A small random cohort: variant table, int8 A1 dosages with missing calls (-1), sample IDs."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.3, 0.7, n_variants)
    dosage = rng.binomial(2, freq[:, None], (n_variants, n_samples)).astype(np.int8)
    dosage[rng.random(dosage.shape) < missing] = -1
    bases = np.array(list("ACGT"))
    a1 = rng.integers(0, 4, n_variants)
    a2 = (a1 + rng.integers(1, 4, n_variants)) % 4
    variants = pd.DataFrame({"snp": [f"rs{1000 + i}" for i in range(n_variants)],
                             "chrom": ["19"] * (n_variants // 2) + ["20"] * (n_variants - n_variants // 2),
                             "pos": np.r_[np.arange(n_variants // 2), np.arange(n_variants - n_variants // 2)] * 1000 + 45_000_000,
                             "a1": bases[a1], "a2": bases[a2]})
    samples = [f"S{i:03d}" for i in range(n_samples)]
    return variants, dosage, samples
