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
naming them. A rerun skips the samples whose outputs are complete for this bundle and these inputs
(``rgenima_app.provenance``), and computes the others, reusing the FreeSurfer subjects and the ROI cache;
``--overwrite`` recomputes all of them. Predictions made by another bundle of the same name, or from other
inputs, are refused (exit 73) unless ``--overwrite``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter, sidecar_path
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.errors import OutputNotWritableError, UsageError
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.freesurfer import fs_subject_name
from rgenima_app.imaging.participant import process_participant_imaging, write_participant_imaging
from rgenima_app.imaging.rois import resolve_device
from rgenima_app.inference.outputs import TABLES, output_paths, write_prediction
from rgenima_app.inference.predict import PredictionInput, bundle_hash, predict
from rgenima_app.models.bundle import LoadedBundle, load_bundle, read_bundle_metadata
from rgenima_app.participant import check_inputs
from rgenima_app.provenance import (OTHER, OutputGroup, genotype_group, imaging_group, imaging_key, make_key,
                                   read_sidecar)

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


@dataclass
class SamplePlan:
    """What the run does for one sample (or one participant without image): its output groups."""

    subject: str
    session: str | None
    sample: T1wSample | None          # None: a participant without T1w, predicted from genotypes only
    imaging: OutputGroup | None       # ROI derivatives (None without image)
    genotypes: OutputGroup | None     # panel genotypes (None when the model reads none)
    prediction: OutputGroup

    @property
    def name(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    def complete(self) -> bool:
        """Prediction and ROI derivatives complete (the participant's genotype table is checked apart:
        a plain participant run rewrites it on the gene panel, which changes no prediction)."""
        return self.prediction.complete() and (self.imaging is None or self.imaging.complete())

    def read_genotypes(self) -> bool:
        """Whether the complete prediction was made with a genotype table (a genotype sample was found)."""
        return read_sidecar(sidecar_path(self.prediction.files[0])).get("PanelSNPs") is not None


def _plan(config: RunConfig, writer: DerivativesWriter, bundle: LoadedBundle, model_hash: str, subject: str,
          session: str | None, sample: T1wSample | None, genotype_groups: dict[str, OutputGroup]) -> SamplePlan:
    imaging = None
    if sample is not None:
        imaging = imaging_group(writer, subject, session, [sample.t1w],
                                config.fs_subjects_dir / fs_subject_name(subject, session))
    genotypes = genotype_groups.get(subject)
    paths = output_paths(writer, subject, session, bundle.name)
    files = [paths[kind] for kind in TABLES]
    if sample is not None and bundle.model.image_encoder is not None:
        files.append(paths["statmap"])
    name = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    plan = SamplePlan(subject, session, sample, imaging, genotypes, OutputGroup(name, files, None))
    _key_prediction(plan, model_hash)
    return plan


def _key_prediction(plan: SamplePlan, model_hash: str) -> None:
    """The prediction's key: the model, and the keys of the ROI derivatives and genotypes it reads."""
    image_key = plan.imaging.key if plan.imaging is not None else None
    if plan.imaging is not None and image_key is None:
        plan.prediction.key = None  # the FreeSurfer subject is not there yet
        return
    plan.prediction.key = make_key("prediction", model=model_hash, rois=image_key,
                                   genotypes=plan.genotypes.key if plan.genotypes is not None else None)


def _refuse_other_outputs(config: RunConfig, bundle: LoadedBundle, model_hash: str, plans: list[SamplePlan]) -> None:
    """Predictions of another bundle (same model name) or from other inputs are never replaced silently."""
    other = [p for p in plans if p.prediction.state() == OTHER]
    if not other or config.overwrite:
        return
    lines = []
    for plan in other:
        sidecar = sidecar_path(plan.prediction.files[0])
        recorded = read_sidecar(sidecar).get("ModelHash")
        why = (f"made by another bundle named {bundle.name} (ModelHash {str(recorded)[:12]}..., this one "
               f"{model_hash[:12]}...)" if isinstance(recorded, str) and recorded != model_hash
               else "made from other inputs or options, or by another rgenima version")
        lines.append(f"{plan.name}: {sidecar.relative_to(config.output_dir)} {why}")
    more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
    raise OutputNotWritableError(
        f"OUTPUT_DIR {config.output_dir} holds predictions of model {bundle.name} that this run would replace "
        f"({len(other)} sample(s)):\n  " + "\n  ".join(lines[:10]) + more,
        hint="rerun with --overwrite to recompute and replace them, or write to another OUTPUT_DIR")


def predict_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample],
                    participants: pd.DataFrame, guard) -> None:
    """The ``--model`` participant level. ``guard(name, fn, *args)`` (``participant.SampleGuard``) runs
    one sample's step with the participant level's failure handling; it returns None when the step failed.

    Samples whose outputs are complete for this model and these inputs (``provenance``) are skipped
    unless ``--overwrite``; predictions made by another bundle or from other inputs are refused before
    any work unless ``--overwrite``."""
    bundle = load_model(config)
    settings = bundle.roi_extraction
    model_hash = bundle_hash(bundle.path)
    no_image = subjects_without_image(config, samples, participants)
    subjects = sorted({s.subject for s in samples} | set(no_image))
    if config.genotypes is None and bundle.snp_panel is not None:
        log.warning("the model %s reads genotypes but no --genotypes was given: every participant is predicted "
                    "from the T1w image only", bundle.name)
    if config.genotypes is not None and bundle.snp_panel is None:
        log.warning("the model %s has no SNP panel: --genotypes %s is not used for prediction",
                    bundle.name, config.genotypes)
    use_genotypes = config.genotypes is not None and bundle.snp_panel is not None
    genotype_groups = ({s: genotype_group(writer, config, participants, s, {"model": model_hash}) for s in subjects}
                       if use_genotypes else {})
    plans = [_plan(config, writer, bundle, model_hash, s.subject, s.session, s, genotype_groups) for s in samples]
    if use_genotypes:
        plans += [_plan(config, writer, bundle, model_hash, label, None, None, genotype_groups) for label in no_image]
    guard.names += [p.name for p in plans if p.sample is None]  # predicted from genotypes only
    todo = [p for p in plans if config.overwrite or not p.complete()]
    skipped = [p for p in plans if p not in todo]
    # every input first (T1w or FreeSurfer subject, genotype files), then what to do about the outputs
    check_inputs(config, guard, [p.sample for p in todo if p.sample is not None])
    tables: dict[str, pd.DataFrame] = {}
    needed = sorted({p.subject for p in todo} | {p.subject for p in skipped if p.genotypes is not None
                                                 and not p.genotypes.complete() and p.read_genotypes()})
    if use_genotypes and needed:
        tables = participant_genotypes(config.genotypes, participants, needed, genome_build=config.genome_build,
                                       snp_panel=bundle.snp_panel)
    if guard.failed and not config.overwrite and any(p.prediction.state() == OTHER for p in plans):
        guard.finish()  # inputs that failed their checks are reported before any refusal of the outputs
    _refuse_other_outputs(config, bundle, model_hash, plans)
    for plan in skipped:
        log.info("%s: outputs complete, skipped", plan.name)
    failed_checks = set(guard.failed_samples())
    todo = [p for p in todo if p.name not in failed_checks]
    items: list[PredictionInput] = []
    by_name: dict[str, SamplePlan] = {}
    for plan in tqdm([p for p in todo if p.sample is not None], desc="participants", unit="sample", disable=None):
        imaging = guard(plan.name, _imaging, config, writer, plan, settings, model_hash)
        if imaging is not None:
            items.append(PredictionInput(plan.subject, plan.session, imaging, tables.get(f"sub-{plan.subject}")))
            by_name[plan.name] = plan
    for plan in [p for p in todo if p.sample is None]:
        if f"sub-{plan.subject}" in tables:
            items.append(PredictionInput(plan.subject, None, None, tables[f"sub-{plan.subject}"]))
            by_name[plan.name] = plan
        elif plan.subject in config.participant_label:
            log.warning("sub-%s has neither a T1w image nor a genotype sample: nothing to predict", plan.subject)
    batch_size = 4 if resolve_device(config.device).type == "cuda" else 1
    done: set[str] = set()
    for start in tqdm(range(0, len(items), batch_size), desc="prediction", unit="batch", disable=None):
        batch = items[start:start + batch_size]
        names = ", ".join(i.name for i in batch)
        outcome = (guard(names, _predict_batch, config, writer, bundle, batch, model_hash, by_name, record=False)
                   if len(batch) > 1 else None)
        if outcome is None:  # one at a time: a failing sample does not take its batch with it
            outcome = [item for item in batch if guard(item.name, _predict_batch, config, writer, bundle, [item],
                                                       model_hash, by_name)]
        done |= {item.subject for item in outcome}
    failed = {name.split("_")[0].removeprefix("sub-"): [] for name, _ in guard.failed}
    for name, why in guard.failed:
        failed[name.split("_")[0].removeprefix("sub-")].append(f"{name}: {why}")
    _write_genotypes(config, writer, tables, needed, genotype_groups, set(failed))
    stale = {p.subject for p in skipped if not _report_is_current(writer, p.subject, bundle.name)}
    for subject in tqdm(sorted(done | set(failed) | stale), desc="reports", unit="participant", disable=None):
        guard(f"sub-{subject} report", _report, writer, subject, bundle, failed.get(subject, []))


