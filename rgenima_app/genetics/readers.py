"""Genotype readers: PLINK 1 binary (.bed/.bim/.fam) and VCF/BCF, behind one streaming interface.

Every reader yields :class:`GenotypeChunk` objects: a variant table (``snp, chrom, pos, a1, a2``) and an
``int8`` dosage matrix (variants x samples) holding the **count of the A1 allele** (PLINK's A1, the VCF's
ALT), ``-1`` for a missing call. Files are read in chunks of variants, and only the requested regions are
read, so a genome-wide file never sits in memory when only a gene panel is needed.

Variants a reader cannot represent as one biallelic dosage (multi-allelic VCF records, records without
an ALT allele) are skipped and listed in ``reader.skipped`` with the reason; non-SNP variants (indels)
are kept and flagged by :func:`is_snp`. Chromosome names are reported without a ``chr`` prefix.
"""
from __future__ import annotations

import gzip
import itertools
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from rgenima_app.errors import MissingInputError

VARIANT_COLUMNS = ["snp", "chrom", "pos", "a1", "a2"]
DEFAULT_CHUNK = 4096
#: Description of the dosage written into every output that carries dosages.
DOSAGE_DEFINITION = "count of the A1 allele (PLINK A1 / VCF ALT); -1 = missing call"

# PLINK .bed 2-bit codes -> A1 count: 00 hom A1, 01 missing, 10 het, 11 hom A2.
_CODE_TO_DOSAGE = np.array([2, -1, 1, 0], dtype=np.int8)
# One row per byte value: the dosages of its four samples (lowest bit pair first).
_BYTE_TO_DOSAGES = _CODE_TO_DOSAGE[(np.arange(256)[:, None] >> (2 * np.arange(4))) & 3]
_BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
_EVEN_BITS = np.uint64(0x5555555555555555)
#: Variants needed before a sample homozygous for A1 at all of them is taken for the .bed's padding.
_PADDING_EVIDENCE_ROWS = 64


@dataclass
class GenotypeChunk:
    """A block of variants: their table (``snp, chrom, pos, a1, a2``) and A1 dosages (int8, -1 missing)."""

    variants: pd.DataFrame
    dosage: np.ndarray


@dataclass(frozen=True)
class Region:
    """A 1-based inclusive interval on a chromosome (name without ``chr``)."""

    chrom: str
    start: int
    end: int


