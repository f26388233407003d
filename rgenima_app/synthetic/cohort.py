"""Synthetic cohorts with known ground truth, for the demo, the tests and the benchmarks.

    python -m rgenima_app.synthetic OUT --preset {tiny,demo,bench} --seed N [--n-participants N]
        [--planted-rois NAME,...] [--planted-genes GENE,...] [--sessions 1|2] [--visits N [--followup-images]
        [--dropout informative|mcar]]

The generating model (every parameter is written to OUT/ground_truth.json):

1. Genotypes: SNPs placed inside the GRCh37 coordinates of the gene panel's genes, A1 frequencies
   drawn from U(0.05, 0.5), Hardy-Weinberg genotypes, 1% missing calls. A few SNPs are made to fail
   QC on purpose (rare, poorly called, or out of Hardy-Weinberg equilibrium).
2. Stage: liability L = sum_j beta_j (g_j - 2 p_j) + e, e ~ N(0, 1), over one causal SNP in each
   planted gene; the stage is NC/SMC/MCI/AD by thresholds on L chosen for 30/20/30/20% of participants.
3. Image: each ROI keeps a fraction f = clip(F0 - atrophy[stage] * [ROI planted] + N(0, sigma), 0.3, 1)
   of its phantom voxels (the outermost ones are lost, as atrophy erodes a structure from its surface);
   only planted ROIs depend on the stage. Sessions of one participant share the stage and draw f anew.

4. With ``--visits N`` (N >= 2), a longitudinal cohort: visits 12 months apart with shifts and
   informative dropout, a CDR-SB trajectory whose rate depends on the baseline stage, the planted ROIs'
   atrophy and the planted genes, and the Bayes truth of ΔCDR-SB and conversion; with
   ``--followup-images`` also a T1w at every attended follow-up whose planted ROIs shrink with the
   participant's decline (``synthetic/progression.py``). ``ground_truth.tsv`` covers the baseline images.

Because the model is known, each sample's Bayes-optimal posterior given what a classifier can observe
(the genotypes with their missing calls, and the ROI voxel counts) is computed exactly: missing causal
genotypes are summed over, and voxel counts are integrated over the rounding and the clipping of f.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import click
import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from scipy.special import ndtr
from scipy.stats import norm
from tqdm import tqdm

from rgenima_app import STAGES, __version__
from rgenima_app.genetics.panel import load_gene_panel
from rgenima_app.genetics.writers import write_plink
from rgenima_app.imaging.roi_table import load_roi_table, resolve_roi_names
from rgenima_app.synthetic.liability import missing_call_combinations
from rgenima_app.synthetic.phantom import build_phantom
from rgenima_app.synthetic.progression import STREAM as PROGRESSION_STREAM
from rgenima_app.synthetic.progression import MCAR_DROPOUT, ProgressionModel, followup_fractions, write_longitudinal

PRESETS = {
    # grid edge and voxel size of the phantom, participants, SNPs per gene, default planted ROIs/genes
    "tiny": dict(grid=48, voxel_mm=4.0, n_participants=24, snps_per_gene=2),
    "demo": dict(grid=64, voxel_mm=3.0, n_participants=40, snps_per_gene=4),
    "bench": dict(grid=64, voxel_mm=3.0, n_participants=1000, snps_per_gene=14),
}
DEFAULT_PLANTED_ROIS = ["Left-Hippocampus", "Right-Hippocampus", "ctx-lh-entorhinal", "ctx-rh-entorhinal",
                        "Left-Amygdala"]
DEFAULT_PLANTED_GENES = ["APOE", "BIN1", "CLU", "PICALM", "ABCA7"]
STAGE_PROPORTIONS = (0.3, 0.2, 0.3, 0.2)


@dataclass
class GeneratorParameters:
    preset: str
    seed: int
    n_participants: int
    sessions: int
    grid: int
    voxel_mm: float
    snps_per_gene: int
    planted_rois: list[str]
    planted_genes: list[str]
    causal_beta: float = 0.9               # liability per risk allele
    atrophy: tuple = (0.0, 0.03, 0.06, 0.10)  # volume fraction lost in planted ROIs, per stage
    kept_fraction_mean: float = 0.92
    kept_fraction_sd: float = 0.04
    missing_call_rate: float = 0.01
    genome_build: str = "GRCh37"
    version: str = __version__
    qc_failing_snps: dict = field(default_factory=dict)


# -- genotypes and stages -------------------------------------------------------------------------------
def make_snps(panel: pd.DataFrame, snps_per_gene: int, rng: np.random.Generator) -> pd.DataFrame:
    """SNPs inside each gene of the panel: id, chrom, pos, alleles, A1 frequency and QC role."""
    rows = []
    bases = np.array(list("ACGT"))
    for gene in panel.itertuples():
        positions = np.sort(rng.choice(np.arange(gene.start, gene.end + 1), size=snps_per_gene, replace=False))
        for pos in positions:
            a1, a2 = rng.choice(bases, size=2, replace=False)
            rows.append(dict(gene=gene.gene, chrom=str(gene.chrom), pos=int(pos), a1=a1, a2=a2,
                             freq=float(rng.uniform(0.05, 0.5)), role="ordinary"))
    snps = pd.DataFrame(rows)
    snps.insert(0, "snp", [f"synrs{i + 1}" for i in range(len(snps))])
    return snps


def plant_qc_failures(snps: pd.DataFrame, rng: np.random.Generator, protected: set[int]) -> dict:
    """Mark a few SNPs to fail QC: rare (MAF < 0.05), poorly called (20% missing), out of HWE."""
    candidates = [i for i in range(len(snps)) if i not in protected]
    n = max(1, len(snps) // 40)
    chosen = rng.choice(candidates, size=min(3 * n, len(candidates)), replace=False)
    roles = {"rare": chosen[:n], "poorly_called": chosen[n:2 * n], "hwe_violation": chosen[2 * n:3 * n]}
    for role, idx in roles.items():
        snps.loc[idx, "role"] = role
    snps.loc[roles["rare"], "freq"] = 0.01
    return {role: sorted(snps.loc[idx, "snp"].tolist()) for role, idx in roles.items()}


def draw_genotypes(snps: pd.DataFrame, n: int, missing_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Dosages (count of A1) as float with NaN for missing calls, shape (n, n_snps)."""
    freq = snps["freq"].to_numpy()
    dosage = rng.binomial(2, freq, size=(n, len(snps))).astype(np.float64)
    hwe = (snps["role"] == "hwe_violation").to_numpy()
    if hwe.any():  # no homozygotes for A1 and an excess of heterozygotes: far out of equilibrium
        dosage[:, hwe] = rng.choice([0.0, 1.0], p=[0.4, 0.6], size=(n, int(hwe.sum())))
    rate = np.where((snps["role"] == "poorly_called").to_numpy(), 0.2, missing_rate)
    dosage[rng.random(dosage.shape) < rate] = np.nan
    return dosage


