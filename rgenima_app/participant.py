"""The participant level: each T1w sample through the imaging and genetics stages, with progress.

Samples are independent: one failing sample is logged with its traceback and the others go on
(unless --stop-on-first-crash); the run then fails with the list of failed samples.
"""
from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter, disk_full, write_error, write_text
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.errors import OutputNotWritableError, ProcessingError, RgenimaError
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.freesurfer import check_sample_inputs, fs_subject_name
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
    """Every input is checked (T1w or reused FreeSurfer subject, genotype files) before anything is
    computed or written; a participant's panel genotypes are written only once its samples succeeded, so
    that a failed run does not rewrite them."""
    guard = SampleGuard(config, [s.name for s in samples])
    if config.model is not None:
        from rgenima_app.inference.participant import predict_samples

        predict_samples(config, writer, samples, participants, guard)
        guard.finish()
        log.info("participant level with --model finished: %d sample(s)", len(samples))
        return
    todo = [s for s in samples if config.overwrite or not sample_imaging_group(config, writer, s).complete()]
    check_inputs(config, guard, todo)
    genotypes = None
    if config.genotypes is not None:
        genotypes = read_panel_genotypes(config, writer, sorted({s.subject for s in samples}), participants)
    for sample in tqdm(samples, desc="participants", unit="sample", disable=None):
        if sample.name not in guard.failed_samples():
            guard(sample.name, process_sample, config, writer, sample, participants)
    if genotypes is not None:
        failed = {name.split("_")[0].removeprefix("sub-") for name in guard.failed_samples()}
        guard.failed += write_panel_genotypes(config, writer, genotypes, failed)
    guard.finish()
    log.info("participant level finished: %d sample(s)", len(samples))


def check_inputs(config: RunConfig, guard: SampleGuard, samples: list[T1wSample]) -> None:
    """Each sample's T1w (or the finished FreeSurfer subject it reuses), before any stage starts."""
    for sample in samples:
        guard(sample.name, check_sample_inputs, fs_subject_name(sample.subject, sample.session), [sample.t1w],
              config.fs_subjects_dir, config.fs_no_reconall)


@dataclass
class PanelGenotypes:
    """The panel genotypes of a plain run: read (so the genotype files are checked) before any stage,
    written at the end for the participants whose samples succeeded."""

    groups: dict[str, OutputGroup]
    tables: dict[str, pd.DataFrame]
    todo: list[str]      # participants whose genotype outputs are not complete
    done: list[str]


def read_panel_genotypes(config: RunConfig, writer: DerivativesWriter, subjects: list[str],
                         participants: pd.DataFrame) -> PanelGenotypes:
    """Panel genotypes of each subject (once per participant, whatever its sessions); participants whose
    genotype outputs are complete (``provenance``) are skipped unless ``--overwrite``."""
    panel = gene_panel_source(config)
    groups = {s: genotype_group(writer, config, participants, s, panel) for s in subjects}
    done = [s for s in subjects if not config.overwrite and groups[s].complete()]
    for subject in done:
        log.info("sub-%s: genotype outputs complete, skipped", subject)
    todo = [s for s in subjects if s not in done]
    tables = (participant_genotypes(config.genotypes, participants, todo, genome_build=config.genome_build,
                                    panel_path=config.gene_panel) if todo else {})
    return PanelGenotypes(groups, tables, todo, done)


def write_panel_genotypes(config: RunConfig, writer: DerivativesWriter, genotypes: PanelGenotypes,
                          failed: set[str]) -> list[tuple[str, str]]:
    """Write the tables of the participants not in ``failed``; returns the genotype stage's failure."""
    for subject in genotypes.todo:
        table = genotypes.tables.get(f"sub-{subject}")
        if table is not None and subject not in failed:
            genotypes.groups[subject].prepare()
            write_participant_genotypes(writer, subject, table, config.genotypes, config.genome_build,
                                        provenance=genotypes.groups[subject].key)
    missing = [f"sub-{s}" for s in genotypes.todo if f"sub-{s}" not in genotypes.tables]
    if missing and len(missing) == len(genotypes.todo) and not genotypes.done:
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