def _write_genotypes(config: RunConfig, writer: DerivativesWriter, tables: dict[str, pd.DataFrame],
                     subjects: list[str], groups: dict[str, OutputGroup], failed: set[str]) -> None:
    """The panel genotypes on the model's SNP panel, written last and only for participants without a
    failure, so that a failed run does not rewrite those of an earlier run."""
    for subject in subjects:
        group = groups.get(subject)
        if group is None or f"sub-{subject}" not in tables or subject in failed:
            continue
        if config.overwrite or not group.complete():
            if group.state() == OTHER:
                log.info("sub-%s: the panel genotypes were made from other inputs or another SNP panel; "
                         "rewritten on the model's SNP panel", subject)
            group.prepare()
            write_participant_genotypes(writer, subject, tables[f"sub-{subject}"], config.genotypes,
                                        config.genome_build, provenance=group.key)


def _report_is_current(writer: DerivativesWriter, subject: str, model: str) -> bool:
    """``sub-X.html`` exists, is of this model and is newer than the participant's predictions."""
    report = writer.root / f"sub-{subject}.html"
    try:
        text, written = report.read_text(encoding="utf-8", errors="replace"), report.stat().st_mtime_ns
    except OSError:
        return False
    predictions = list((writer.root / f"sub-{subject}").glob(f"**/sub-{subject}*_desc-{model}_predictions.tsv"))
    return (f"<title>rgenima report: sub-{subject} · {model}</title>" in text
            and all(p.stat().st_mtime_ns <= written for p in predictions))