def stage_thresholds(betas: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Liability thresholds (-inf, t1, t2, t3, inf) for the target stage proportions (normal approximation)."""
    sd = math.sqrt(1.0 + float(np.sum(betas ** 2 * 2 * freqs * (1 - freqs))))
    inner = norm.ppf(np.cumsum(STAGE_PROPORTIONS)[:-1]) * sd
    return np.concatenate([[-np.inf], inner, [np.inf]])


def genetic_posterior(dosage: np.ndarray, betas: np.ndarray, freqs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """P(stage | observed causal genotypes), summing over the genotypes of missing calls (HWE)."""
    n = dosage.shape[0]
    out = np.zeros((n, len(STAGES)))
    for i in range(n):
        for mu, weight in missing_call_combinations(dosage[i], betas, freqs):
            out[i] += weight * (ndtr(thresholds[1:] - mu) - ndtr(thresholds[:-1] - mu))
    return out / out.sum(axis=1, keepdims=True)


# -- images -----------------------------------------------------------------------------------------------
def kept_counts(base: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Voxels kept of each ROI: base - round((1 - f) * base), rounding halves up."""
    return base - np.floor((1.0 - fractions) * base + 0.5).astype(np.int64)


def image_likelihood(counts: np.ndarray, base: np.ndarray, means: np.ndarray, sd: float) -> np.ndarray:
    """P(count_r | stage) of each planted ROI, exact under the rounding and the clipping of f.

    counts, base: (n, R) and (R,); means: (stages, R) expected kept fraction; returns (n, stages).
    """
    removed = base - counts
    lo = 1.0 - (removed + 0.5) / base
    hi = 1.0 - (removed - 0.5) / base
    hi = np.where(hi >= 1.0, np.inf, hi)             # f is clipped at 1: all of the upper tail keeps every voxel
    lo = np.where((lo < 0.3) & (hi >= 0.3), -np.inf, lo)  # and at 0.3 below
    z_hi = (hi[:, None, :] - means[None]) / sd
    z_lo = (lo[:, None, :] - means[None]) / sd
    per_roi = np.clip(ndtr(z_hi) - ndtr(z_lo), 1e-300, None)
    return np.exp(np.log(per_roi).sum(axis=-1))


def erode(phantom_labels: np.ndarray, order: dict[int, np.ndarray], counts: dict[int, int]) -> np.ndarray:
    """Labels of one sample: each ROI loses its outermost voxels down to the kept count (to label 0)."""
    labels = phantom_labels.copy().ravel()
    for label, flat in order.items():
        lost = len(flat) - counts[label]
        if lost > 0:
            labels[flat[:lost]] = 0
    return labels.reshape(phantom_labels.shape)


def outermost_first(labels: np.ndarray, roi_labels: list[int]) -> dict[int, np.ndarray]:
    """For each ROI, its voxels' flat indices sorted from farthest to nearest its centroid."""
    flat = labels.ravel()
    coords = np.stack(np.unravel_index(np.arange(flat.size), labels.shape), axis=1)
    order = {}
    for label in roi_labels:
        idx = np.flatnonzero(flat == label)
        d = ((coords[idx] - coords[idx].mean(axis=0)) ** 2).sum(axis=1)
        order[label] = idx[np.argsort(-d, kind="stable")]
    return order


# -- writing the cohort ---------------------------------------------------------------------------------------
def _to_freesurfer_space(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RAS voxel order -> FreeSurfer's conformed LIA order (same physical space)."""
    transform = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt("LIA"))
    return apply_orientation(data, transform), affine @ inv_ornt_aff(transform, data.shape)


def intensity_image(phantom, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """T1-like intensities: tissue means, CSF where tissue was lost, scalp, noise and a bias field."""
    lut = np.zeros(int(phantom.labels.max()) + 1, dtype=np.float32)
    for label, value in phantom.label_intensity.items():
        lut[label] = value
    image = lut[labels]
    image[(labels == 0) & (phantom.labels > 0)] = 25.0  # atrophy leaves CSF behind
    image[phantom.head] = 60.0
    grid = np.linspace(-1.0, 1.0, labels.shape[0], dtype=np.float32)
    gx, gy, gz = np.meshgrid(grid, grid, grid, indexing="ij")
    bias = 1.0 + 0.04 * (rng.normal() * gx + rng.normal() * gy + rng.normal() * gz)
    image = image * bias + rng.normal(0.0, 3.0, size=image.shape).astype(np.float32) * (image > 0)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def aseg_stats_text(labels: np.ndarray, intensity: np.ndarray, voxel_mm: float, subject: str) -> str:
    """``stats/aseg.stats`` in FreeSurfer's layout: NVoxels of each non-cortical ROI (not cerebral WM)."""
    table = load_roi_table()
    rows = table[(table["kind"] != "cortical") & ~table["label"].isin([2, 41])]
    counts = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    lines = [
        "# Title Segmentation Statistics",
        f"# generating_program rgenima.synthetic {__version__}",
        f"# subjectname {subject}",
        "# NRows " + str(len(rows)),
        "# NTableCols 10",
        "# ColHeaders  Index SegId NVoxels Volume_mm3 StructName normMean normStdDev normMin normMax normRange",
    ]
    for i, row in enumerate(rows.itertuples(), start=1):
        values = intensity[labels == row.label].astype(np.float64)
        n = int(counts[row.label]) if row.label < len(counts) else 0
        stats = (values.mean(), values.std(), values.min(), values.max(), np.ptp(values)) if n else (0, 0, 0, 0, 0)
        lines.append(f"{i:3d} {row.label:4d} {n:9d} {n * voxel_mm ** 3:10.1f}  {row.name:<32s} "
                     + " ".join(f"{v:10.4f}" for v in stats))
    return "\n".join(lines) + "\n"


def write_freesurfer_subject(root: Path, name: str, phantom, labels: np.ndarray, intensity: np.ndarray,
                             t1w=None) -> None:
    """The volumes rgenima reads from a FreeSurfer subject, and (given the ``t1w`` NIfTI image) recon-all's
    unresampled copies of its input, ``mri/orig/001.mgz`` and ``mri/rawavg.mgz`` (one input: the same image),
    so that reusing the subject checks that it was made from the participant's T1w."""
    mri, stats = root / name / "mri", root / name / "stats"
    mri.mkdir(parents=True, exist_ok=True)
    if t1w is not None:
        (mri / "orig").mkdir(exist_ok=True)
        raw = nib.MGHImage(np.asarray(t1w.dataobj), t1w.affine)
        nib.save(raw, str(mri / "orig" / "001.mgz"))
        try:  # the same bytes: a hard link where the file system allows it
            os.link(mri / "orig" / "001.mgz", mri / "rawavg.mgz")
        except OSError:
            shutil.copyfile(mri / "orig" / "001.mgz", mri / "rawavg.mgz")
    stats.mkdir(parents=True, exist_ok=True)
    aseg = np.where(labels >= 2000, 42, np.where(labels >= 1000, 3, labels))
    for filename, data, dtype in (("T1.mgz", intensity, np.uint8), ("aparc+aseg.mgz", labels, np.int32),
                                  ("aseg.mgz", aseg, np.int32)):
        lia, affine = _to_freesurfer_space(data.astype(dtype), phantom.affine)
        nib.save(nib.MGHImage(np.ascontiguousarray(lia), affine), str(mri / filename))
    (stats / "aseg.stats").write_text(aseg_stats_text(labels, intensity, phantom.voxel_mm, name))


def write_sample(bids: Path, fs_root: Path, phantom, order: dict[int, np.ndarray], roi_labels: list[int],
                 fractions: np.ndarray, label: str, session: str | None, rng: np.random.Generator) -> np.ndarray:
    """One image sample: the phantom eroded to the ROIs' kept ``fractions``, its T1w in the BIDS dataset and its
    FreeSurfer subject; returns the kept voxel count of every ROI."""
    counts = kept_counts(np.array([len(order[r]) for r in roi_labels]), fractions)
    sample_labels = erode(phantom.labels, order, dict(zip(roi_labels, counts)))
    intensity = intensity_image(phantom, sample_labels, rng)
    name = f"sub-{label}" + (f"_ses-{session}" if session else "")
    anat = bids / f"sub-{label}" / (f"ses-{session}" if session else "") / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    t1w = nib.Nifti1Image(intensity.astype(np.int16), phantom.affine)
    t1w.header.set_xyzt_units("mm", "sec")
    nib.save(t1w, str(anat / f"{name}_T1w.nii.gz"))
    write_freesurfer_subject(fs_root, name, phantom, sample_labels, intensity, t1w)
    return counts


def write_bids_dataset_files(bids: Path, params: GeneratorParameters, participants: pd.DataFrame) -> None:
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(json.dumps({
        "Name": f"rgenima synthetic cohort ({params.preset}, seed {params.seed})",
        "BIDSVersion": "1.10.0",
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["rgenima synthetic cohort generator"],
        "GeneratedBy": [{"Name": "rgenima.synthetic", "Version": __version__}],
    }, indent=2) + "\n")
    (bids / "README").write_text(
        "Synthetic cohort made by `python -m rgenima_app.synthetic` (rgenima). T1w images are a labelled head\n"
        "phantom; diagnoses follow a known genotype -> liability -> stage model, and planted ROIs shrink with\n"
        "stage. See ../ground_truth.json for every parameter. Not real data.\n")
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False, na_rep="n/a", lineterminator="\n")
    (bids / "participants.json").write_text(json.dumps({
        "participant_id": {"Description": "Participant label"},
        "diagnosis": {"Description": "Clinical stage", "Levels": {
            "NC": "normal cognition", "SMC": "subjective memory complaint",
            "MCI": "mild cognitive impairment", "AD": "Alzheimer's disease"}},
        "age": {"Description": "Age at the first session", "Units": "year"},
        "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
        "genetic_id": {"Description": "Sample ID in the genotype files (genotypes/cohort.fam)"},
    }, indent=2) + "\n")
    (bids / "T1w.json").write_text(json.dumps({
        "Manufacturer": "rgenima synthetic phantom", "MagneticFieldStrength": 3,
        "MRAcquisitionType": "3D"}, indent=2) + "\n")


def generate_cohort(out: Path, params: GeneratorParameters, progress: bool = True, progression=None) -> dict:
    """Write the cohort folder (bids/, freesurfer/, genotypes/, ground_truth.json/.tsv); return the truth.

    ``progression`` (a ``synthetic.progression.ProgressionModel``): a longitudinal cohort; the image
    sampled as above is the baseline session ``ses-1`` (with ``followup_images``, every attended follow-up
    ``ses-<k>`` has one too, drawn from the progression model's own streams), each participant's visits
    are in its sessions file, and the Bayes truth of the progression targets in progression_truth.tsv
    (progression.py). Everything else is drawn exactly as without it."""
    if progression is not None and params.sessions != 1:
        raise ValueError("a longitudinal cohort (--visits) has one image session, the baseline: leave --sessions at 1")
    rng = np.random.default_rng(params.seed)
    table = load_roi_table()
    params.planted_rois = resolve_roi_names(params.planted_rois)
    panel = load_gene_panel(params.genome_build)
    unknown = sorted(set(params.planted_genes) - set(panel["gene"]))
    if unknown:
        raise ValueError(f"planted gene(s) not in the gene panel: {', '.join(unknown)}")

    # genotypes and stages
    snps = make_snps(panel, params.snps_per_gene, rng)
    causal = []
    for gene in params.planted_genes:
        rows = snps.index[snps["gene"] == gene]
        pick = int(rng.choice(rows))
        snps.loc[pick, "freq"] = float(rng.uniform(0.2, 0.45))  # common enough to matter in small cohorts
        causal.append(pick)
    params.qc_failing_snps = plant_qc_failures(snps, rng, protected=set(causal))
    n = params.n_participants
    dosage = draw_genotypes(snps, n, params.missing_call_rate, rng)
    betas = np.full(len(causal), params.causal_beta)
    freqs = snps.loc[causal, "freq"].to_numpy()
    thresholds = stage_thresholds(betas, freqs)
    true_dosage = dosage[:, causal].copy()
    hidden = np.isnan(true_dosage)  # the real genotype behind a missing call still drives the liability
    true_dosage[hidden] = rng.binomial(2, np.broadcast_to(freqs, true_dosage.shape))[hidden]
    liability = (true_dosage - 2 * freqs) @ betas + rng.normal(size=n)
    stage = np.searchsorted(thresholds[1:-1], liability)
    gene_post = genetic_posterior(dosage[:, causal], betas, freqs, thresholds)
    prior = genetic_posterior(rng.binomial(2, freqs, size=(20000, len(freqs))).astype(float), betas, freqs,
                              thresholds).mean(axis=0)

    # participants
    width = max(3, len(str(n)))
    labels = [f"{i + 1:0{width}d}" for i in range(n)]
    genetic_ids = [f"G{i + 1:0{width + 1}d}" for i in range(n)]
    sexes = rng.choice(["M", "F"], size=n).tolist()
    participants = pd.DataFrame({
        "participant_id": [f"sub-{x}" for x in labels], "diagnosis": [STAGES[s] for s in stage],
        "age": np.round(rng.uniform(60, 90, size=n), 1), "sex": sexes, "genetic_id": genetic_ids})

    # images
    phantom = build_phantom(params.grid, params.voxel_mm)
    roi_labels = table["label"].astype(int).tolist()
    order = outermost_first(phantom.labels, roi_labels)
    base = np.array([len(order[label]) for label in roi_labels])
    planted = table["name"].isin(params.planted_rois).to_numpy()
    means = params.kept_fraction_mean - np.outer(params.atrophy, planted.astype(float))  # (stages, 109)
    bids, fs_root = out / "bids", out / "freesurfer"
    write_bids_dataset_files(bids, params, participants)
    sessions = ([None] if progression is None else ["1"]) if params.sessions == 1 else \
        [str(s + 1) for s in range(params.sessions)]
    baseline_fractions = np.zeros((n, len(base)))  # the first session's, which a longitudinal model starts from
    truth_rows = []
    bar = tqdm(total=n * len(sessions), desc="synthetic samples", unit="sample", disable=not progress or None)
    for i in range(n):
        for session in sessions:
            fractions = np.clip(means[stage[i]] + rng.normal(0.0, params.kept_fraction_sd, size=len(base)), 0.3, 1.0)
            counts = write_sample(bids, fs_root, phantom, order, roi_labels, fractions, labels[i], session, rng)
            image_lik = image_likelihood(counts[None, planted], base[planted], means[:, planted],
                                         params.kept_fraction_sd)[0]
            truth_rows.append((f"sub-{labels[i]}", session, STAGES[stage[i]], gene_post[i], image_lik))
            if session == sessions[0]:
                baseline_fractions[i] = fractions
            bar.update()
    bar.close()
    (out / "genotypes").mkdir(parents=True, exist_ok=True)
    coded = np.where(np.isnan(dosage), -1, dosage).astype(np.int8).T  # SNP-major, -1 = missing call
    write_plink(out / "genotypes" / "cohort", snps, coded, genetic_ids, sexes=[1 if s == "M" else 2 for s in sexes])
    extra = None
    if progression is not None:
        progression = replace(progression, stage_atrophy=tuple(params.atrophy))  # severity is relative to its stage's
        baseline_likelihood = np.array([r[4] for r in truth_rows[::len(sessions)]])
        document, trajectories = write_longitudinal(
            out, progression, params.seed, participants, stage, (true_dosage - 2 * freqs) @ betas,
            dosage[:, causal], betas, freqs, thresholds, kept_counts(base, baseline_fractions)[:, planted],
            base[planted], baseline_likelihood)
        extra = {"progression": document}
        if progression.followup_images:  # their own stream: the sessions files and the truth do not change
            image_rng = np.random.default_rng([params.seed, PROGRESSION_STREAM, 2])
            for i, visit, fractions in tqdm(followup_fractions(baseline_fractions, planted, trajectories, progression,
                                                               image_rng),
                                            desc="follow-up images", unit="sample", disable=not progress or None):
                write_sample(bids, fs_root, phantom, order, roi_labels, fractions, labels[i], str(visit + 1), image_rng)
    return write_ground_truth(out, params, snps, causal, betas, thresholds, prior, truth_rows, base, table, extra)


def write_ground_truth(out: Path, params, snps, causal, betas, thresholds, prior, rows, base, table,
                       extra: dict | None = None) -> dict:
    gene_post = np.array([r[3] for r in rows])
    image_lik = np.array([r[4] for r in rows])
    joint = gene_post * image_lik
    joint /= joint.sum(axis=1, keepdims=True)
    image_only = prior * image_lik
    image_only /= image_only.sum(axis=1, keepdims=True)
    truth = pd.DataFrame({"participant_id": [r[0] for r in rows], "session": [r[1] for r in rows],
                          "stage": [r[2] for r in rows]})
    for prefix, post in (("p", joint), ("p_gene", gene_post), ("p_image", image_only)):
        for k, stage in enumerate(STAGES):
            truth[f"{prefix}_{stage}"] = np.round(post[:, k], 6)
    truth.to_csv(out / "ground_truth.tsv", sep="\t", index=False, na_rep="n/a", lineterminator="\n")
    true_index = truth["stage"].map(STAGES.index).to_numpy()

    def accuracy(post):  # expected accuracy of the Bayes classifier, and its accuracy on these labels
        return float(post.max(axis=1).mean()), float((post.argmax(axis=1) == true_index).mean())

    roi_base = dict(zip(table["name"], base.tolist()))
    document = {
        "planted_rois": params.planted_rois,
        "planted_genes": params.planted_genes,
        "planted_snps": [
            {"snp": snps.at[j, "snp"], "gene": snps.at[j, "gene"], "chrom": snps.at[j, "chrom"],
             "pos": int(snps.at[j, "pos"]), "a1": snps.at[j, "a1"], "a2": snps.at[j, "a2"],
             "freq_a1": round(float(snps.at[j, "freq"]), 6), "beta_per_a1": float(b)}
            for j, b in zip(causal, betas)],
        "bayes_optimal_accuracy": accuracy(joint)[0],
        "bayes_optimal_accuracy_empirical": accuracy(joint)[1],
        "bayes_optimal_accuracy_gene_only": accuracy(gene_post)[0],
        "bayes_optimal_accuracy_image_only": accuracy(image_only)[0],
        "stage_counts": {s: int((truth["stage"] == s).sum()) for s in STAGES},
        "model": {
            "liability": "L = sum_j beta_j * (dosage_j - 2 * freq_j) + N(0, 1); dosage counts A1",
            "stage_thresholds": [float(t) for t in thresholds[1:-1]],
            "stage_prior": [float(p) for p in prior],
            "kept_fraction": "clip(mean - atrophy[stage] * planted + N(0, sd), 0.3, 1)",
            "planted_roi_base_voxels": {name: roi_base[name] for name in params.planted_rois},
        },
        "parameters": asdict(params),
        "files": {"bids": "bids", "freesurfer": "freesurfer", "genotypes": "genotypes/cohort.bed",
                  "snps": "snps.tsv", "truth": "ground_truth.tsv"},
        **(extra or {}),
    }
    snps.rename(columns={"freq": "freq_a1"}).to_csv(out / "snps.tsv", sep="\t", index=False, lineterminator="\n")
    (out / "ground_truth.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def main(argv: list[str] | None = None) -> None:
    """The command line ``python -m rgenima_app.synthetic`` (see rgenima_app/synthetic/__main__.py)."""
    @click.command(help=__doc__.split("\n\n")[0] + "\n\nWrites OUT/bids, OUT/freesurfer, OUT/genotypes and OUT/ground_truth.*")
    @click.argument("out", type=click.Path(path_type=Path))
    @click.option("--preset", type=click.Choice(list(PRESETS)), default="tiny", show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--n-participants", type=click.IntRange(min=4), help="Default: the preset's.")
    @click.option("--planted-rois", help=f"Comma-separated ROI names. Default: {','.join(DEFAULT_PLANTED_ROIS)}")
    @click.option("--planted-genes", help=f"Comma-separated genes of the panel. Default: {','.join(DEFAULT_PLANTED_GENES)}")
    @click.option("--sessions", type=click.IntRange(1, 2), default=1, show_default=True)
    @click.option("--visits", type=click.IntRange(1, 10), default=1, show_default=True,
                  help="Clinical visits per participant, 12 months apart (2 or more: a longitudinal cohort with "
                       "sessions files and progression truth; images at the baseline only unless --followup-images).")
    @click.option("--followup-images", is_flag=True,
                  help="With --visits: a T1w (and FreeSurfer subject) at every attended follow-up visit, whose planted "
                       "ROIs shrink with the participant's CDR-SB decline.")
    @click.option("--dropout", type=click.Choice(["informative", "mcar"]), default="informative", show_default=True,
                  help="With --visits: leaving the study depends on the latent CDR-SB (informative) or not (mcar, "
                       "probability 0.10 per interval).")
    @click.option("--overwrite", is_flag=True, help="Replace an existing cohort folder.")
    def command(out, preset, seed, n_participants, planted_rois, planted_genes, sessions, visits, followup_images,
                dropout, overwrite):
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise click.UsageError(f"{out} exists and is not empty; choose another folder or pass --overwrite")
            shutil.rmtree(out)
        spec = PRESETS[preset]
        params = GeneratorParameters(
            preset=preset, seed=seed, n_participants=n_participants or spec["n_participants"], sessions=sessions,
            grid=spec["grid"], voxel_mm=spec["voxel_mm"], snps_per_gene=spec["snps_per_gene"],
            planted_rois=planted_rois.split(",") if planted_rois else list(DEFAULT_PLANTED_ROIS),
            planted_genes=planted_genes.split(",") if planted_genes else list(DEFAULT_PLANTED_GENES))
        if visits > 1 and sessions > 1:
            raise click.UsageError("--visits gives a longitudinal cohort whose image sessions are its visits; "
                                   "leave --sessions at 1 (--followup-images adds images at the follow-ups)")
        if visits == 1 and (followup_images or dropout != "informative"):
            raise click.UsageError("--followup-images and --dropout describe the visits of a longitudinal cohort; "
                                   "give --visits 2 or more")
        progression = ProgressionModel(visits, followup_images=followup_images,
                                       **(MCAR_DROPOUT if dropout == "mcar" else {})) if visits > 1 else None
        try:
            truth = generate_cohort(out, params, progression=progression)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        click.echo(f"wrote {out}: {params.n_participants} participants x {sessions} session(s)"
                   + (f", {visits} visits" if visits > 1 else "") + "; "
                   f"Bayes-optimal accuracy {truth['bayes_optimal_accuracy']:.3f}")

    command.main(args=argv, prog_name="python -m rgenima_app.synthetic")
