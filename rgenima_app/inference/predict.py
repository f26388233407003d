"""Prediction of one or more samples with a model bundle: class probabilities and their attribution.

A sample is one participant/session with its ROI patches (``ParticipantImaging``), its panel genotypes
(a ``genetics.participant`` table on the bundle's SNP panel), or both. The RiT turns the cached patches
into 109 tokens; the genotypes become the SNP text in the bundle's format; one prompt pass (eager
attention, head means kept per layer) gives the four class probabilities and the rollout rows
(``rollout.py``). With another attribution method (``AttributionSettings``, ``--attribution``) the
probabilities and the attribution come from that method's own passes (``attribution.py``: the same scoring of
the four answers, differentiable). A sample with one modality is predicted with that one (the prompt drops the other,
as in training's Mixture configuration) and says so.

One rule for a missing modality (docs/inference.md, "Missing modalities"): the input configuration of a
sample (``image+genes``, ``image``, ``genes``) is what it has that the model reads, genotypes counting as
missing when fewer than ``min_panel_coverage`` of the model's panel SNPs were observed; a configuration
the model was not validated on (``LoadedBundle.validated_inputs``) is refused unless allowed.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from rgenima_app import STAGES
from rgenima_app.errors import ProcessingError, UsageError
from rgenima_app.genetics.serialize import serialize_genotypes
from rgenima_app.imaging.participant import ParticipantImaging
from rgenima_app.inference.attribution import Attribution, attribute
from rgenima_app.inference.methods import DEFAULT_READ, DEFAULT_STEPS, REFERENCE_MEAN, AttributionSettings
from rgenima_app.inference.rollout import RolloutResult, rollout
from rgenima_app.models.bundle import GENES_ONLY, IMAGE_GENES, IMAGE_ONLY, LoadedBundle
from rgenima_app.models.distribution import OODScore, missing_fraction, roi_features, score_sample
from rgenima_app.models.mllm import MLLMSample
from rgenima_app.models.rit import RiT, log_volumes

log = logging.getLogger("rgenima")

MODALITY_IMAGE, MODALITY_GENOTYPES = "T1w", "genotypes"
#: Below this share of the model's panel SNPs observed, a participant's genotypes count as missing.
DEFAULT_MIN_PANEL_COVERAGE = 0.5


@dataclass
class PredictionInput:
    """One sample to predict: imaging and/or panel genotypes."""

    subject: str
    session: str | None = None
    imaging: ParticipantImaging | None = None
    genotypes: pd.DataFrame | None = None
    age: float | None = None          # participants.tsv ``age`` (out-of-distribution score)

    @property
    def name(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


@dataclass
class Prediction:
    """The model's output for one sample."""

    input: PredictionInput
    probabilities: np.ndarray          # (4,) over STAGES, sums to 1
    attribution: RolloutResult | Attribution  # roi_importance, genes, gene_importance, roi_gene of ``method``
    genome_text: str | None
    modalities: list[str]
    imputed_snps: int | None
    n_snps: int | None
    held_out: bool
    warnings: list[str] = field(default_factory=list)
    inputs: InputConfiguration | None = None
    ood: OODScore | None = None       # out-of-distribution score against the bundle's training distribution
    method: AttributionSettings = field(default_factory=AttributionSettings)  # which attribution ``attribution`` is

    @property
    def rollout(self) -> RolloutResult | Attribution:
        """The attribution under its former name (it was always rollout's before ``--attribution``)."""
        return self.attribution

    @property
    def label(self) -> str:
        return STAGES[int(np.argmax(self.probabilities))]

    @property
    def absent_rois(self) -> list[str]:
        if self.input.imaging is None:
            return []
        morph = self.input.imaging.morph
        return list(morph.loc[~morph["present"].astype(bool), "name"])


