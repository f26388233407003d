"""The participant level: one flow for every selected sample, with or without ``--model``.

Stages, each writing one group of outputs per sample or participant (``rgenima_app.provenance``):

1. **imaging**: FreeSurfer (reuse, or recon-all for every sample that needs it in one nipype graph,
   ``--nprocs`` at a time) and ROI extraction -> ``*_desc-rois_dseg.nii.gz`` and ``*_desc-rois_morph.tsv``;
2. **genotypes** (with ``--genotypes``): the participant's panel genotypes -> ``*_desc-panel_genotypes.tsv``,
   on the gene panel (QC'd on the whole file) or, with a model, on the model's SNP panel;
3. **prediction** (with ``--model``, ``workflows/apply.py``): predictions, attention outputs, ``sub-X.html``.

Every input is checked (T1w or reused FreeSurfer subject, genotype files) before anything is computed or
written. A sample whose outputs are complete for these inputs is skipped unless ``--overwrite``
(``SamplePlan.complete``). Samples are independent: one failing sample is logged and the others go on
(unless --stop-on-first-crash); the run then fails naming the failed samples. A participant's genotypes
are written only once its samples succeeded, so that a failed run does not rewrite them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.genetics.participant import participant_genotypes, write_participant_genotypes
from rgenima_app.imaging.freesurfer import check_sample_inputs, fs_subject_name, run_recon_all_batch
from rgenima_app.imaging.participant import ParticipantImaging, process_participant_imaging, write_participant_imaging
from rgenima_app.inference.predict import PredictionInput
from rgenima_app.provenance import OTHER, OutputGroup, gene_panel_source, genotype_group, imaging_group, imaging_key
from rgenima_app.workflows.apply import PredictionStage
from rgenima_app.workflows.samples import SampleGuard, SamplePlan

log = logging.getLogger("rgenima")


def process_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample],
                    participants: pd.DataFrame) -> None:
    model = PredictionStage(config, writer) if config.model is not None else None
    plans = plan_samples(config, writer, samples, participants, model)
    guard = SampleGuard(config.stop_on_first_crash, config.output_dir / "logs", [p.name for p in plans])
    todo = [p for p in plans if config.overwrite or not p.complete()]
    skipped = [p for p in plans if p not in todo]
    check_inputs(config, guard, [p.sample for p in todo if p.sample is not None])
    genotypes = GenotypeStage.read(config, participants, plans, todo, model)
    if model is not None:
        model.check_inputs([p for p in todo if p.name not in set(guard.failed_samples())], genotypes)
        if guard.failed and not config.overwrite and any(p.prediction.state() == OTHER for p in plans):
            guard.finish()  # inputs that failed their checks are reported before any refusal of the outputs
        model.refuse_other_outputs(plans)
    for plan in skipped:
        log.info("%s: outputs complete, skipped", plan.name)
    todo = [p for p in todo if p.name not in set(guard.failed_samples())]
    with_image = [p for p in todo if p.sample is not None]
    for name, why in run_recon_all_batch([(p.subject, p.session, [p.sample.t1w]) for p in with_image],
                                         config.freesurfer, config.work_dir / "freesurfer").items():
        guard.record(name, why)
    failed_now = set(guard.failed_samples())
    items: dict[str, PredictionInput] = {}
    for plan in tqdm([p for p in with_image if p.name not in failed_now], desc="participants", unit="sample",
                     disable=None):
        imaging = guard(plan.name, imaging_stage, config, writer, plan, model)
        if imaging is not None and model is not None:
            items[plan.name] = PredictionInput(plan.subject, plan.session, imaging, genotypes.table(plan.subject),
                                               age=participant_age(participants, plan.subject))
    if model is not None:
        for plan in [p for p in todo if p.sample is None]:
            if genotypes.table(plan.subject) is not None:
                items[plan.name] = PredictionInput(plan.subject, None, None, genotypes.table(plan.subject),
                                                   age=participant_age(participants, plan.subject))
            elif plan.subject in config.participant_label:
                log.warning("sub-%s has neither a T1w image nor a genotype sample: nothing to predict", plan.subject)
        done = model.predict(list(items.values()), {p.name: p for p in plans}, guard)
    failed = guard.failed_subjects()
    guard.failed += genotypes.write(writer, set(failed))
    if model is not None:
        model.write_reports(done, skipped, failed, guard)
    guard.finish()
    log.info("participant level%s finished: %d sample(s)", " with --model" if model else "", len(samples))


def participant_age(participants: pd.DataFrame, subject: str) -> float | None:
    """participants.tsv ``age`` of a participant (None when absent): the out-of-distribution score's age."""
    if "age" not in participants or subject not in participants.index:
        return None
    age = pd.to_numeric(participants.loc[subject, "age"], errors="coerce")
    return float(age) if pd.notna(age) else None