def _imaging(config: RunConfig, writer: DerivativesWriter, plan: SamplePlan, settings: dict, model_hash: str):
    sample = plan.sample
    imaging = process_participant_imaging(
        sample.subject, sample.session, sample.t1w, config.fs_subjects_dir, config.work_dir,
        roi_size=config.roi_size, mode=settings["mode"], normalization=settings["normalization"],
        device=config.device, fs_license_file=config.fs_license_file, fs_no_reconall=config.fs_no_reconall,
        omp_nthreads=config.omp_nthreads, nprocs=config.nprocs,
        mem_gb=config.mem_mb / 1024 if config.mem_mb else None, use_plugin=config.use_plugin,
        crash_dir=config.output_dir / "logs", stop_on_first_crash=config.stop_on_first_crash)
    if plan.imaging.key is None:  # recon-all made the FreeSurfer subject just now
        plan.imaging.key = imaging_key([sample.t1w], imaging.freesurfer.subject_dir)
        _key_prediction(plan, model_hash)
    if config.overwrite or not plan.imaging.complete():
        plan.imaging.prepare()
        write_participant_imaging(imaging, writer, sample.subject, sample.session, provenance=plan.imaging.key)
    return imaging


def _predict_batch(config: RunConfig, writer: DerivativesWriter, bundle: LoadedBundle,
                   batch: list[PredictionInput], model_hash: str, plans: dict[str, SamplePlan]) -> list[PredictionInput]:
    for prediction in predict(bundle, batch, batch_size=len(batch), progress=False):
        group = plans[prediction.input.name].prediction
        if group.state() == OTHER and not config.overwrite:
            _refuse_other_outputs(config, bundle, model_hash, [plans[prediction.input.name]])
        group.prepare()
        write_prediction(writer, prediction, bundle, model_hash, config.genotypes, provenance=group.key)
        log.info("%s: %s (p=%.3f) from %s", prediction.input.name, prediction.label,
                 prediction.probabilities.max(), " + ".join(prediction.modalities))
    return batch


def _report(writer: DerivativesWriter, subject: str, bundle: LoadedBundle, errors: list[str]) -> Path:
    from rgenima_app.reports.subject import render_subject_report

    return render_subject_report(writer, subject, bundle, errors=errors)