def bundle_hash(path: str | Path) -> str:
    """SHA-256 over the bundle's files (relative names and contents, in name order)."""
    digest = hashlib.sha256()
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def check_imaging_settings(bundle: LoadedBundle, imaging: ParticipantImaging) -> None:
    """The patches must be extracted as the model's were (size and mode)."""
    expected = bundle.roi_extraction
    if bundle.roi_size is not None and imaging.roi_size != bundle.roi_size:
        raise UsageError(f"ROI patches of {imaging.freesurfer.name} are {imaging.roi_size}^3 but the model "
                         f"{bundle.path} was trained on {bundle.roi_size}^3",
                         f"run with --roi-size {bundle.roi_size}")
    if imaging.mode != expected["mode"]:
        raise ProcessingError(f"ROI patches of {imaging.freesurfer.name} were extracted in mode "
                              f"{imaging.mode!r}, the model {bundle.path} in mode {expected['mode']!r}")


@torch.no_grad()
def image_tokens(bundle: LoadedBundle, imaging: ParticipantImaging) -> torch.Tensor:
    """(109, D) RiT tokens of one sample's cached patches (float32, CPU)."""
    encoder = bundle.model.image_encoder
    if not isinstance(encoder, RiT):
        raise ProcessingError(f"the model {bundle.path} has no ROI image encoder (RiT); it cannot read ROI patches")
    check_imaging_settings(bundle, imaging)
    device = next(encoder.parameters()).device
    patches = torch.from_numpy(np.asarray(imaging.load_patches(mmap=False), dtype=np.float32)).unsqueeze(0)
    volumes = None
    if encoder.config.use_size_feature:
        volume = torch.tensor(imaging.morph["volume_mm3"].fillna(0).to_numpy(np.float32)).unsqueeze(0)
        volumes = log_volumes(volume).to(device)
    return encoder(patches.to(device), volumes).tokens[0].float().cpu()


def genome_text(bundle: LoadedBundle, table: pd.DataFrame) -> str:
    """The SNP text of a panel table, in the format (and dosage separator) the bundle was trained with."""
    return serialize_genotypes(table, bundle.metadata.get("snp_text_format") or "compact",
                               sep=bundle.model.dosage_separator)


@dataclass
class InputConfiguration:
    """What a sample is predicted from, under the one rule for a missing modality (module docstring)."""

    name: str                      # the sample
    use_image: bool
    use_genes: bool
    validated: list[str]           # the model's validated input configurations
    panel_observed: int | None     # panel SNPs with an observed call (None: no genotype sample or no panel)
    panel_total: int | None
    min_panel_coverage: float
    warnings: list[str]

    @property
    def configuration(self) -> str | None:
        """``image+genes``, ``image`` or ``genes`` (None: nothing usable)."""
        return {(True, True): IMAGE_GENES, (True, False): IMAGE_ONLY, (False, True): GENES_ONLY}.get(
            (self.use_image, self.use_genes))

    @property
    def is_validated(self) -> bool:
        return self.configuration in self.validated

    @property
    def panel_coverage_low(self) -> bool | None:
        """Whether the genotypes count as missing for too low a panel coverage (None without genotypes)."""
        if self.panel_total is None:
            return None
        return self.panel_observed < self.min_panel_coverage * self.panel_total

    def to_sidecar(self) -> dict:
        return {"InputConfiguration": self.configuration, "ValidatedInputs": self.validated,
                "InputsValidated": self.is_validated, "PanelSNPsObserved": self.panel_observed,
                "PanelSNPsTotal": self.panel_total, "PanelCoverageLow": self.panel_coverage_low,
                "MinPanelCoverage": self.min_panel_coverage}


