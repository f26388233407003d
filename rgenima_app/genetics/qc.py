"""Genotype quality control as PLINK 1.9 does it, and imputation of missing calls.

:func:`run_qc` applies, per variant and on the same set of samples (label-free, like PLINK's
``--hwe ... include-nonctrl``):

- ``geno``: drop variants whose missing-call rate exceeds the threshold (PLINK ``--geno``);
- ``maf``: drop variants whose minor allele frequency is below the threshold (PLINK ``--maf``);
- ``hwe``: drop variants whose Hardy-Weinberg exact-test p-value (Wigginton et al. 2005) is below the
  threshold (PLINK ``--hwe``; ``hwe_midp`` gives the mid-p variant of Graffelman & Moreno 2013);
- ``mind`` (optional): first drop samples whose missing-call rate exceeds it (PLINK ``--mind``).

Differences from PLINK, stated: all given samples count (PLINK 1.9 uses founders only for frequencies
and HWE; rgenima cohorts are unrelated participants); variants off the autosomes are reported and not
kept (PLINK treats chrX males as haploid). Like PLINK, QC keeps repeated variant IDs; the panel selection
(:func:`rgenima_app.genetics.extract.select_panel_snps`) keeps only the first.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy.special import gammaln

from rgenima_app.genetics.readers import GenotypeReader, Region, is_autosome, is_snp, open_genotypes

QC_COLUMNS = ["snp", "chrom", "pos", "a1", "a2", "n_a1a1", "n_a1a2", "n_a2a2", "n_missing", "missing_rate",
              "a1_freq", "maf", "hwe_p", "kept", "reason"]
# PLINK compares against thresholds with a relative slack of 2^-44 so that exact boundary values pass.
_SLACK = 2.0 ** -44
# Two het counts whose probabilities agree to this relative precision are ties (same tail).
_TIE_LOG_TOL = 1e-9
# Het counts whose probability is below e^-46 of the tail's largest term cannot change a double-precision
# sum of at most ~e^8.5 terms; the exact-test window spans at least that far on both sides.
_WINDOW_LOG_MARGIN = 46.0
_LN2 = float(np.log(2.0))


def run_qc(genotypes: str | GenotypeReader, geno: float | None = 0.05, maf: float | None = 0.05,
           hwe: float | None = 1e-6, hwe_midp: bool = False, mind: float | None = None,
           samples: Iterable[str] | None = None, regions: Sequence[Region] | None = None,
           snps_only: bool = False, autosomes_only: bool = True) -> pd.DataFrame:
    """Per-variant QC report of a genotype file (a path or an opened reader).

    ``samples`` restricts QC to those sample IDs (e.g. the training participants); ``regions`` to those
    genomic intervals. A threshold of ``None`` switches its filter off. Returns one row per variant with
    the columns of :data:`QC_COLUMNS`: genotype counts by A1 dosage, ``missing_rate``, ``a1_freq`` (the
    frequency used to impute missing calls), ``maf``, ``hwe_p``, ``kept`` and ``reason`` (the failed
    filters, comma-separated, empty when kept). ``report.attrs`` holds ``n_samples`` and
    ``removed_samples`` (by ``mind``).
    """
    reader = open_genotypes(genotypes)
    mask = _sample_mask(reader, samples)
    removed: list[str] = []
    if mind is not None:
        sample_missing = _sample_missing_rates(reader, regions, mask)
        failing = mask & (sample_missing > mind * (1 + _SLACK))
        removed = [s for s, bad in zip(reader.samples, failing) if bad]
        mask &= ~failing
    tables, counts = [], []
    for variants, chunk_counts in reader.iter_counts(regions, sample_mask=mask):
        tables.append(variants)
        counts.append(chunk_counts)
    variants = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=QC_COLUMNS[:5])
    counts = np.concatenate(counts) if counts else np.zeros((0, 4), np.int64)
    report = qc_from_counts(variants, counts, geno=geno, maf=maf, hwe=hwe, hwe_midp=hwe_midp,
                            snps_only=snps_only, autosomes_only=autosomes_only)
    report.attrs.update(n_samples=int(mask.sum()), removed_samples=removed, source=str(reader.path))
    return report


def qc_from_counts(variants: pd.DataFrame, counts: np.ndarray, geno=0.05, maf=0.05, hwe=1e-6,
                   hwe_midp=False, snps_only=False, autosomes_only=True) -> pd.DataFrame:
    """The QC report from a variant table and its ``(n, 4)`` counts of A1A1, A1A2, A2A2, missing."""
    n11, n12, n22, nmiss = (counts[:, i] for i in range(4))
    n_total = counts.sum(1)
    observed = n11 + n12 + n22
    with np.errstate(invalid="ignore", divide="ignore"):
        missing_rate = np.where(n_total > 0, nmiss / np.maximum(n_total, 1), np.nan)
        a1_freq = np.where(observed > 0, (2 * n11 + n12) / (2.0 * observed), np.nan)
    minor = np.minimum(a1_freq, 1 - a1_freq)
    hwe_p = hwe_exact_p(n12, n11, n22, midp=hwe_midp)

    report = variants[["snp", "chrom", "pos", "a1", "a2"]].reset_index(drop=True).copy()
    report["n_a1a1"], report["n_a1a2"], report["n_a2a2"], report["n_missing"] = n11, n12, n22, nmiss
    report["missing_rate"], report["a1_freq"], report["maf"], report["hwe_p"] = missing_rate, a1_freq, minor, hwe_p

    failures: list[tuple[str, np.ndarray]] = []
    if autosomes_only:
        autosomal = {c: is_autosome(c) for c in report["chrom"].unique()}
        failures.append(("non_autosomal", ~report["chrom"].map(autosomal).to_numpy(bool)))
    if snps_only:
        failures.append(("not_snp", ~is_snp(report).to_numpy(bool)))
    if geno is not None:
        failures.append(("geno", nmiss > geno * n_total * (1 + _SLACK)))
    if hwe is not None:
        failures.append(("hwe", hwe_p < hwe * (1 - _SLACK)))
    if maf is not None:
        failures.append(("maf", ~(minor >= maf * (1 - _SLACK)) if maf > 0 else np.isnan(minor)))
    reasons = np.full(len(report), "", dtype=object)
    for name, failed in failures:
        reasons[failed] = [f"{r},{name}" if r else name for r in reasons[failed]]
    report["kept"] = reasons == ""
    report["reason"] = reasons
    return report[QC_COLUMNS]


def hwe_exact_p(n_het, n_hom1, n_hom2, midp: bool = False) -> np.ndarray:
    """Hardy-Weinberg exact-test p-values (Wigginton, Cutler & Abecasis 2005), vectorized.

    The p-value sums the probabilities, under HWE given the allele counts, of all heterozygote counts no
    more likely than the observed one (ties within a relative 1e-9 count as no more likely, as in PLINK).
    ``midp`` subtracts half the probability of the observed and tied outcomes (Graffelman & Moreno 2013).
    The distribution of het counts is computed once per distinct (genotyped samples, rare-allele copies)
    pair, in log space over a window of het counts that holds every term that can change the sums in
    double precision; since it is unimodal, each variant's tails are two prefix/suffix sums found by
    bisection.
    """
    het = np.asarray(n_het, dtype=np.int64)
    hom1, hom2 = np.asarray(n_hom1, dtype=np.int64), np.asarray(n_hom2, dtype=np.int64)
    n = het + hom1 + hom2
    rare = 2 * np.minimum(hom1, hom2) + het  # het counts run over rare, rare - 2, ..., >= 0
    # one possible outcome (no genotypes, or a monomorphic variant): p = 1, mid-p = 1/2 as in PLINK
    p = np.full(het.shape, 0.5 if midp else 1.0)
    rows = np.flatnonzero((n > 0) & (rare > 0))
    if rows.size == 0:
        return p
    span = 2 * int(n.max()) + 1
    keys, group = np.unique(n[rows] * span + rare[rows], return_inverse=True)
    g_n, g_rare = keys // span, keys % span
    # Gaussian approximation of the het-count distribution sizes the window: it spans the farthest member
    # observation and _WINDOW_LOG_MARGIN beyond; a check after the sums widens it to the full range.
    expected = g_rare * (2 * g_n - g_rare) / (2.0 * g_n)
    sd = np.sqrt(np.maximum(expected * (1 - expected / g_n), 1.0))
    deviation = np.zeros(len(keys))
    np.maximum.at(deviation, group, np.abs(het[rows] - expected[group]) / sd[group])
    reach = np.sqrt(deviation ** 2 + 2 * _WINDOW_LOG_MARGIN) * sd + 4
    lo = np.maximum(g_rare % 2, _parity_floor(expected - reach, g_rare))
    hi = np.minimum(g_rare, _parity_floor(expected + reach, g_rare) + 2)
    log_fact = gammaln(np.arange(int(g_n.max()) + 2) + 1.0)
    too_narrow = _hwe_groups(p, rows, group, np.arange(len(keys)), lo, hi, g_n, g_rare, het, log_fact, midp)
    if too_narrow.size:
        lo[too_narrow], hi[too_narrow] = g_rare[too_narrow] % 2, g_rare[too_narrow]
        _hwe_groups(p, rows, group, too_narrow, lo, hi, g_n, g_rare, het, log_fact, midp)
    return p


def _parity_floor(x: np.ndarray, rare: np.ndarray) -> np.ndarray:
    """Largest integer <= x (and >= 0 up to parity) with the parity of ``rare``."""
    f = np.floor(np.maximum(x, 0)).astype(np.int64)
    return f - ((f - rare) % 2)


def _log_het_prob(k: np.ndarray, n: np.ndarray, rare: np.ndarray, log_fact: np.ndarray) -> np.ndarray:
    """log P(het = k) up to a per-group constant: k ln 2 - ln homr! - ln homc! - ln k! (integer k)."""
    homr = (rare - k) // 2
    homc = n - k - homr
    return k * _LN2 - log_fact[homr] - log_fact[homc] - log_fact[k]


def _hwe_groups(p, rows, group, groups, lo, hi, g_n, g_rare, het, log_fact, midp) -> np.ndarray:
    """Fill ``p`` for the variants of ``groups``; return the groups whose window proved too narrow."""
    widths = (hi[groups] - lo[groups]) // 2 + 1
    order = np.argsort(widths, kind="stable")
    batch_of = np.cumsum(widths[order]) // 2_000_000  # padded matrices of about 2 M entries
    local = np.full(len(g_n), -1)
    too_narrow = []
    for batch in np.split(groups[order], np.flatnonzero(np.diff(batch_of)) + 1):
        local[:] = -1
        local[batch] = np.arange(batch.size)
        members = rows[local[group] >= 0]
        r = local[group[local[group] >= 0]]
        lo_b, hi_b = lo[batch], hi[batch]
        width = int(((hi_b - lo_b) // 2).max()) + 1
        steps = 2 * np.arange(width)[None, :]
        valid = lo_b[:, None] + steps <= hi_b[:, None]
        k = np.minimum(lo_b[:, None] + steps, hi_b[:, None])
        lp = np.where(valid, _log_het_prob(k, g_n[batch][:, None], g_rare[batch][:, None], log_fact), -np.inf)
        mode = lp.argmax(1)
        top = lp[np.arange(batch.size), mode]
        prob = np.exp(lp - top[:, None])  # relative to the mode: no overflow; invalid entries are 0
        prefix = np.cumsum(prob, axis=1)
        suffix = np.cumsum(prob[:, ::-1], axis=1)[:, ::-1]
        last = (hi_b - lo_b) // 2

        j_obs = (het[members] - lo_b[r]) // 2
        lp_obs = lp[r, j_obs]
        limit = lp_obs + _TIE_LOG_TOL
        left = j_obs <= mode[r]
        # observation left of the mode: its own tail is the prefix; the other tail starts at the first
        # j > mode with lp <= lp_obs (lp decreases there). Right of the mode: mirror image.
        first = _bisect(lp, r, np.where(left, mode[r] + 1, 0), np.where(left, last[r] + 1, mode[r] + 1),
                        limit, decreasing=left)
        own = np.where(left, prefix[r, j_obs], suffix[r, j_obs])
        other_idx = np.where(left, first, first - 1)
        has_other = np.where(left, first <= last[r], first > 0)
        safe = np.clip(other_idx, 0, width - 1)
        other = np.where(has_other, np.where(left, suffix[r, safe], prefix[r, safe]), 0.0)
        tail = own + other
        if midp:
            tie = has_other & (np.abs(lp[r, safe] - lp_obs) <= _TIE_LOG_TOL)
            tail -= 0.5 * (prob[r, j_obs] + np.where(tie, prob[r, safe], 0.0))
        p[members] = np.minimum(tail / prefix[:, -1][r], 1.0)

        # the window suffices when each edge is a range end or negligible next to every member's tail
        floor = np.minimum(top, np.full(batch.size, np.inf))
        np.minimum.at(floor, r, lp_obs)
        floor -= _WINDOW_LOG_MARGIN
        edge_hi = lp[np.arange(batch.size), last]
        bad = ((lo_b > g_rare[batch] % 2) & (lp[:, 0] > floor)) | ((hi_b < g_rare[batch]) & (edge_hi > floor))
        too_narrow.extend(batch[bad].tolist())
    return np.asarray(too_narrow, dtype=np.int64)


def _bisect(lp, r, start, stop, limit, decreasing) -> np.ndarray:
    """Per row, the first index in ``[start, stop)`` where ``lp <= limit`` starts (``decreasing``) or
    stops (increasing) holding; ``stop`` when none. ``lp`` is monotone on each searched range."""
    lo, hi = start.copy(), stop.copy()
    width = lp.shape[1]
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        holds = lp[r, np.minimum(mid, width - 1)] <= limit
        go_left = np.where(decreasing, holds, ~holds)
        hi = np.where(active & go_left, mid, hi)
        lo = np.where(active & ~go_left, mid + 1, lo)


def impute_missing(dosage: np.ndarray, a1_freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace missing calls (-1 or NaN) by the expected dosage 2 x A1 frequency (training frequencies).

    ``dosage``: variants x samples; ``a1_freq``: one frequency per variant. Returns the float32 dosages
    and the boolean mask of imputed entries.
    """
    values = np.asarray(dosage, dtype=np.float32)
    imputed = np.isnan(values) | (values < 0)
    expected = (2.0 * np.asarray(a1_freq, dtype=np.float64)).astype(np.float32)
    filled = np.where(imputed, np.broadcast_to(expected[:, None], values.shape), values)
    return filled.astype(np.float32), imputed


def _sample_mask(reader: GenotypeReader, samples: Iterable[str] | None) -> np.ndarray:
    if samples is None:
        return np.ones(len(reader.samples), dtype=bool)
    wanted = set(samples)
    mask = np.array([s in wanted for s in reader.samples], dtype=bool)
    return mask


def _sample_missing_rates(reader: GenotypeReader, regions, mask: np.ndarray) -> np.ndarray:
    missing = np.zeros(len(reader.samples), dtype=np.int64)
    n_variants = 0
    for chunk in reader.iter_chunks(regions):
        missing += (chunk.dosage < 0).sum(0)
        n_variants += chunk.dosage.shape[0]
    return np.where(mask, missing / max(n_variants, 1), 0.0)
