"""Writing genotypes: PLINK 1 binary filesets and VCF, from a variant table and A1 dosages.

Used by the synthetic cohorts and the tests; dosages follow the readers' convention (count of A1 / ALT,
-1 missing), so ``read(write(x)) == x``.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

# A1 dosage -> PLINK 2-bit code: 2 -> 00, 1 -> 10, 0 -> 11, missing -> 01.
_DOSAGE_TO_CODE = {2: 0b00, 1: 0b10, 0: 0b11, -1: 0b01}


def write_plink(prefix: str | os.PathLike, variants: pd.DataFrame, dosage: np.ndarray,
                samples: Sequence[str], fids: Sequence[str] | None = None,
                sexes: Sequence[int] | None = None) -> Path:
    """Write ``prefix.bed/.bim/.fam`` (SNP-major); ``variants`` has ``snp, chrom, pos, a1, a2``.

    ``sexes``: PLINK sex codes (1 male, 2 female, 0 unknown) of the samples; unknown by default.
    """
    prefix = Path(prefix)
    dosage = np.asarray(dosage, dtype=np.int8)
    n_var, n_samp = dosage.shape
    if n_var != len(variants) or n_samp != len(samples):
        raise ValueError(f"dosage shape {dosage.shape} does not match {len(variants)} variants x {len(samples)} samples")
    codes = np.full(dosage.shape, 0b01, dtype=np.uint8)
    for value, code in _DOSAGE_TO_CODE.items():
        codes[dosage == value] = code
    padded = np.zeros((n_var, -(-n_samp // 4) * 4), dtype=np.uint8)
    padded[:, :n_samp] = codes
    packed = (padded.reshape(n_var, -1, 4) << (2 * np.arange(4, dtype=np.uint8))).sum(2).astype(np.uint8)
    with open(prefix.with_name(prefix.name + ".bed"), "wb") as fh:
        fh.write(bytes([0x6C, 0x1B, 0x01]))
        fh.write(packed.tobytes())
    bim = pd.DataFrame({"chrom": variants["chrom"].astype(str), "snp": variants["snp"], "cm": 0,
                        "pos": variants["pos"].astype(int), "a1": variants["a1"], "a2": variants["a2"]})
    bim.to_csv(prefix.with_name(prefix.name + ".bim"), sep="\t", header=False, index=False)
    fam = pd.DataFrame({"fid": list(fids) if fids is not None else list(samples), "iid": list(samples),
                        "father": 0, "mother": 0, "sex": list(sexes) if sexes is not None else 0,
                        "phenotype": -9})
    fam.to_csv(prefix.with_name(prefix.name + ".fam"), sep=" ", header=False, index=False)
    return prefix.with_name(prefix.name + ".bed")


def write_vcf(path: str | os.PathLike, variants: pd.DataFrame, dosage: np.ndarray, samples: Sequence[str],
              with_gt: bool = True) -> Path:
    """Write an (optionally gzipped, by the ``.gz`` suffix) VCF 4.2 with unphased GT: REF = a2, ALT = a1."""
    path = Path(path)
    calls = np.array(["1/1", "0/1", "0/0", "./."])[np.where(np.asarray(dosage) < 0, 3, 2 - np.asarray(dosage))]
    opener = gzip.open if path.suffix == ".gz" else open
    contigs = pd.unique(variants["chrom"].astype(str))
    with opener(path, "wt") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        for contig in contigs:
            fh.write(f"##contig=<ID={contig}>\n")
        if with_gt:
            fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
            fmt = "GT"
        else:
            fh.write('##FORMAT=<ID=DS,Number=1,Type=Float,Description="ALT dosage">\n')
            fmt = "DS"
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples) + "\n")
        for i, row in enumerate(variants.itertuples(index=False)):
            values = calls[i] if with_gt else np.asarray(dosage[i]).astype(str)
            fh.write(f"{row.chrom}\t{row.pos}\t{row.snp}\t{row.a2}\t{row.a1}\t.\tPASS\t.\t{fmt}\t" + "\t".join(values) + "\n")
    return path
