"""The training cohort: labelled samples, their ROI patches (imaging stage) and panel genotypes.

Imaging is label-free and fold-independent: every sample's ROIs are extracted once (reusing
FreeSurfer subjects and the work-dir ROI cache), and, for the ``llm_wholebrain`` baseline, its
whole-brain volume from the same FreeSurfer subject (work-dir cache too). Genotype QC is fitted per fold on that fold's
training participants only (missingness, MAF, HWE and the A1 frequencies used to impute missing
calls), optionally followed by SNP screening on the same participants (``[genetics] snp_selection``), and
every participant's panel genotypes are then read with that panel.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.inputs import T1wSample
from rgenima_app.errors import MissingInputError, NoDataError, ProcessingError, RgenimaError, UsageError
from rgenima_app.genetics.extract import panel_genotypes, select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.genetics.participant import GenotypeInput
from rgenima_app.genetics.readers import open_genotypes
from rgenima_app.genetics.samples import match_samples
from rgenima_app.genetics.screening import Screening, screen_snps
from rgenima_app.imaging.freesurfer import (
    INTENSITY_CANDIDATES,
    FreeSurferOptions,
    FreeSurferSubject,
    fs_subject_name,
    run_recon_all_batch,
)
from rgenima_app.imaging.participant import process_participant_imaging
from rgenima_app.imaging.wholebrain import cached_wholebrain_volume
from rgenima_app.training.settings import TrainSettings

log = logging.getLogger("rgenima")


@dataclass
class CohortSample:
    """One labelled sample (participant, session) and where its inputs are."""

    name: str                       # sub-01 or sub-01_ses-1
    participant: str                # label without sub-
    session: str | None
    diagnosis: str
    patches: Path | None = None     # (109, S, S, S) float32 .npy in the work dir
    volumes_mm3: np.ndarray | None = None
    freesurfer: FreeSurferSubject | None = None  # the subject the ROIs came from
    wholebrain: Path | None = None  # (S, S, S) float32 .npy in the work dir (llm_wholebrain baseline)
    morph: pd.DataFrame | None = None  # ROI morphometry (the training distribution of the bundle)


@dataclass
class Cohort:
    """Labelled samples with their imaging; ``genetic_ids`` maps participant label -> genotype sample."""

    samples: list[CohortSample]
    genetic_ids: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"name": s.name, "participant": s.participant, "session": s.session,
                              "diagnosis": s.diagnosis} for s in self.samples])

    def labels(self) -> pd.Series:
        """One stage per participant (sessions share it)."""
        table = self.table().drop_duplicates("participant")
        return pd.Series(table["diagnosis"].to_numpy(), index=table["participant"].to_numpy())


def labelled_samples(t1w: list[T1wSample], participants: pd.DataFrame) -> list[CohortSample]:
    """The samples whose participant has a diagnosis; the others are listed in the log."""
    diagnosis = participants["diagnosis"] if "diagnosis" in participants else pd.Series(dtype=object)
    samples, unlabelled = [], []
    for s in t1w:
        stage = diagnosis.get(s.subject)
        if stage is None or pd.isna(stage):
            unlabelled.append(s.name)
            continue
        samples.append(CohortSample(s.name, s.subject, s.session, str(stage)))
    if unlabelled:
        log.warning("%d sample(s) without a diagnosis are left out of training: %s", len(unlabelled),
                    ", ".join(unlabelled[:20]) + (" ..." if len(unlabelled) > 20 else ""))
    if not samples:
        raise MissingInputError("no selected participant has a diagnosis in participants.tsv",
                                hint="training needs the 'diagnosis' column filled (NC, SMC, MCI, AD)")
    return samples


def prepare_imaging(t1w: list[T1wSample], samples: list[CohortSample], settings: TrainSettings, *,
                    freesurfer: FreeSurferOptions, work_dir: Path, roi_size: int, device: str) -> None:
    """FreeSurfer (reuse or recon-all) and ROI patches of every sample; fills ``patches``/``volumes``."""
    by_name = {s.name: s for s in t1w}
    batch = run_recon_all_batch([(by_name[s.name].subject, by_name[s.name].session, [by_name[s.name].t1w])
                                 for s in samples], freesurfer, Path(work_dir) / "freesurfer")
    if batch and freesurfer.stop_on_first_crash:
        raise ProcessingError(f"recon-all failed: {next(iter(batch.values()))}")
    failed = [f"{name}: {why}" for name, why in batch.items()]
    for sample in tqdm(samples, desc="ROI extraction", unit="sample", disable=None):
        source = by_name[sample.name]
        if fs_subject_name(source.subject, source.session) in batch:
            continue
        try:
            imaging = process_participant_imaging(
                source.subject, source.session, source.t1w, freesurfer, work_dir, roi_size=roi_size,
                mode=settings.imaging.mode, normalization=settings.imaging.normalization, device=device)
        except RgenimaError as exc:
            if freesurfer.stop_on_first_crash:
                raise
            failed.append(f"{sample.name}: {str(exc).splitlines()[0]}")
            continue
        sample.patches = imaging.patches_path
        sample.volumes_mm3 = imaging.morph["volume_mm3"].to_numpy(float)
        sample.morph = imaging.morph
        sample.freesurfer = imaging.freesurfer
    if failed:
        raise ProcessingError(f"the imaging stage failed for {len(failed)} training sample(s):\n  " + "\n  ".join(failed),
                              hint="fix or exclude them (--participant-label); finished samples are cached")


def _missing_wholebrain_input(sample: CohortSample) -> str | None:
    """What a sample's whole-brain volume cannot be made without (None: its FreeSurfer volumes are there)."""
    fs = sample.freesurfer
    if fs is None:
        return f"the FreeSurfer subject of {sample.name} (its ROIs were not extracted by this run)"
    if not any((fs.subject_dir / c).is_file() for c in INTENSITY_CANDIDATES):
        return str(fs.subject_dir / INTENSITY_CANDIDATES[0])
    return None if fs.segmentation.is_file() else str(fs.segmentation)