def input_configuration(bundle: LoadedBundle, name: str, has_image: bool, genotypes: pd.DataFrame | None,
                        min_panel_coverage: float = DEFAULT_MIN_PANEL_COVERAGE) -> InputConfiguration:
    """The input configuration of one sample (``has_image``: it has a T1w image; ``genotypes``: its table on
    the model's SNP panel, with ``imputed`` true where no call was observed), and warnings on what is missing."""
    use_image = has_image and bundle.model.image_encoder is not None
    reads_genes = bundle.snp_panel is not None
    observed = total = None
    if genotypes is not None and reads_genes:
        total = len(genotypes)
        observed = int((~genotypes["imputed"].astype(bool)).sum())
    inputs = InputConfiguration(name, use_image, genotypes is not None and reads_genes, bundle.validated_inputs,
                                observed, total, min_panel_coverage, [])
    warnings = inputs.warnings
    if not has_image:
        warnings.append(f"{name} has no T1w image: predicted from genotypes only")
    elif not use_image:
        warnings.append(f"the model {bundle.name} has no image encoder: {name} predicted from genotypes only")
    if genotypes is None:
        warnings.append(f"{name} has no genotype sample: predicted from the T1w image only")
    elif not reads_genes:
        warnings.append(f"the model {bundle.name} has no SNP panel: {name} predicted from the image only")
    elif inputs.panel_coverage_low:
        inputs.use_genes = False
        warnings.append(f"{name}: only {observed} of the model's {total} panel SNPs observed in the genotypes "
                        f"({observed / max(total, 1):.0%} < --min-panel-coverage {min_panel_coverage:g}): the "
                        "genotypes count as missing" + (", predicted from the T1w image only" if use_image else ""))
    return inputs


def refuse_unvalidated(bundle: LoadedBundle, inputs: list[InputConfiguration]) -> None:
    """A usage error naming every sample whose input configuration the model was not validated on."""
    refused = [i for i in inputs if i.configuration is not None and not i.is_validated]
    if not refused:
        return
    lines = [f"{i.name}: {i.configuration}" + (f" ({i.warnings[-1].removeprefix(i.name).lstrip(': ')})"
                                               if i.warnings else "") for i in refused[:10]]
    more = f"\n  ... and {len(refused) - 10} more" if len(refused) > 10 else ""
    raise UsageError(
        f"the model {bundle.name} was validated on {' and '.join(bundle.validated_inputs)} inputs only; "
        f"{len(refused)} sample(s) would be predicted from an input configuration it was not validated on:\n  "
        + "\n  ".join(lines) + more,
        hint="give the missing modality (e.g. --genotypes, or genotypes matching the model's SNP panel), leave "
             "these participants out (--participant-label), or add --allow-unvalidated-inputs to predict them "
             "anyway (recorded in the predictions' inputs_validated column)")


def build_sample(bundle: LoadedBundle, item: PredictionInput,
                 min_panel_coverage: float = DEFAULT_MIN_PANEL_COVERAGE) -> tuple[MLLMSample, list[str], list[str]]:
    """The model input of one sample, its modalities, and warnings about what is missing."""
    inputs = input_configuration(bundle, item.name, item.imaging is not None, item.genotypes, min_panel_coverage)
    use_image, use_genome, warnings = inputs.use_image, inputs.use_genes, list(inputs.warnings)
    if not (use_image or use_genome):
        raise ProcessingError(f"{item.name}: nothing to predict from (no usable image and no usable genotypes)",
                              "give the T1w image (and FreeSurfer subject) or --genotypes with this participant")
    sample = MLLMSample(genome_text(bundle, item.genotypes) if use_genome else None,
                        image_tokens(bundle, item.imaging) if use_image else None)
    modalities = ([MODALITY_IMAGE] if use_image else []) + ([MODALITY_GENOTYPES] if use_genome else [])
    return sample, modalities, warnings


def ood_score(bundle: LoadedBundle, item: PredictionInput, modalities: list[str]) -> OODScore:
    """The sample's out-of-distribution score on what the model reads (``models.distribution``)."""
    distribution = bundle.distribution
    image = (distribution or {}).get("image") or {}
    normalization = image.get("normalization", bundle.roi_extraction["normalization"])
    features = roi_features(item.imaging.morph, normalization) if MODALITY_IMAGE in modalities else None
    missingness = missing_fraction(item.genotypes) if MODALITY_GENOTYPES in modalities else None
    return score_sample(distribution, features=features, missingness=missingness, age=item.age)


