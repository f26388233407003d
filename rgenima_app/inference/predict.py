"""Prediction of one or more samples with a model bundle: class probabilities and attention rollout.

A sample is one participant/session with its ROI patches (``ParticipantImaging``), its panel genotypes
(a ``genetics.participant`` table on the bundle's SNP panel), or both. The RiT turns the cached patches
into 109 tokens; the genotypes become the SNP text in the bundle's format; one prompt pass (eager
attention, head means kept per layer) gives the four class probabilities and the rollout rows
(``rollout.py``). A sample with one modality is predicted with that one (the prompt drops the other,
as in training's Mixture configuration) and says so.
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
from rgenima_app.inference.rollout import RolloutResult, rollout
from rgenima_app.models.bundle import LoadedBundle
from rgenima_app.models.mllm import MLLMSample
from rgenima_app.models.rit import RiT, log_volumes

log = logging.getLogger("rgenima")

MODALITY_IMAGE, MODALITY_GENOTYPES = "T1w", "genotypes"


@dataclass
class PredictionInput:
    """One sample to predict: imaging and/or panel genotypes."""

    subject: str
    session: str | None = None
    imaging: ParticipantImaging | None = None
    genotypes: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


@dataclass
class Prediction:
    """The model's output for one sample."""

    input: PredictionInput
    probabilities: np.ndarray          # (4,) over STAGES, sums to 1
    rollout: RolloutResult
    genome_text: str | None
    modalities: list[str]
    imputed_snps: int | None
    n_snps: int | None
    held_out: bool
    warnings: list[str] = field(default_factory=list)

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


def build_sample(bundle: LoadedBundle, item: PredictionInput) -> tuple[MLLMSample, list[str], list[str]]:
    """The model input of one sample, its modalities, and warnings about what is missing."""
    use_image = item.imaging is not None and bundle.model.image_encoder is not None
    use_genome = item.genotypes is not None and bundle.snp_panel is not None
    warnings = []
    if item.imaging is None:
        warnings.append(f"{item.name} has no T1w image: predicted from genotypes only")
    elif not use_image:
        warnings.append(f"the model {bundle.name} has no image encoder: {item.name} predicted from genotypes only")
    if item.genotypes is None:
        warnings.append(f"{item.name} has no genotype sample: predicted from the T1w image only")
    elif not use_genome:
        warnings.append(f"the model {bundle.name} has no SNP panel: {item.name} predicted from the image only")
    if not (use_image or use_genome):
        raise ProcessingError(f"{item.name}: nothing to predict from (no usable image and no usable genotypes)",
                              "give the T1w image (and FreeSurfer subject) or --genotypes with this participant")
    sample = MLLMSample(genome_text(bundle, item.genotypes) if use_genome else None,
                        image_tokens(bundle, item.imaging) if use_image else None)
    modalities = ([MODALITY_IMAGE] if use_image else []) + ([MODALITY_GENOTYPES] if use_genome else [])
    return sample, modalities, warnings


def _normalized(p: torch.Tensor) -> np.ndarray:
    """Probabilities in float64, summing to 1 to float64 precision (the model computes them in float32)."""
    values = p.double().cpu().numpy()
    return values / values.sum()


def predict(bundle: LoadedBundle, items: list[PredictionInput], *, batch_size: int = 1,
            progress: bool = True) -> list[Prediction]:
    """Probabilities and rollout of every item, ``batch_size`` prompts per forward pass."""
    predictions: list[Prediction] = []
    bar = tqdm(total=len(items), desc="prediction", unit="sample", disable=None if progress else True)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        built = [build_sample(bundle, item) for item in chunk]
        results, probabilities = rollout(bundle.model, [b[0] for b in built])
        for item, (sample, modalities, warnings), result, p in zip(chunk, built, results, probabilities):
            held_out = not bundle.was_trained_on(item.subject)
            if not held_out:
                warnings.append(f"sub-{item.subject} was in the training set of the model {bundle.name}: "
                                "its prediction is not held out (HeldOut false)")
            table = item.genotypes if MODALITY_GENOTYPES in modalities else None
            predictions.append(Prediction(
                input=item, probabilities=_normalized(p), rollout=result, genome_text=sample.genome_text,
                modalities=modalities, imputed_snps=int(table["imputed"].sum()) if table is not None else None,
                n_snps=len(table) if table is not None else None, held_out=held_out, warnings=warnings))
            for warning in warnings:
                log.warning(warning)
        bar.update(len(chunk))
    bar.close()
    return predictions
