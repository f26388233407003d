"""The participant level: each T1w sample through the imaging and genetics stages, with progress.

Samples are independent: one failing sample is logged with its traceback and the others go on
(unless --stop-on-first-crash); the run then fails with the list of failed samples.
"""
from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter, disk_full, write_error, write_text
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.errors import OutputNotWritableError, ProcessingError, RgenimaError
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.freesurfer import fs_subject_name
from rgenima_app.imaging.participant import process_participant_imaging, write_participant_imaging
from rgenima_app.provenance import OutputGroup, gene_panel_source, genotype_group, imaging_group

log = logging.getLogger("rgenima")


class SampleGuard:
    """Runs one sample's step: a failure is logged and collected (or raised with --stop-on-first-crash,
    or when the run has a single sample), so that the other samples go on. An output that cannot be
    written (full disk, read-only, a link out of OUTPUT_DIR) stops the run at once: the next samples
    would fail the same way. ``names`` are the samples of the run; each counts once in the summary,
    however many of its steps failed."""

    def __init__(self, config: RunConfig, names: list[str]):
        self.config, self.names = config, list(names)
        self.failed: list[tuple[str, str]] = []

    def __call__(self, name: str, fn, *args, record: bool = True):
        try:
            return fn(*args)
        except OutputNotWritableError:
            raise
        except RgenimaError as exc:
            if self.config.stop_on_first_crash or (len(self.names) == 1 and record):
                raise
            if record:
                log.error("%s failed: %s", name, exc)
                self.failed.append((name, str(exc).splitlines()[0]))
        except Exception as exc:
            if disk_full(exc):
                raise write_error(Path(exc.filename or self.config.output_dir), exc) from exc
            if self.config.stop_on_first_crash:
                raise
            if record:
                crash = self.config.output_dir / "logs" / f"crash-{name.split(',')[0].split()[0]}.txt"
                write_text(crash, traceback.format_exc())
                log.error("%s failed unexpectedly (%s); traceback in %s", name, exc, crash)
                self.failed.append((name, f"{type(exc).__name__}: {exc}"))
        return None

    def failed_samples(self) -> list[str]:
        """The samples with at least one failed step (a step is named after its sample or samples, e.g.
        ``sub-01_ses-1``, ``sub-01, sub-02`` for a batch, ``sub-01 report`` for a participant's report)."""
        named = {token for step, _ in self.failed for token in re.split(r"[,\s]+", step)}
        return [n for n in self.names if n in named or n.split("_")[0] in named]

    def finish(self) -> None:
        if self.failed:
            listing = "\n  ".join(f"{name}: {why}" for name, why in self.failed)
            count = len(self.failed_samples()) or len(self.failed)
            raise ProcessingError(f"{count} of {len(self.names)} sample(s) failed:\n  {listing}",
                                  hint="see OUTPUT_DIR/logs; rerun the same command to retry them "
                                       "(finished ones are kept)")


def process_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample],
                    participants: pd.DataFrame) -> None:
    guard = SampleGuard(config, [s.name for s in samples])
    if config.model is not None:
        from rgenima_app.inference.participant import predict_samples

        predict_samples(config, writer, samples, participants, guard)
        guard.finish()
        log.info("participant level with --model finished: %d sample(s)", len(samples))
        return
    if config.genotypes is not None:
        guard.failed += genotype_stage(config, writer, sorted({s.subject for s in samples}), participants)
    for sample in tqdm(samples, desc="participants", unit="sample", disable=None):
        guard(sample.name, process_sample, config, writer, sample, participants)
    guard.finish()
    log.info("participant level finished: %d sample(s)", len(samples))


def genotype_stage(config: RunConfig, writer: DerivativesWriter, subjects: list[str],
                   participants: pd.DataFrame) -> list[tuple[str, str]]:
    """Panel genotypes of each subject (once per participant, whatever its sessions); participants whose
    genotype outputs are complete (``provenance``) are skipped unless ``--overwrite``."""
    panel = gene_panel_source(config)
    groups = {s: genotype_group(writer, config, participants, s, panel) for s in subjects}
    done = [s for s in subjects if not config.overwrite and groups[s].complete()]
    for subject in done:
        log.info("sub-%s: genotype outputs complete, skipped", subject)
    subjects = [s for s in subjects if s not in done]
    if not subjects:
        return []
    tables = participant_genotypes(config.genotypes, participants, subjects, genome_build=config.genome_build,
                                   panel_path=config.gene_panel)
    for subject in subjects:
        table = tables.get(f"sub-{subject}")
        if table is not None:
            groups[subject].prepare()
            write_participant_genotypes(writer, subject, table, config.genotypes, config.genome_build,
                                        provenance=groups[subject].key)
    missing = [f"sub-{s}" for s in subjects if f"sub-{s}" not in tables]
    if missing and len(missing) == len(subjects) and not done:
        return [(", ".join(missing), f"no genotype sample in {config.genotypes}: samples are matched by the "
                 "genetic_id column of participants.tsv, else by the participant label; add or fix genetic_id")]
    return []


def sample_imaging_group(config: RunConfig, writer: DerivativesWriter, sample: T1wSample) -> OutputGroup:
    return imaging_group(writer, sample.subject, sample.session, [sample.t1w],
                         config.fs_subjects_dir / fs_subject_name(sample.subject, sample.session))


def process_sample(config: RunConfig, writer: DerivativesWriter, sample: T1wSample,
                   participants: pd.DataFrame) -> None:
    """FreeSurfer (reuse or recon-all) and ROI extraction of one sample, written as derivatives; skipped
    when its outputs are complete (``provenance``) unless ``--overwrite``."""
    if not config.overwrite and sample_imaging_group(config, writer, sample).complete():
        log.info("%s: outputs complete, skipped", sample.name)
        return
    imaging = process_participant_imaging(
        sample.subject, sample.session, sample.t1w, config.fs_subjects_dir, config.work_dir,
        roi_size=config.roi_size, device=config.device, fs_license_file=config.fs_license_file,
        fs_no_reconall=config.fs_no_reconall, omp_nthreads=config.omp_nthreads, nprocs=config.nprocs,
        mem_gb=config.mem_mb / 1024 if config.mem_mb else None, use_plugin=config.use_plugin,
        crash_dir=config.output_dir / "logs", stop_on_first_crash=config.stop_on_first_crash)
    group = sample_imaging_group(config, writer, sample)  # the FreeSurfer subject exists now
    group.prepare()
    write_participant_imaging(imaging, writer, sample.subject, sample.session, provenance=group.key)
