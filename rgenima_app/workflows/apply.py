"""The prediction stage of the participant level (``--model``): the bundle, checked and loaded once;
each sample's prediction outputs planned, refused when another bundle made them, computed in batches;
then every participant's ``sub-X.html`` report.

The participant flow (``workflows/participant.py``) runs the imaging and genotype stages as without a
model (ROI extraction with the bundle's ROI mode and normalisation; genotypes on the bundle's SNP panel,
missing calls and absent SNPs imputed with the training A1 frequencies), then hands the inputs here.
Selected participants with genotypes but no T1w image at all are predicted from genotypes only;
participants without a genotype sample (or with fewer than ``--min-panel-coverage`` of the model's panel
SNPs observed) from the image only. Before anything is computed, ``check_inputs`` applies the one rule for
a missing modality (docs/inference.md): a sample whose input configuration the model was not validated on
is refused, naming it, unless ``--allow-unvalidated-inputs``.

A rerun skips the samples whose outputs are complete for this bundle and these inputs
(``rgenima_app.provenance``); ``--overwrite`` recomputes them. Predictions made by another bundle of the
same name, or from other inputs or options, are refused (exit 73) unless ``--overwrite``. The attribution
method (``--attribution``, with integrated gradients' steps and reference) is one of those options: it is
part of the prediction's provenance key, so outputs of another method are never replaced silently.
"""
from __future__ import annotations

import logging

import pandas as pd
from tqdm import tqdm

from rgenima_app.bids.derivatives import DerivativesWriter, sidecar_path
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.config import RunConfig
from rgenima_app.environment import resolve_device
from rgenima_app.errors import OutputNotWritableError
from rgenima_app.inference.outputs import STATMAPS, TABLES, output_paths, write_prediction
from rgenima_app.inference.methods import DEFAULT_METHOD, REFERENCE_MEAN
from rgenima_app.inference.predict import (PredictionInput, attribution_settings, bundle_hash, input_configuration,
                                           predict, refuse_unvalidated)
from rgenima_app.models.bundle import load_bundle
from rgenima_app.provenance import OTHER, OutputGroup, make_key, read_sidecar
from rgenima_app.reports.subject import render_subject_report
from rgenima_app.workflows.samples import SampleGuard, SamplePlan

log = logging.getLogger("rgenima")


#: What each method costs per sample beside rollout's one forward pass (said in the log when a run starts).
_COSTS = {
    "input_gradient": "one forward and one backward pass per sample",
    "attention_gradient": "one forward and one backward pass per sample with eager attention, keeping every "
                          "layer's per-head attention and its gradient (memory grows with the prompt length squared)",
}


def log_attribution(settings, model: str) -> None:
    """Say which attribution the run writes and, for the gradient methods, that they are slower than rollout."""
    log.info("attribution: %s, written to the attention outputs of model %s (AttributionMethod in their sidecars)",
             settings.describe(), model)
    if settings.method == "integrated_gradients":
        log.warning("--attribution integrated_gradients: %d forward and backward passes per sample (the path from "
                    "the reference input), where rollout needs one forward pass: the prediction stage is about that "
                    "many times slower", settings.steps)
        if settings.reference != REFERENCE_MEAN:
            log.warning("the model %s stores no mean RiT token per ROI (a bundle written before rgenima stored "
                        "one): integrated gradients start from zero image features", model)
    elif settings.method in _COSTS:
        log.warning("--attribution %s: %s, where rollout needs one forward pass: the prediction stage is slower",
                    settings.method, _COSTS[settings.method])