def plan_samples(config: RunConfig, writer: DerivativesWriter, samples: list[T1wSample], participants: pd.DataFrame,
                 model: PredictionStage | None) -> list[SamplePlan]:
    """The stages of every sample (and, with a model that reads genotypes, of every selected participant
    without a T1w image)."""
    no_image = model.subjects_without_image(samples, participants) if model is not None else []
    subjects = sorted({s.subject for s in samples} | set(no_image))
    genotype_groups: dict[str, OutputGroup] = {}
    if config.genetics is not None and (model is None or model.reads_genotypes):
        panel = {"model": model.hash} if model is not None else gene_panel_source(config.genetics)
        genotype_groups = {s: genotype_group(writer, config.genetics, participants, s, panel) for s in subjects}
    plans = [SamplePlan(s.subject, s.session, s, imaging_group(writer, s.subject, s.session, [s.t1w],
                        config.fs_subjects_dir / fs_subject_name(s.subject, s.session)),
                        genotype_groups.get(s.subject)) for s in samples]
    plans += [SamplePlan(label, None, None, None, genotype_groups.get(label)) for label in no_image]
    if model is not None:
        for plan in plans:
            model.plan(plan)
    return plans


def check_inputs(config: RunConfig, guard: SampleGuard, samples: list[T1wSample]) -> None:
    """Each sample's T1w (or the finished FreeSurfer subject it reuses), before any stage starts."""
    for sample in samples:
        guard(sample.name, check_sample_inputs, fs_subject_name(sample.subject, sample.session), [sample.t1w],
              config.fs_subjects_dir, config.fs_no_reconall)


def imaging_stage(config: RunConfig, writer: DerivativesWriter, plan: SamplePlan,
                  model: PredictionStage | None) -> ParticipantImaging:
    """FreeSurfer subject (reused; made by the batch) and ROI extraction of one sample (with the model's ROI
    settings), its ROI derivatives written unless complete."""
    sample, extraction = plan.sample, (model.roi_extraction if model is not None else {})
    imaging = process_participant_imaging(
        sample.subject, sample.session, sample.t1w, config.freesurfer, config.work_dir, roi_size=config.roi_size,
        device=config.device, **{k: extraction[k] for k in ("mode", "normalization") if k in extraction})
    if plan.imaging.key is None:  # recon-all made the FreeSurfer subject just now
        plan.imaging.key = imaging_key([sample.t1w], imaging.freesurfer.subject_dir)
        if model is not None:
            model.key(plan)
    if config.overwrite or not plan.imaging.complete():
        plan.imaging.prepare()
        write_participant_imaging(imaging, writer, sample.subject, sample.session, provenance=plan.imaging.key)
    return imaging


@dataclass
class GenotypeStage:
    """The panel genotypes of the run's participants: read (so the genotype files are checked) before the
    imaging stage, written at the end for the participants whose samples succeeded."""

    config: RunConfig
    groups: dict[str, OutputGroup] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # "sub-X" -> table
    needed: list[str] = field(default_factory=list)                 # participants read
    complete: list[str] = field(default_factory=list)               # participants whose outputs are complete
    with_model: bool = False

    @classmethod
    def read(cls, config: RunConfig, participants: pd.DataFrame, plans: list[SamplePlan], todo: list[SamplePlan],
             model: PredictionStage | None) -> "GenotypeStage":
        """A participant is read when its genotype outputs are not complete (or ``--overwrite``) or, with a
        model, when one of its samples is predicted now. A participant whose predictions are complete and
        were made without genotypes is not read again."""
        groups = {p.subject: p.genotypes for p in plans if p.genotypes is not None}
        stage = cls(config, groups, with_model=model is not None)
        if not groups:
            return stage
        predicted_now = {p.subject for p in todo}
        stage.complete = [s for s in sorted(groups) if not config.overwrite and groups[s].complete()]
        for subject in stage.complete:
            if model is None:
                log.info("sub-%s: genotype outputs complete, skipped", subject)
        if model is None:
            stage.needed = [s for s in sorted(groups) if s not in stage.complete]
        else:
            read_before = {p.subject for p in plans if p not in todo and p.read_genotypes()}
            stage.needed = sorted(predicted_now | {s for s in read_before if s not in stage.complete})
        if stage.needed:
            stage.tables = participant_genotypes(
                config.genotypes, participants, stage.needed, genome_build=config.genome_build,
                panel_path=config.gene_panel, snp_panel=model.bundle.snp_panel if model is not None else None)
        return stage

    def table(self, subject: str) -> pd.DataFrame | None:
        return self.tables.get(f"sub-{subject}")

    def write(self, writer: DerivativesWriter, failed: set[str]) -> list[tuple[str, str]]:
        """Write the tables of the participants not in ``failed`` whose outputs are not complete; returns
        the genotype stage's own failure (no participant of the run has a genotype sample)."""
        config = self.config
        for subject in self.needed:
            group, table = self.groups[subject], self.table(subject)
            if table is None or subject in failed or not (config.overwrite or not group.complete()):
                continue
            if group.state() == OTHER and self.with_model:
                log.info("sub-%s: the panel genotypes were made from other inputs or another SNP panel; "
                         "rewritten on the model's SNP panel", subject)
            group.prepare()
            write_participant_genotypes(writer, subject, table, config.genotypes, config.genome_build,
                                        provenance=group.key)
        missing = [f"sub-{s}" for s in self.needed if self.table(s) is None]
        if not self.with_model and missing and len(missing) == len(self.needed) and not self.complete:
            return [(", ".join(missing), f"no genotype sample in {config.genotypes}: samples are matched by the "
                     "genetic_id column of participants.tsv, else by the participant label; add or fix genetic_id")]
        return []