def _normalized(p: torch.Tensor) -> np.ndarray:
    """Probabilities in float64, summing to 1 to float64 precision (the model computes them in float32)."""
    values = p.double().cpu().numpy()
    return values / values.sum()


def attribution_settings(bundle: LoadedBundle, method: str, steps: int | None = None) -> AttributionSettings:
    """The settings ``method`` runs with on ``bundle``: integrated gradients start from the bundle's training mean
    RiT tokens when it stores them, else from zero image features (``inference/methods.py``)."""
    has_reference = method == "integrated_gradients" and bundle.reference_tokens is not None
    return AttributionSettings.of(method, steps, has_reference)


def attribute_samples(bundle: LoadedBundle, samples: list[MLLMSample], settings: AttributionSettings
                      ) -> tuple[list[RolloutResult | Attribution], list[np.ndarray]]:
    """The attribution of ``settings.method`` of each sample and its class probabilities (float64, sum 1)."""
    if settings.method == "rollout":
        results, probabilities = rollout(bundle.model, samples)
        return results, [_normalized(p) for p in probabilities]
    reference = bundle.reference_tokens if settings.reference == REFERENCE_MEAN else None
    results = attribute(bundle.model, samples, settings.method, reference=reference,
                        steps=settings.steps or DEFAULT_STEPS, read=settings.read or DEFAULT_READ)
    return results, [r.probabilities / r.probabilities.sum() for r in results]


def predict(bundle: LoadedBundle, items: list[PredictionInput], *, batch_size: int = 1, progress: bool = True,
            min_panel_coverage: float = DEFAULT_MIN_PANEL_COVERAGE,
            allow_unvalidated: bool = False, attribution: AttributionSettings | None = None) -> list[Prediction]:
    """Probabilities and attribution (``attribution``: rollout when None) of every item, ``batch_size`` prompts
    per forward pass; an item whose input configuration the model was not validated on is refused
    (``UsageError``) unless allowed."""
    attribution = attribution or AttributionSettings()
    configurations = {item.name: input_configuration(bundle, item.name, item.imaging is not None, item.genotypes,
                                                     min_panel_coverage) for item in items}
    if not allow_unvalidated:
        refuse_unvalidated(bundle, list(configurations.values()))
    predictions: list[Prediction] = []
    bar = tqdm(total=len(items), desc=f"prediction ({attribution.method})", unit="sample",
               disable=None if progress else True)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        built = [build_sample(bundle, item, min_panel_coverage) for item in chunk]
        results, probabilities = attribute_samples(bundle, [b[0] for b in built], attribution)
        for item, (sample, modalities, warnings), result, p in zip(chunk, built, results, probabilities):
            held_out = not bundle.was_trained_on(item.subject)
            if not configurations[item.name].is_validated:
                warnings.append(f"{item.name}: predicted from {configurations[item.name].configuration}, an input "
                                f"configuration the model {bundle.name} was not validated on "
                                f"({', '.join(bundle.validated_inputs)}); allowed by --allow-unvalidated-inputs")
            logged = list(warnings)  # the held-out one: in each sidecar and report; the caller logs it once for all
            if not held_out:
                warnings.append(f"sub-{item.subject} was in the training set of the model {bundle.name}: "
                                "its prediction is not held out (HeldOut false)")
            table = item.genotypes if MODALITY_GENOTYPES in modalities else None
            ood = ood_score(bundle, item, modalities)
            if ood.flag:
                log.warning("%s is OUT OF DISTRIBUTION for the model %s (ood_score %.3g > 1): %s; its prediction "
                            "is unreliable", item.name, bundle.name, ood.score, "; ".join(ood.reasons))
            predictions.append(Prediction(
                input=item, probabilities=p, attribution=result, genome_text=sample.genome_text,
                modalities=modalities, imputed_snps=int(table["imputed"].sum()) if table is not None else None,
                n_snps=len(table) if table is not None else None, held_out=held_out, warnings=warnings,
                inputs=configurations[item.name], ood=ood, method=attribution))
            for warning in logged:
                log.warning(warning)
        bar.update(len(chunk))
    bar.close()
    return predictions