class PredictionStage:
    """The bundle of ``--model``, loaded once, and what the participant flow asks of it."""

    def __init__(self, config: RunConfig, writer: DerivativesWriter):
        self.config, self.writer = config, writer
        self.device = resolve_device(config.device)
        self.bundle = load_bundle(config.model, expected_roi_size=config.roi_size, device=str(self.device))
        self.hash = bundle_hash(self.bundle.path)
        log.info("model %s (%s) loaded from %s on %s", self.bundle.name,
                 self.bundle.metadata["llm"].get("model_type"), self.bundle.path, self.device)
        chance = self.bundle.chance
        (log.info if chance["state"] == "beats" else log.warning)("model %s: %s", self.bundle.name, chance["message"])
        log.info("model %s: validated input configurations %s%s", self.bundle.name,
                 ", ".join(self.bundle.validated_inputs),
                 "; others allowed by --allow-unvalidated-inputs" if config.allow_unvalidated_inputs else "")
        if self.bundle.distribution is None:
            log.warning("the model %s stores no training distribution (a bundle written before rgenima recorded "
                        "one): out-of-distribution scores are n/a (ood_score, ood_flag)", self.bundle.name)
        if config.genotypes is None and self.bundle.snp_panel is not None:
            log.warning("the model %s reads genotypes but no --genotypes was given: every participant's genotypes "
                        "are missing", self.bundle.name)
        if config.genotypes is not None and self.bundle.snp_panel is None:
            log.warning("the model %s has no SNP panel: --genotypes %s is not used for prediction",
                        self.bundle.name, config.genotypes)
        self.attribution = attribution_settings(self.bundle, config.attribution or DEFAULT_METHOD,
                                                config.attribution_steps)
        log_attribution(self.attribution, self.bundle.name)

    @property
    def reads_genotypes(self) -> bool:
        return self.config.genotypes is not None and self.bundle.snp_panel is not None

    @property
    def roi_extraction(self) -> dict:
        """The ROI mode and normalisation the model was trained with."""
        return self.bundle.roi_extraction

    def subjects_without_image(self, samples: list[T1wSample], participants: pd.DataFrame) -> list[str]:
        """Selected participants (``--participant-label``, else participants.tsv) with no T1w image at all
        in the dataset: predicted from genotypes only when the model reads genotypes."""
        if not self.reads_genotypes:
            return []
        candidates = self.config.participant_label or [str(p) for p in participants.index]
        with_image = {s.subject for s in samples}
        return [label for label in candidates if label not in with_image
                and not any((self.config.bids_dir / f"sub-{label}").glob("**/anat/*_T1w.nii*"))]

    def plan(self, plan: SamplePlan) -> None:
        """Add the prediction outputs (and their provenance key) to a sample's plan."""
        paths = output_paths(self.writer, plan.subject, plan.session, self.bundle.name)
        files = [paths[kind] for kind in TABLES]
        if plan.sample is not None and self.bundle.model.image_encoder is not None:
            files += [paths[kind] for kind in STATMAPS]
        plan.prediction = OutputGroup(plan.name, files, None)
        self.key(plan)

    def key(self, plan: SamplePlan) -> None:
        """The prediction's key: the model, and the keys of the ROI derivatives and genotypes it reads."""
        if plan.imaging is not None and plan.imaging.key is None:
            plan.prediction.key = None  # the FreeSurfer subject is not there yet
            return
        plan.prediction.key = make_key(
            "prediction", model=self.hash, rois=plan.imaging.key if plan.imaging is not None else None,
            genotypes=plan.genotypes.key if plan.genotypes is not None else None,
            min_panel_coverage=self.config.min_panel_coverage, attribution=self.attribution.key())

    def check_inputs(self, plans: list[SamplePlan], genotypes) -> None:
        """The one rule for a missing modality, for every sample to predict, before anything is computed:
        refused (a usage error naming each sample and its input configuration) when the model was not
        validated on it, unless --allow-unvalidated-inputs. ``genotypes``: ``table(subject)`` gives a
        participant's table on the model's panel (None without a genotype sample)."""
        inputs = [input_configuration(self.bundle, p.name, p.sample is not None, genotypes.table(p.subject),
                                      self.config.min_panel_coverage) for p in plans]
        for item in inputs:
            if item.panel_coverage_low:
                log.warning("%s: %d of the model's %d panel SNPs observed (under --min-panel-coverage %g): its "
                            "genotypes count as missing", item.name, item.panel_observed, item.panel_total,
                            self.config.min_panel_coverage)
        if not self.config.allow_unvalidated_inputs:
            refuse_unvalidated(self.bundle, inputs)

    def refuse_other_outputs(self, plans: list[SamplePlan]) -> None:
        """Predictions of another bundle (same model name) or from other inputs are never replaced silently."""
        config, bundle = self.config, self.bundle
        other = [p for p in plans if p.prediction.state() == OTHER]
        if not other or config.overwrite:
            return
        lines, methods = [], set()
        for plan in other:
            sidecar = sidecar_path(plan.prediction.files[0])
            recorded = read_sidecar(sidecar).get("ModelHash")
            attention = sidecar_path(plan.prediction.files[1])   # TABLES: predictions, roiattention, ...
            method = read_sidecar(attention).get("AttributionMethod") if attention.is_file() else None
            if isinstance(recorded, str) and recorded != self.hash:
                why = (f"made by another bundle named {bundle.name} (ModelHash {str(recorded)[:12]}..., this one "
                       f"{self.hash[:12]}...)")
            elif attention.is_file() and method is None:
                why = ("attention outputs written before rgenima recorded their attribution method (rollout's); "
                       f"this run writes --attribution {self.attribution.method} and records it")
            elif attention.is_file() and method != self.attribution.method:
                methods.add(str(method))
                why = (f"attention outputs made with --attribution {method}; this run writes --attribution "
                       f"{self.attribution.method}")
            elif method == self.attribution.method and read_sidecar(attention).get("AttributionParameters") \
                    != self.attribution.parameters():
                why = (f"attention outputs made with --attribution {method} with other settings "
                       f"({read_sidecar(attention).get('AttributionParameters')}; this run "
                       f"{self.attribution.parameters()})")
            else:
                why = "made from other inputs or options, or by another rgenima version"
            lines.append(f"{plan.name}: {sidecar.relative_to(config.output_dir)} {why}")
        more = f"\n  ... and {len(lines) - 10} more" if len(lines) > 10 else ""
        keep = (f", or rerun with --attribution {' / '.join(sorted(methods))} to keep them" if methods else "")
        raise OutputNotWritableError(
            f"OUTPUT_DIR {config.output_dir} holds predictions of model {bundle.name} that this run would replace "
            f"({len(other)} sample(s)):\n  " + "\n  ".join(lines[:10]) + more,
            hint=f"rerun with --overwrite to recompute and replace them, or write to another OUTPUT_DIR{keep}")

    def predict(self, items: list[PredictionInput], plans: dict[str, SamplePlan], guard: SampleGuard) -> set[str]:
        """Predict in batches and write each sample's outputs; returns the participants predicted."""
        batch_size = 4 if self.device.type == "cuda" else 1
        done: set[str] = set()
        bar = tqdm(total=len(items), desc=f"prediction + {self.attribution.method}", unit="sample", disable=None)
        for start in range(0, len(items), batch_size):
            batch = items[start:start + batch_size]
            names = ", ".join(i.name for i in batch)
            outcome = guard(names, self._predict_batch, batch, plans, record=False) if len(batch) > 1 else None
            if outcome is None:  # one at a time: a failing sample does not take its batch with it
                outcome = [item for item in batch if guard(item.name, self._predict_batch, [item], plans)]
            done |= {item.subject for item in outcome}
            bar.update(len(batch))
        bar.close()
        in_training = [i.name for i in items if i.subject in done and self.bundle.was_trained_on(i.subject)]
        if in_training:  # one line, not one per participant (each sidecar and report says it too)
            shown = ", ".join(in_training[:10]) + (f" and {len(in_training) - 10} more" if len(in_training) > 10 else "")
            log.warning("%d of %d samples were in the training set of the model %s: their predictions are not held "
                        "out (HeldOut false): %s", len(in_training), len(items), self.bundle.name, shown)
        return done

    def _predict_batch(self, batch: list[PredictionInput], plans: dict[str, SamplePlan]) -> list[PredictionInput]:
        for prediction in predict(self.bundle, batch, batch_size=len(batch), progress=False,
                                  min_panel_coverage=self.config.min_panel_coverage,
                                  allow_unvalidated=self.config.allow_unvalidated_inputs,
                                  attribution=self.attribution):
            plan = plans[prediction.input.name]
            if plan.prediction.state() == OTHER and not self.config.overwrite:
                self.refuse_other_outputs([plan])
            plan.prediction.prepare()
            write_prediction(self.writer, prediction, self.bundle, self.hash, self.config.genotypes,
                             provenance=plan.prediction.key)
            log.info("%s: %s (p=%.3f) from %s; attribution %s", prediction.input.name, prediction.label,
                     prediction.probabilities.max(), " + ".join(prediction.modalities), prediction.method.method)
        return batch

    def write_reports(self, subjects: set[str], skipped: list[SamplePlan], failed: dict[str, list[str]],
                      guard: SampleGuard) -> None:
        """``sub-X.html`` of every participant predicted or failed now, and of skipped ones whose report is
        missing or older than their predictions."""
        stale = {p.subject for p in skipped if not self._report_is_current(p.subject)}
        for subject in tqdm(sorted(subjects | set(failed) | stale), desc="reports", unit="participant", disable=None):
            guard(f"sub-{subject} report", render_subject_report, self.writer, subject, self.bundle,
                  failed.get(subject, []))

    def _report_is_current(self, subject: str) -> bool:
        """``sub-X.html`` exists, is of this model and is newer than the participant's predictions."""
        model, report = self.bundle.name, self.writer.root / f"sub-{subject}.html"
        try:
            text, written = report.read_text(encoding="utf-8", errors="replace"), report.stat().st_mtime_ns
        except OSError:
            return False
        predictions = list((self.writer.root / f"sub-{subject}").glob(
            f"**/sub-{subject}*_desc-{model}_predictions.tsv"))
        return (f"<title>rgenima report: sub-{subject} · {model}</title>" in text
                and all(p.stat().st_mtime_ns <= written for p in predictions))