def prepare_wholebrain(samples: list[CohortSample], settings: TrainSettings, work_dir: Path, device: str) -> None:
    """The whole-brain volume of every sample (``llm_wholebrain`` baseline), from the FreeSurfer subject
    ``prepare_imaging`` found, cached in ``WORK/wholebrain``; fills ``wholebrain``."""
    missing = [f"{s.name}: {m}" for s in samples if (m := _missing_wholebrain_input(s))]
    if missing:
        raise UsageError(
            f"the llm_wholebrain baseline has no whole-brain volume for {len(missing)} sample(s), not found:\n  "
            + "\n  ".join(missing[:20]) + ("\n  ..." if len(missing) > 20 else ""),
            hint="it reads each FreeSurfer subject's conformed volume (mri/T1.mgz, else norm.mgz or brain.mgz) and "
                 "mri/aparc+aseg.mgz: restore the subject in --fs-subjects-dir (or remove its folder so that "
                 "recon-all runs again), or take llm_wholebrain out of [baselines] run")
    for sample in tqdm(samples, desc="whole-brain volumes", unit="sample", disable=None):
        sample.wholebrain = cached_wholebrain_volume(sample.freesurfer, work_dir, settings.baselines.wholebrain_size,
                                                     settings.imaging.normalization, device)


def match_genotypes(genotypes: GenotypeInput, participants: pd.DataFrame, cohort: Cohort) -> None:
    """Fill ``cohort.genetic_ids`` from participants.tsv ``genetic_id`` or the labels; log the rest."""
    reader = open_genotypes(genotypes.path)
    labels = sorted({s.participant for s in cohort.samples})
    table = pd.DataFrame({"participant_id": [f"sub-{p}" for p in labels]})
    if "genetic_id" in participants.columns:
        table["genetic_id"] = [participants["genetic_id"].get(p) for p in labels]
    match = match_samples(table, reader.samples)
    match.log(log, source=reader.path.name)
    cohort.genetic_ids = {pid.removeprefix("sub-"): sample for pid, sample in match.matched.items()}
    if not cohort.genetic_ids:
        raise NoDataError(f"no labelled participant has a genotype sample in {genotypes.path}",
                          hint="match participant labels or participants.tsv 'genetic_id' to the sample IDs "
                               f"of the file (e.g. {', '.join(reader.samples[:3])})")


@dataclass
class FoldGenotypes:
    """A fold's genotypes: the model's SNP panel and every participant's table on it, plus the QC'd panel
    before screening (what the classical reference reads) and the screening record (None: all SNPs)."""

    snp_panel: pd.DataFrame                   # the model's panel (screened when [genetics] snp_selection = screen)
    qc_panel: pd.DataFrame                    # every SNP that passed QC
    qc_report: pd.DataFrame
    tables: dict[str, pd.DataFrame]           # participant -> table on snp_panel
    qc_tables: dict[str, pd.DataFrame]        # participant -> table on every QC'd SNP
    screening: Screening | None = None


def fold_genotypes(genotypes: GenotypeInput, settings: TrainSettings, cohort: Cohort,
                   train_participants: list[str], labels: pd.Series | None = None) -> FoldGenotypes:
    """QC (and SNP screening) on this fold's training participants only; every participant's panel table.

    Nothing here reads a validation or test participant's label, and their genotypes only as inputs to
    the panel fitted without them (tests/training/test_screening.py changes them and checks).
    ``labels`` (participant -> class) screen the SNPs; default the stages (a progression target passes the
    strata of its target).
    """
    train_ids = [cohort.genetic_ids[p] for p in train_participants if p in cohort.genetic_ids]
    if not train_ids:
        raise NoDataError("no training participant of this split has genotypes",
                          hint="check the sample IDs of --genotypes against participants.tsv")
    g = settings.genetics
    qc_panel, report = select_panel_snps(genotypes.path, gene_panel(genotypes.gene_panel, genotypes.genome_build),
                                         build=genotypes.genome_build, samples=train_ids,
                                         geno=g.geno, maf=g.maf, hwe=g.hwe)
    log.info("genotype QC on %d training participants: %d of %d panel variants kept", len(train_ids),
             len(qc_panel), len(report))
    qc_tables = panel_genotypes(genotypes.path, qc_panel, cohort.genetic_ids)
    if g.snp_selection == "all":
        return FoldGenotypes(qc_panel, qc_panel, report, qc_tables, qc_tables)
    labels = cohort.labels() if labels is None else labels
    screening = screen_snps(qc_tables, {p: labels[p] for p in train_participants if p in qc_tables}, g.screen_top)
    keep = screening.table["selected"].to_numpy()
    stats = screening.table[["f_stat", "p_value", "rank"]].rename(columns=lambda c: f"screen_{c}")
    snp_panel = pd.concat([qc_panel, stats], axis=1)[keep].reset_index(drop=True)
    tables = {p: t[keep].reset_index(drop=True) for p, t in qc_tables.items()}
    log.info("SNP screening on %d training participants: the %d SNPs most associated with stage kept (of %d), "
             "in %d gene(s): %s", screening.n_participants, len(snp_panel), len(qc_panel),
             snp_panel["gene"].nunique(), ", ".join(pd.unique(snp_panel["gene"])))
    return FoldGenotypes(snp_panel, qc_panel, report, tables, qc_tables, screening)
