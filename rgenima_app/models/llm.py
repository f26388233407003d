"""Loading the language model: ``tiny``, a pretrained model installed as a Python package
(``smollm2``, see ``pretrained.py``) or a local Hugging Face causal-LM directory, offline only.

A local directory must hold a ``config.json``, tokenizer files and ``*.safetensors`` weights; a
directory that offers only pickled weights (``pytorch_model.bin``, ``*.pt``, ...) is refused rather
than unpickled. Nothing is ever fetched from a hub (``local_files_only=True``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from rgenima_app.errors import MissingInputError, UsageError
from rgenima_app.models.pretrained import PRETRAINED, manifest, pretrained_dir
from rgenima_app.models.prompt import IMAGE_TOKEN
from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm

#: File suffixes that mean pickled weights; rgenima refuses to load them.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_safetensors_dir(path: Path, what: str) -> None:
    """Refuse a weights directory that has pickled files, or no safetensors file at all."""
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise MissingInputError(
            f"{what} {path} contains pickled weight file(s) {', '.join(pickled)}; rgenima loads safetensors only",
            "convert the weights to safetensors (model.save_pretrained(dir) writes them) and remove the pickles",
        )
    if not any(path.glob("*.safetensors")):
        raise MissingInputError(f"{what} {path} has no *.safetensors weights",
                                "save the model with save_pretrained() (safetensors) into this directory")


def load_local_llm(path: str | Path, dtype: str = "float32", attn_implementation: str = "sdpa",
                   with_tokenizer: bool = True):
    """(model, tokenizer) from a local Hugging Face model directory, offline and safetensors-only
    (tokenizer None with ``with_tokenizer=False``: a bundle's ``llm/`` holds weights only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise MissingInputError(f"LLM directory {path} has no config.json",
                                "--llm takes 'tiny' or a local directory saved with save_pretrained()")
    check_safetensors_dir(path, "LLM directory")
    if dtype not in DTYPES:
        raise UsageError(f"LLM dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    check_weights_match_config(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True) if with_tokenizer else None
        model, info = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=DTYPES[dtype],
            attn_implementation=attn_implementation, output_loading_info=True,
        )
    except (OSError, ValueError) as exc:
        raise MissingInputError(f"cannot load the LLM in {path}: {exc}") from exc
    missing = list(info.get("missing_keys") or []) + list(info.get("mismatched_keys") or [])
    if missing:
        raise MissingInputError(f"LLM weights in {path} are incomplete: {len(missing)} tensor(s) missing or "
                                f"of the wrong shape, e.g. {missing[:3]}", "re-save the model in full")
    return model, prepare_tokenizer(tokenizer) if tokenizer is not None else None


def check_weights_match_config(path: Path) -> None:
    """Refuse (66, naming config.json) a directory whose config.json describes other tensor shapes than its
    *.safetensors hold: transformers would otherwise print its load report and raise a bare RuntimeError.
    The model is built on the meta device (no memory) and compared with the safetensors headers."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MissingInputError(f"cannot read {path / 'config.json'}: {exc}",
                                "the model directory is damaged: restore its config.json") from exc
    wrong = []
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), "pt") as weights:
            for key in weights.keys():
                shape = tuple(weights.get_slice(key).get_shape())
                if key in expected and expected[key] != shape:
                    wrong.append(f"{key} is {list(shape)} in {file.name}, {list(expected[key])} by config.json")
    if wrong:
        raise MissingInputError(f"{path / 'config.json'} does not match the weights in {path}: {len(wrong)} "
                                f"tensor(s) of another shape, e.g. {'; '.join(wrong[:2])}",
                                "the model directory is damaged: restore config.json and the *.safetensors "
                                "saved together")


def prepare_tokenizer(tokenizer):
    """Make sure the tokenizer knows the image placeholder token and has a pad token."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_llm(spec: str, *, dtype: str = "float32", tiny: TinyLLMConfig | None = None,
              attn_implementation: str = "sdpa"):
    """(model, tokenizer, description) for ``spec`` = ``"tiny"``, a pretrained name (``"smollm2"``) or a
    local model directory."""

    if spec == "tiny":
        cfg = tiny or TinyLLMConfig()
        model, tokenizer = build_tiny_llm(cfg)
        model.set_attn_implementation(attn_implementation)
        model.to(DTYPES[dtype])
        description = {"kind": "tiny", "tiny_config": cfg.to_dict()}
    elif spec in PRETRAINED:
        directory = pretrained_dir(spec)
        model, tokenizer = load_local_llm(directory, dtype, attn_implementation)
        info = manifest(directory)
        description = {"kind": "pretrained", "name": spec, "model_id": info.get("model_id"),
                       "source": str(directory), "gguf_sha256": info.get("gguf_sha256"),
                       "weights_sha256": info.get("weights_sha256")}
    else:
        model, tokenizer = load_local_llm(spec, dtype, attn_implementation)
        description = {"kind": "local", "source": str(Path(spec).resolve())}
    description.update(describe_config(model.config))
    description["dtype"] = dtype
    return model, tokenizer, description


#: Config keys that say how a model was loaded or saved, not what it is.
_VOLATILE_KEYS = {"dtype", "torch_dtype", "transformers_version", "_name_or_path", "architectures",
                  "attn_implementation", "_attn_implementation", "_attn_implementation_autoset",
                  "use_cache", "output_attentions", "output_hidden_states"}


def describe_config(config) -> dict:
    """What identifies an LLM architecture: type, sizes and a hash of its config."""
    stable = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_KEYS}
    as_json = json.dumps(stable, sort_keys=True, default=str)
    return {
        "model_type": config.model_type,
        "architectures": list(config.architectures or []),
        "hidden_size": int(config.hidden_size),
        "num_hidden_layers": int(config.num_hidden_layers),
        "vocab_size": int(config.vocab_size),
        "config_sha256": hashlib.sha256(as_json.encode()).hexdigest(),
    }


def qwen2_5_7b_config(vocab_size: int = 152064):
    """A Qwen2.5-7B-shaped ``Qwen2Config`` (sizes from the public model card), for random-init benchmarks."""
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rope_theta=1e6,
        rms_norm_eps=1e-6, tie_word_embeddings=False,
    )