def normalize_chrom(name: object) -> str:
    """``chr19`` / ``19`` -> ``19``; ``chrX``/``23`` -> ``X``; ``24`` -> ``Y``; ``26``/``chrM`` -> ``MT``."""
    text = str(name)
    if text.lower().startswith("chr"):
        text = text[3:]
    return {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT", "x": "X", "y": "Y"}.get(text, text)


def normalize_chroms(names: pd.Series) -> pd.Series:
    """:func:`normalize_chrom` over a column, computed once per distinct name."""
    return names.map({name: normalize_chrom(name) for name in names.unique()})


def is_autosome(chrom: str) -> bool:
    return chrom.isdigit() and 1 <= int(chrom) <= 22


def is_snp(variants: pd.DataFrame) -> pd.Series:
    """True for variants whose two alleles are single bases (A, C, G, T)."""
    bases = {"A", "C", "G", "T"}
    return variants["a1"].isin(bases) & variants["a2"].isin(bases)


def merge_regions(regions: Iterable[Region]) -> list[Region]:
    """Sort regions and merge overlapping ones, so that no variant is read twice."""
    merged: list[Region] = []
    for reg in sorted(regions, key=lambda r: (_chrom_order(r.chrom), r.start)):
        if merged and merged[-1].chrom == reg.chrom and reg.start <= merged[-1].end + 1:
            last = merged[-1]
            merged[-1] = Region(last.chrom, last.start, max(last.end, reg.end))
        else:
            merged.append(reg)
    return merged


def _chrom_order(chrom: str) -> tuple[int, str]:
    return (int(chrom), "") if chrom.isdigit() else (100, chrom)


class GenotypeReader(ABC):
    """Common interface of the genotype readers (see the module docstring for the conventions)."""

    path: Path
    samples: list[str]

    @property
    @abstractmethod
    def variants(self) -> pd.DataFrame:
        """All readable variants of the file (``snp, chrom, pos, a1, a2``)."""

    @property
    def skipped(self) -> pd.DataFrame:
        """Variants of the file that the reader skipped (``snp, chrom, pos, reason``)."""
        return pd.DataFrame(columns=["snp", "chrom", "pos", "reason"])

    @abstractmethod
    def iter_chunks(self, regions: Sequence[Region] | None = None, chunk_size: int = DEFAULT_CHUNK
                    ) -> Iterator[GenotypeChunk]:
        """Stream dosages of all samples, variant chunk by chunk, optionally only inside ``regions``."""

    def iter_counts(self, regions: Sequence[Region] | None = None, sample_mask: np.ndarray | None = None,
                    chunk_size: int | None = None) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Stream genotype counts ``(variants, counts)``; counts columns: n(A1A1), n(A1A2), n(A2A2), n(missing).

        ``sample_mask`` (bool, one per sample) restricts the counts to a subset of samples.
        """
        for chunk in self.iter_chunks(regions, chunk_size or DEFAULT_CHUNK):
            dosage = chunk.dosage if sample_mask is None else chunk.dosage[:, sample_mask]
            yield chunk.variants, dosage_counts(dosage)

    def read(self, regions: Sequence[Region] | None = None, snps: Iterable[str] | None = None) -> GenotypeChunk:
        """Read the variants in ``regions`` (all when None), optionally only those named in ``snps``."""
        wanted = None if snps is None else set(snps)
        tables, blocks = [], []
        for chunk in self.iter_chunks(regions):
            if wanted is not None:
                keep = chunk.variants["snp"].isin(wanted).to_numpy()
                chunk = GenotypeChunk(chunk.variants[keep], chunk.dosage[keep])
            tables.append(chunk.variants)
            blocks.append(chunk.dosage)
        if not tables:
            return GenotypeChunk(pd.DataFrame(columns=VARIANT_COLUMNS), np.empty((0, len(self.samples)), np.int8))
        return GenotypeChunk(pd.concat(tables, ignore_index=True), np.concatenate(blocks, axis=0))


def dosage_counts(dosage: np.ndarray) -> np.ndarray:
    """Per-variant counts of dosage 2, 1, 0 and missing (-1), as an ``(n_variants, 4)`` int64 array."""
    return np.stack([(dosage == 2).sum(1), (dosage == 1).sum(1), (dosage == 0).sum(1), (dosage < 0).sum(1)],
                    axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------------------- PLINK
class PlinkReader(GenotypeReader):
    """PLINK 1 binary fileset (SNP-major ``.bed`` with ``.bim`` and ``.fam``), read by prefix or any member."""

    def __init__(self, path: str | os.PathLike):
        given = Path(path)
        prefix = str(given.with_suffix("")) if given.suffix in (".bed", ".bim", ".fam") else str(given)
        self.path = Path(prefix + ".bed")
        self.bim_path, self.fam_path = Path(prefix + ".bim"), Path(prefix + ".fam")
        for member in (self.path, self.bim_path, self.fam_path):
            if not member.is_file():
                raise MissingInputError(f"PLINK fileset {prefix}: {member} is missing",
                                        hint="a PLINK 1 binary genotype set needs .bed, .bim and .fam with the same prefix")
        self.fam = _read_table(self.fam_path, ["fid", "iid", "father", "mother", "sex", "phenotype"])
        self.samples = self.fam["iid"].tolist()
        bim = _read_table(self.bim_path, ["chrom", "snp", "cm", "pos", "a1", "a2"])
        try:
            pos = bim["pos"].astype(np.int64)
        except ValueError as exc:
            raise MissingInputError(f"{self.bim_path}: base-pair positions (column 4) are not integers",
                                    hint="check that the file is a PLINK .bim") from exc
        self._variants = pd.DataFrame({"snp": bim["snp"], "chrom": normalize_chroms(bim["chrom"]),
                                       "pos": pos, "a1": bim["a1"], "a2": bim["a2"]})
        self.bytes_per_variant = (len(self.samples) + 3) // 4
        self._check_bed()
        self._check_padding_at_open()

    def _check_bed(self) -> None:
        with open(self.path, "rb") as fh:
            magic = fh.read(3)
        if magic[:2] != _BED_MAGIC[:2]:
            raise MissingInputError(f"{self.path} is not a PLINK 1 binary .bed file (bad magic bytes)",
                                    hint="convert it with plink --make-bed")
        if magic[2:3] != _BED_MAGIC[2:3]:
            raise MissingInputError(f"{self.path} is in individual-major mode, which is not supported",
                                    hint="rewrite it in SNP-major mode with plink --make-bed")
        size = self.path.stat().st_size
        n_var, n_samp = len(self._variants), len(self.samples)
        expected = 3 + n_var * self.bytes_per_variant
        if size != expected:
            implied = (size - 3) / self.bytes_per_variant if self.bytes_per_variant else float("nan")
            kind = "truncated" if size < expected else "longer than expected"
            raise MissingInputError(
                f"{self.path} is {kind}: {size} bytes, but {self.bim_path.name} lists {n_var} variants and "
                f"{self.fam_path.name} {n_samp} samples, which need {expected} bytes "
                f"(the size fits {implied:.2f} variants)",
                hint="the .bed/.bim/.fam do not belong together or the .bed was cut short; regenerate the fileset")

    def _check_padding_at_open(self) -> None:
        """Prove the .fam belongs to the .bed before any genotype is used: a .fam a few lines short or long
        keeps the bytes per variant (the size check passes) but shifts every sample. PLINK writes the
        padding bit pairs of each row's last byte as 0, so a set one means the sample count is wrong.
        The first rows (up to 64 MiB) are checked here; ``iter_packed`` checks every row it reads."""
        if not len(self._variants) or not len(self.samples):
            return
        rows = min(len(self._variants), max(1, (64 << 20) // self.bytes_per_variant))
        packed = np.memmap(self.path, dtype=np.uint8, mode="r", offset=3, shape=(rows, self.bytes_per_variant))
        self._check_padding(packed, 0)
        # a .fam too long reads the padding (00) as its last sample: homozygous A1 at every variant, which
        # no real sample is (A1 is the minor allele), once enough variants are seen
        last = len(self.samples) - 1
        if rows >= _PADDING_EVIDENCE_ROWS and not ((packed[:, last // 4] >> (2 * (last % 4))) & 3).any():
            raise MissingInputError(
                f"{self.path} does not belong to {self.fam_path}: the last sample of the .fam "
                f"({self.samples[-1]}) is homozygous for A1 at all {rows} variants, which is how the .bed's "
                "padding reads: the .fam lists more samples than the .bed holds, so the samples would receive "
                "each other's genotypes",
                hint="the .fam has lines added; use the .bed, .bim and .fam written together by PLINK")

    @property
    def _padding_mask(self) -> int:
        """Bits of the last byte of a row that hold no sample (0 when the count is a multiple of 4)."""
        used = len(self.samples) % 4
        return 0 if used == 0 else (0xFF << (2 * used)) & 0xFF

    def _check_padding(self, packed: np.ndarray, first_row: int) -> None:
        mask = self._padding_mask
        if mask == 0:
            return
        bad = np.flatnonzero(packed[:, -1] & mask)
        if bad.size:
            snp = self._variants["snp"].iloc[first_row + int(bad[0])]
            raise MissingInputError(
                f"{self.path} does not belong to {self.fam_path}: the .bed holds genotypes beyond the "
                f"{len(self.samples)} samples the .fam lists (padding bits set in the row of {snp}), so the "
                "samples would receive each other's genotypes",
                hint="the .fam has lines missing or added; use the .bed, .bim and .fam written together by PLINK")

    @property
    def variants(self) -> pd.DataFrame:
        return self._variants

    def _row_runs(self, regions: Sequence[Region] | None) -> list[tuple[int, int]]:
        """Contiguous runs ``[start, stop)`` of variant rows to read."""
        n = len(self._variants)
        if regions is None:
            return [(0, n)] if n else []
        chrom = self._variants["chrom"].to_numpy()
        pos = self._variants["pos"].to_numpy()
        wanted = np.zeros(n, dtype=bool)
        for reg in merge_regions(regions):
            wanted |= (chrom == reg.chrom) & (pos >= reg.start) & (pos <= reg.end)
        idx = np.flatnonzero(wanted)
        if idx.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts = np.r_[idx[0], idx[breaks + 1]]
        stops = np.r_[idx[breaks] + 1, idx[-1] + 1]
        return list(zip(starts.tolist(), stops.tolist()))

    def iter_packed(self, regions: Sequence[Region] | None = None, chunk_size: int = DEFAULT_CHUNK
                    ) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
        """Stream the raw packed rows ``(variants, uint8 array of shape (k, bytes_per_variant))``."""
        width = self.bytes_per_variant
        with open(self.path, "rb") as fh:
            for start, stop in self._row_runs(regions):
                for lo in range(start, stop, chunk_size):
                    hi = min(lo + chunk_size, stop)
                    fh.seek(3 + lo * width)
                    raw = np.frombuffer(fh.read((hi - lo) * width), dtype=np.uint8)
                    if raw.size != (hi - lo) * width:
                        raise MissingInputError(f"{self.path} ended early while reading variant {lo}",
                                                hint="the .bed file is truncated; regenerate it")
                    packed = raw.reshape(hi - lo, width)
                    self._check_padding(packed, lo)
                    yield self._variants.iloc[lo:hi].reset_index(drop=True), packed

    def iter_chunks(self, regions=None, chunk_size=DEFAULT_CHUNK):
        n = len(self.samples)
        for variants, packed in self.iter_packed(regions, chunk_size):
            yield GenotypeChunk(variants, decode_packed(packed, n))

    def iter_counts(self, regions=None, sample_mask=None, chunk_size=None):
        # about 1 MiB of packed rows per chunk keeps the popcount passes in cache
        chunk_size = chunk_size or max(16, 2 ** 20 // max(self.bytes_per_variant, 1))
        n = len(self.samples)
        mask_bytes = None if sample_mask is None else _packed_sample_mask(np.asarray(sample_mask, bool))
        n_used = n if sample_mask is None else int(np.count_nonzero(sample_mask))
        for variants, packed in self.iter_packed(regions, chunk_size):
            yield variants, packed_counts(packed, n_used, mask_bytes)


def decode_packed(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Decode packed .bed rows ``(k, bytes)`` into int8 A1 dosages ``(k, n_samples)`` by byte lookup."""
    return _BYTE_TO_DOSAGES[packed].reshape(packed.shape[0], -1)[:, :n_samples]


def _packed_sample_mask(mask: np.ndarray) -> np.ndarray:
    """Byte mask with bit pair 11 for kept samples and 00 for dropped ones (padding dropped)."""
    pairs = np.zeros(((mask.size + 3) // 4) * 4, dtype=np.uint8)
    pairs[: mask.size] = np.where(mask, 3, 0)
    return (pairs.reshape(-1, 4) << (2 * np.arange(4, dtype=np.uint8))).sum(1).astype(np.uint8)


def packed_counts(packed: np.ndarray, n_samples: int, mask_bytes: np.ndarray | None = None) -> np.ndarray:
    """Genotype counts straight from packed .bed rows with popcounts (no per-sample decoding).

    Per sample the bit pair (low, high) is 00 hom A1, 10 missing, 01 het, 11 hom A2. Counting set low
    bits, set high bits and pairs with both gives every class; padding pairs and masked-out samples are
    00, so n(A1A1) is ``n_samples`` minus the other three counts.
    """
    k, width = packed.shape
    padded = np.zeros((k, -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = packed
    if mask_bytes is not None:
        padded[:, :width] &= mask_bytes
    words = padded.view(np.uint64)
    bits = np.empty_like(words)
    np.bitwise_and(words, _EVEN_BITS, out=bits)
    low = np.bitwise_count(bits).sum(1, dtype=np.int64)
    np.right_shift(words, np.uint64(1), out=bits)
    np.bitwise_and(bits, _EVEN_BITS, out=bits)
    high = np.bitwise_count(bits).sum(1, dtype=np.int64)
    np.bitwise_and(bits, words, out=bits)
    both = np.bitwise_count(bits).sum(1, dtype=np.int64)
    return np.stack([n_samples - low - high + both, high - both, both, low - both], axis=1)


def _read_table(path: Path, names: list[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c")
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=range(len(names)))
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MissingInputError(f"cannot read {path}: {exc}") from exc
    if table.shape[1] != len(names):
        raise MissingInputError(f"{path} has {table.shape[1]} columns, expected {len(names)} ({' '.join(names)})",
                                hint="check that the file is a PLINK .bim/.fam")
    table.columns = names
    return table


# ------------------------------------------------------------------------------------------------- VCF
class VcfReader(GenotypeReader):
    """VCF/BCF (plain or bgzipped) through cyvcf2; region queries use the index (.csi/.tbi) when present."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        from cyvcf2 import VCF

        self.path = Path(path)
        if not self.path.is_file():
            raise MissingInputError(f"VCF {self.path} is missing", hint="check the --genotypes path")
        self._open = lambda: VCF(str(self.path), gts012=True, lazy=True, threads=threads)
        try:
            vcf = self._open()
        except Exception as exc:  # cyvcf2 raises bare Exceptions on unreadable files
            raise MissingInputError(f"cannot read VCF {self.path}: {exc}") from exc
        formats = {h.info().get("ID") for h in vcf.header_iter() if h.type == "FORMAT"}
        if "GT" not in formats:
            raise MissingInputError(f"VCF {self.path} has no GT (genotype) FORMAT field",
                                    hint="rgenima needs hard genotype calls; export the file with GT")
        self.samples = list(vcf.samples)
        self._check_sample_columns()
        self._chr_prefix = any(str(s).startswith("chr") for s in vcf.seqnames)
        self._indexed = any(Path(str(self.path) + ext).is_file() for ext in (".csi", ".tbi"))
        vcf.close()
        self._variants: pd.DataFrame | None = None
        self._skipped: list[dict] = []

    def _check_sample_columns(self, n_lines: int = 1000) -> None:
        """A data line with more columns than the header names samples is read by htslib without a word
        (the extra calls are dropped, or every sample after a missing name shifted): the first lines of a
        text VCF are counted here. A line with fewer columns fails in htslib (``_records``)."""
        if self.path.name.lower().endswith(".bcf") or not self.samples:
            return  # binary: the sample count is part of each record; sites-only: nothing to mix up
        expected = 9 + len(self.samples)
        opener = gzip.open if self.path.name.lower().endswith((".gz", ".bgz")) else open
        try:
            with opener(self.path, "rt", errors="replace") as fh:
                lines = (line for line in fh if not line.startswith("#"))
                for number, line in enumerate(itertools.islice(lines, n_lines), start=1):
                    columns = line.rstrip("\r\n").count("\t") + 1
                    if columns != expected:
                        fields = line.split("\t", 2)
                        raise MissingInputError(
                            f"VCF {self.path}: the record at {fields[0]}:{fields[1] if len(fields) > 1 else '?'} "
                            f"(data line {number}) has {columns - 9} sample column(s), but the header names "
                            f"{len(self.samples)} samples: the samples would receive each other's genotypes",
                            hint="the #CHROM header line and the sample columns do not belong together; "
                                 "regenerate the file (bcftools view checks it)")
        except (OSError, EOFError) as exc:
            raise MissingInputError(f"cannot read VCF {self.path}: {exc}") from exc

    @property
    def variants(self) -> pd.DataFrame:
        if self._variants is None:
            tables = [chunk.variants for chunk in self._iter(None, DEFAULT_CHUNK, genotypes=False)]
            self._variants = (pd.concat(tables, ignore_index=True) if tables
                              else pd.DataFrame(columns=VARIANT_COLUMNS))
        return self._variants

    @property
    def indexed(self) -> bool:
        """Whether region queries use an index (.csi/.tbi) instead of streaming the file."""
        return self._indexed

    @property
    def skipped(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._skipped, columns=["snp", "chrom", "pos", "reason"])
        return frame.drop_duplicates(ignore_index=True)

    def iter_chunks(self, regions=None, chunk_size=DEFAULT_CHUNK):
        return self._iter(regions, chunk_size, genotypes=True)

    def _records(self, regions: Sequence[Region] | None):
        """The records, with htslib's failure on a damaged line (e.g. fewer sample columns than the header
        names) reported as a damaged input naming the file and where it happened."""
        last = None
        records = self._raw_records(regions)
        while True:
            try:
                rec = next(records)
            except StopIteration:
                return
            except Exception as exc:  # cyvcf2 raises a bare Exception for a line htslib cannot parse
                where = f"after the record at {last}" if last else "at its first record"
                raise MissingInputError(
                    f"VCF {self.path}: a line {where} cannot be read ({exc}); the usual cause is a line whose "
                    f"number of sample columns differs from the {len(self.samples)} samples of the header",
                    hint="check the file with bcftools view and regenerate it") from exc
            last = f"{rec.CHROM}:{rec.POS}"
            yield rec

    def _raw_records(self, regions: Sequence[Region] | None):
        vcf = self._open()
        try:
            if regions is None:
                yield from vcf
            elif self._indexed:
                prefix = "chr" if self._chr_prefix else ""
                for reg in merge_regions(regions):
                    with warnings.catch_warnings():  # cyvcf2 warns for every empty interval
                        warnings.simplefilter("ignore")
                        records = list(vcf(f"{prefix}{reg.chrom}:{reg.start}-{reg.end}"))
                    yield from records
            else:  # no index: one streamed pass, keeping records inside the regions
                merged = merge_regions(regions)
                for rec in vcf:
                    chrom, pos = normalize_chrom(rec.CHROM), rec.POS
                    if any(r.chrom == chrom and r.start <= pos <= r.end for r in merged):
                        yield rec
        finally:
            vcf.close()

    def _iter(self, regions, chunk_size, genotypes: bool) -> Iterator[GenotypeChunk]:
        n = len(self.samples)
        rows: list[tuple] = []
        block = np.empty((chunk_size, n), dtype=np.int8) if genotypes else None
        for rec in self._records(regions):
            chrom = normalize_chrom(rec.CHROM)
            snp = rec.ID or f"{chrom}:{rec.POS}:{rec.REF}:{','.join(rec.ALT)}"
            if len(rec.ALT) != 1 or rec.ALT[0] in (".", "*", ""):
                reason = "multiallelic" if len(rec.ALT) > 1 else "no_alt_allele"
                self._skipped.append({"snp": snp, "chrom": chrom, "pos": rec.POS, "reason": reason})
                continue
            if genotypes:
                gt = rec.gt_types  # gts012: 0 hom REF, 1 het, 2 hom ALT, 3 unknown
                row = block[len(rows)]
                row[:] = gt
                row[gt == 3] = -1
            rows.append((snp, chrom, rec.POS, rec.ALT[0], rec.REF))
            if len(rows) == chunk_size:
                yield self._chunk(rows, block)
                rows = []
        if rows:
            yield self._chunk(rows, block)

    @staticmethod
    def _chunk(rows, block) -> GenotypeChunk:
        variants = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
        dosage = block[: len(rows)].copy() if block is not None else np.empty((len(rows), 0), np.int8)
        return GenotypeChunk(variants, dosage)


def open_genotypes(path: str | os.PathLike | GenotypeReader) -> GenotypeReader:
    """Open a genotype file by its name: PLINK (``.bed``/``.bim``/``.fam`` or a prefix) or VCF/BCF."""
    if isinstance(path, GenotypeReader):
        return path
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")):
        return VcfReader(path)
    if path.suffix in (".bed", ".bim", ".fam") or Path(str(path) + ".bed").is_file():
        return PlinkReader(path)
    raise MissingInputError(f"genotype input {path} not found or of unknown type",
                            hint="give a PLINK .bed (or its prefix) or a .vcf.gz/.bcf file")
