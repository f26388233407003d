"""The participant level with ``--model``: imaging and genotypes as without a model, then prediction,
attention outputs and the subject report of every selected sample.

1. The bundle is loaded once (its ROI size must equal ``--roi-size``; its ROI mode and normalisation
   are used for extraction).
2. With ``--genotypes``, each participant's panel genotypes are read on the bundle's SNP panel (missing
   calls and absent SNPs imputed with the training A1 frequencies) and written as usual.
3. Each T1w sample goes through FreeSurfer reuse / ROI extraction (work-dir cache) and its imaging
   derivatives are written. Selected participants with genotypes but no T1w image at all are
   predicted from genotypes only; participants without a genotype sample from the image only.
4. Samples are predicted in batches; each sample's outputs and ``sub-X.html`` are written.

One failing sample does not stop the others (unless ``--stop-on-first-crash``); the run then fails
naming them. A rerun reuses the FreeSurfer subjects and the ROI cache and predicts again.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.errors import UsageError
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.participant import process_participant_imaging, write_participant_imaging
from rgenima_app.imaging.rois import resolve_device
from rgenima_app.inference.outputs import write_prediction
from rgenima_app.inference.predict import PredictionInput, bundle_hash, predict
from rgenima_app.models.bundle import LoadedBundle, load_bundle, read_bundle_metadata

log = logging.getLogger("rgenima")


def check_model(config: RunConfig) -> dict:
    """Refuse, before any work, a bundle that cannot serve this run (exit 2 / 66); returns its metadata."""
    try:
        metadata = read_bundle_metadata(config.model, expected_roi_size=config.roi_size)
    except UsageError as exc:
        size = read_bundle_metadata(config.model).get("rois", {}).get("size")
        raise UsageError(f"--roi-size {config.roi_size} differs from the ROI size {size} that the model "
                         f"--model {config.model} was trained with",
                         f"run with --roi-size {size} (patches must be extracted as in training)") from exc
    encoder = (metadata.get("image_encoder") or {}).get("kind")
    if encoder not in (None, "rit"):
        raise UsageError(f"--model {config.model} is a {encoder} baseline bundle; participant prediction and "
                         "attention need an R-GenIMA bundle with the ROI encoder (RiT)",
                         "give the bundle of the R-GenIMA model (models/<name>), not a baseline's")
    return metadata


def load_model(config: RunConfig) -> LoadedBundle:
    device = resolve_device(config.device)
    bundle = load_bundle(config.model, expected_roi_size=config.roi_size, device=str(device))
    log.info("model %s (%s) loaded from %s on %s", bundle.name, bundle.metadata["llm"].get("model_type"),
             bundle.path, device)
    return bundle


def subjects_without_image(config: RunConfig, samples: list[T1wSample], participants: pd.DataFrame) -> list[str]:
    """Selected participants (``--participant-label``, else participants.tsv) with no T1w image at all
    in the dataset: candidates for a genotype-only prediction."""
    candidates = config.participant_label or [str(p) for p in participants.index]
    with_image = {s.subject for s in samples}
    return [label for label in candidates if label not in with_image
            and not any((config.bids_dir / f"sub-{label}").glob("**/anat/*_T1w.nii*"))]


def predict_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample],
                    participants: pd.DataFrame, guard) -> None:
    """The ``--model`` participant level. ``guard(name, fn, *args)`` (``participant.SampleGuard``) runs
    one sample's step with the participant level's failure handling; it returns None when the step failed."""
    bundle = load_model(config)
    settings = bundle.roi_extraction
    tables: dict[str, pd.DataFrame] = {}
    no_image = subjects_without_image(config, samples, participants)
    subjects = sorted({s.subject for s in samples} | set(no_image))
    if config.genotypes is None and bundle.snp_panel is not None:
        log.warning("the model %s reads genotypes but no --genotypes was given: every participant is predicted "
                    "from the T1w image only", bundle.name)
    if config.genotypes is not None:
        if bundle.snp_panel is None:
            log.warning("the model %s has no SNP panel: --genotypes %s is not used for prediction",
                        bundle.name, config.genotypes)
        else:
            tables = participant_genotypes(config.genotypes, participants, subjects, genome_build=config.genome_build,
                                           snp_panel=bundle.snp_panel)
            for subject in subjects:
                if f"sub-{subject}" in tables:
                    write_participant_genotypes(writer, subject, tables[f"sub-{subject}"], config.genotypes,
                                                config.genome_build)
    items: list[PredictionInput] = []
    for sample in tqdm(samples, desc="participants", unit="sample", disable=None):
        imaging = guard(sample.name, _imaging, config, writer, sample, settings)
        if imaging is not None:
            items.append(PredictionInput(sample.subject, sample.session, imaging, tables.get(f"sub-{sample.subject}")))
    for label in no_image:
        if f"sub-{label}" in tables:
            items.append(PredictionInput(label, None, None, tables[f"sub-{label}"]))
        elif label in config.participant_label:
            log.warning("sub-%s has neither a T1w image nor a genotype sample: nothing to predict", label)
    if not items and not guard.failed:
        return
    model_hash = bundle_hash(bundle.path)
    batch_size = 4 if resolve_device(config.device).type == "cuda" else 1
    done: set[str] = set()
    for start in tqdm(range(0, len(items), batch_size), desc="prediction", unit="batch", disable=None):
        batch = items[start:start + batch_size]
        names = ", ".join(i.name for i in batch)
        outcome = (guard(names, _predict_batch, config, writer, bundle, batch, model_hash, record=False)
                   if len(batch) > 1 else None)
        if outcome is None:  # one at a time: a failing sample does not take its batch with it
            outcome = [item for item in batch if guard(item.name, _predict_batch, config, writer, bundle, [item],
                                                       model_hash)]
        done |= {item.subject for item in outcome}
    failed = {name.split("_")[0].removeprefix("sub-"): [] for name, _ in guard.failed}
    for name, why in guard.failed:
        failed[name.split("_")[0].removeprefix("sub-")].append(f"{name}: {why}")
    for subject in tqdm(sorted(done | set(failed)), desc="reports", unit="participant", disable=None):
        guard(f"sub-{subject} report", _report, writer, subject, bundle, failed.get(subject, []))


def _imaging(config: RunConfig, writer: DerivativesWriter, sample: T1wSample, settings: dict):
    imaging = process_participant_imaging(
        sample.subject, sample.session, sample.t1w, config.fs_subjects_dir, config.work_dir,
        roi_size=config.roi_size, mode=settings["mode"], normalization=settings["normalization"],
        device=config.device, fs_license_file=config.fs_license_file, fs_no_reconall=config.fs_no_reconall,
        omp_nthreads=config.omp_nthreads, nprocs=config.nprocs,
        mem_gb=config.mem_mb / 1024 if config.mem_mb else None, use_plugin=config.use_plugin,
        crash_dir=config.output_dir / "logs", stop_on_first_crash=config.stop_on_first_crash)
    write_participant_imaging(imaging, writer, sample.subject, sample.session)
    return imaging


def _predict_batch(config: RunConfig, writer: DerivativesWriter, bundle: LoadedBundle,
                   batch: list[PredictionInput], model_hash: str) -> list[PredictionInput]:
    for prediction in predict(bundle, batch, batch_size=len(batch), progress=False):
        write_prediction(writer, prediction, bundle, model_hash, config.genotypes)
        log.info("%s: %s (p=%.3f) from %s", prediction.input.name, prediction.label,
                 prediction.probabilities.max(), " + ".join(prediction.modalities))
    return batch


def _report(writer: DerivativesWriter, subject: str, bundle: LoadedBundle, errors: list[str]) -> Path:
    from rgenima_app.reports.subject import render_subject_report

    return render_subject_report(writer, subject, bundle, errors=errors)
