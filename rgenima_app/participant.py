"""The participant level: each T1w sample through the imaging and genetics stages, with progress.

Samples are independent: one failing sample is logged with its traceback and the others go on
(unless --stop-on-first-crash); the run then fails with the list of failed samples.
"""
from __future__ import annotations

import logging
import traceback

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter, write_text
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.errors import ProcessingError, RgenimaError
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.participant import process_participant_imaging, write_participant_imaging

log = logging.getLogger("rgenima")


def process_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample],
                    participants: pd.DataFrame) -> None:
    failed: list[tuple[str, str]] = []
    if config.genotypes is not None:
        failed += genotype_stage(config, writer, sorted({s.subject for s in samples}), participants)
    for sample in tqdm(samples, desc="participants", unit="sample", disable=None):
        try:
            process_sample(config, writer, sample, participants)
        except RgenimaError as exc:
            if config.stop_on_first_crash or len(samples) == 1:
                raise
            log.error("%s failed: %s", sample.name, exc)
            failed.append((sample.name, str(exc).splitlines()[0]))
        except Exception as exc:
            if config.stop_on_first_crash:
                raise
            crash = config.output_dir / "logs" / f"crash-{sample.name}.txt"
            write_text(crash, traceback.format_exc())
            log.error("%s failed unexpectedly (%s); traceback in %s", sample.name, exc, crash)
            failed.append((sample.name, f"{type(exc).__name__}: {exc}"))
    if failed:
        listing = "\n  ".join(f"{name}: {why}" for name, why in failed)
        raise ProcessingError(f"{len(failed)} of {len(samples)} sample(s) failed:\n  {listing}",
                              hint="see OUTPUT_DIR/logs; rerun the same command to retry them (finished ones are kept)")
    log.info("participant level finished: %d sample(s)", len(samples))


def genotype_stage(config: RunConfig, writer: DerivativesWriter, subjects: list[str],
                   participants: pd.DataFrame) -> list[tuple[str, str]]:
    """Panel genotypes of each subject (once per participant, whatever its sessions)."""
    tables = participant_genotypes(config.genotypes, participants, subjects, genome_build=config.genome_build,
                                   panel_path=config.gene_panel)
    for subject in subjects:
        table = tables.get(f"sub-{subject}")
        if table is not None:
            write_participant_genotypes(writer, subject, table, config.genotypes, config.genome_build)
    missing = [f"sub-{s}" for s in subjects if f"sub-{s}" not in tables]
    if missing and len(missing) == len(subjects):
        return [(", ".join(missing), f"no genotype sample in {config.genotypes}")]
    return []


def process_sample(config: RunConfig, writer: DerivativesWriter, sample: T1wSample,
                   participants: pd.DataFrame) -> None:
    """FreeSurfer (reuse or recon-all) and ROI extraction of one sample, written as derivatives."""
    imaging = process_participant_imaging(
        sample.subject, sample.session, sample.t1w, config.fs_subjects_dir, config.work_dir,
        roi_size=config.roi_size, device=config.device, fs_license_file=config.fs_license_file,
        fs_no_reconall=config.fs_no_reconall, omp_nthreads=config.omp_nthreads, nprocs=config.nprocs,
        mem_gb=config.mem_mb / 1024 if config.mem_mb else None, use_plugin=config.use_plugin,
        crash_dir=config.output_dir / "logs", stop_on_first_crash=config.stop_on_first_crash)
    write_participant_imaging(imaging, writer, sample.subject, sample.session)
