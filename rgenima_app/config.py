"""One run's configuration: every option, resolved, saved as TOML (with package versions) in logs/."""
from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import tomli_w

from rgenima_app.environment import package_versions
from rgenima_app.errors import MissingInputError, UsageError

DEEPSPEED_PRESETS = ("zero2", "zero3", "zero3-offload")
FINETUNE_MODES = ("full", "lora", "frozen")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_ROI_SIZE = 96


@dataclass
class RunConfig:
    """All options of one ``rgenima`` run (docs/architecture.md, "Contracts"); paths are absolute once resolved."""

    bids_dir: Path
    output_dir: Path
    analysis_level: str
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    bids_filter_file: Path | None = None
    skip_bids_validation: bool = False
    work_dir: Path | None = None
    fs_subjects_dir: Path | None = None
    fs_license_file: Path | None = None
    fs_no_reconall: bool = False
    nprocs: int | None = None
    omp_nthreads: int | None = None
    mem_mb: int | None = None
    use_plugin: Path | None = None
    stop_on_first_crash: bool = False
    verbose: int = 0
    genotypes: Path | None = None
    genome_build: str = "GRCh37"
    gene_panel: Path | None = None
    model: Path | None = None
    train: bool = False
    train_config: Path | None = None
    llm: str = "tiny"
    finetune: str = "full"
    deepspeed: str | None = None
    device: str = "auto"
    roi_size: int | None = None  # resolved: the --model's ROI size, else DEFAULT_ROI_SIZE
    seed: int = 0
    reports_only: bool = False
    overwrite: bool = False

    def resolve(self) -> "RunConfig":
        """Make paths absolute and fill defaults that depend on other options."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                setattr(self, f.name, value.expanduser().resolve())
        if self.work_dir is None:
            # hidden, so the validator skips it; -w moves it to fast scratch space on clusters
            self.work_dir = self.output_dir / ".work"
        if self.fs_subjects_dir is None:
            self.fs_subjects_dir = self.output_dir / "sourcedata" / "freesurfer"
        if self.fs_license_file is None and os.environ.get("FS_LICENSE"):
            self.fs_license_file = Path(os.environ["FS_LICENSE"]).expanduser().resolve()
        if self.model is None and not self.train and os.environ.get("RGENIMA_DEFAULT_MODEL"):
            # a bundle baked into the container image (Dockerfile: --build-arg MODEL_BUNDLE)
            self.model = Path(os.environ["RGENIMA_DEFAULT_MODEL"]).expanduser().resolve()
        if self.roi_size is None:
            self.roi_size = model_roi_size(self.model) or DEFAULT_ROI_SIZE
        if self.nprocs is None:
            self.nprocs = os.cpu_count() or 1
        if self.omp_nthreads is None:
            self.omp_nthreads = min(8, self.nprocs)
        return self

    def to_dict(self) -> dict:
        """TOML-ready: paths as strings, unset (None) options left out."""
        out = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = str(value) if isinstance(value, Path) else value
        return out

    def save(self, logs_dir: Path, run_id: str) -> Path:
        """Write ``logs/<run_id>.toml`` with the resolved options and package versions."""
        from rgenima_app.bids.derivatives import write_text

        document = {
            "rgenima": {"run_id": run_id, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "options": self.to_dict(),
            "versions": package_versions(),
        }
        return write_text(Path(logs_dir) / f"{run_id}.toml", tomli_w.dumps(document))


def model_roi_size(bundle: Path | None) -> int | None:
    """The ROI size recorded in a model bundle's rgenima.json (None when unreadable: checked later)."""
    if bundle is None:
        return None
    try:
        size = json.loads((Path(bundle) / "rgenima.json").read_text())["rois"]["size"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return int(size) if isinstance(size, int) else None


def parse_memory(text: str | None) -> int | None:
    """``--mem``: a number of MB (fMRIPrep's convention) or with a unit: 16G, 16GB, 16000M."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise UsageError(f"--mem {text!r} is not a memory size", hint="use e.g. --mem 16G or --mem 16000 (MB)")
    number, unit = float(match.group(1)), match.group(2).upper() or "M"
    return int(number * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def read_train_config(path: Path) -> dict:
    """The ``--train-config`` TOML as a dict (its keys are checked by the training stage)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise MissingInputError(f"cannot read --train-config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--train-config {path} is not valid TOML: {exc}") from exc
