"""One run's configuration: every option, resolved once, frozen, saved as TOML (with package versions) in logs/.

``RunConfig`` holds the command line as given (what ``logs/<run>.toml`` records) and hands each part of the
code the section it needs, built from those options in one place: ``resources``, ``freesurfer`` (every
option that reaches recon-all), ``genetics`` (the genotype input), ``training`` and ``analysis`` (the
``--train-config`` TOML, read and checked once). Workflows take the whole configuration; domain packages
take only their section.
"""
from __future__ import annotations

import functools
import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import tomli_w

from rgenima_app.analysis.settings import GROUPINGS, CohortSettings, analysis_settings
from rgenima_app.bids.derivatives import write_text
from rgenima_app.environment import package_versions
from rgenima_app.errors import MissingInputError, UsageError
from rgenima_app.genetics.participant import GenotypeInput
from rgenima_app.imaging.freesurfer import FreeSurferOptions
from rgenima_app.inference.methods import DEFAULT_METHOD as DEFAULT_ATTRIBUTION
from rgenima_app.inference.methods import METHODS as ATTRIBUTIONS
from rgenima_app.training.settings import DEEPSPEED_PRESETS, TrainSettings, train_settings

__all__ = ["ATTRIBUTIONS", "DEEPSPEED_PRESETS", "DEFAULT_ATTRIBUTION", "DEVICES", "FINETUNE_MODES", "GROUPINGS",
           "Resources", "RunConfig", "parse_memory", "read_train_config"]

FINETUNE_MODES = ("full", "lora", "frozen")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_ROI_SIZE = 96


@dataclass(frozen=True)
class Resources:
    """What the run may use: processes, threads per process, memory, the torch device."""

    nprocs: int
    omp_nthreads: int
    mem_mb: int | None
    device: str
    stop_on_first_crash: bool

    @property
    def mem_gb(self) -> float | None:
        return self.mem_mb / 1024 if self.mem_mb else None


@dataclass(frozen=True)
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
    min_panel_coverage: float = 0.5   # inference.predict.DEFAULT_MIN_PANEL_COVERAGE (not imported: no torch here)
    allow_unvalidated_inputs: bool = False
    # participant --model: the attribution written (None until resolved: inference.methods.DEFAULT_METHOD there)
    attribution: str | None = None
    attribution_steps: int | None = None  # integrated_gradients' steps (None: inference.methods.DEFAULT_STEPS)
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
    group_by: str | None = None  # group --model: None = the [analysis] table's, else "auto"
    command_line: str | None = None  # as typed (cli.py), recorded in logs/<run>.toml and the group report

    def resolve(self) -> "RunConfig":
        """A copy with absolute paths and the defaults that depend on other options filled in."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if isinstance(value, Path):
                values[name] = value.expanduser().resolve()
        if values["work_dir"] is None:
            # hidden, so the validator skips it; -w moves it to fast scratch space on clusters
            values["work_dir"] = values["output_dir"] / ".work"
        if values["fs_subjects_dir"] is None:
            values["fs_subjects_dir"] = values["output_dir"] / "sourcedata" / "freesurfer"
        if values["fs_license_file"] is None and os.environ.get("FS_LICENSE"):
            values["fs_license_file"] = Path(os.environ["FS_LICENSE"]).expanduser().resolve()
        if values["model"] is None and not self.train and os.environ.get("RGENIMA_DEFAULT_MODEL"):
            # a bundle baked into the container image (Dockerfile: --build-arg MODEL_BUNDLE)
            values["model"] = Path(os.environ["RGENIMA_DEFAULT_MODEL"]).expanduser().resolve()
        if values["attribution"] is None and values["model"] is not None and self.analysis_level == "participant" \
                and not self.train:
            values["attribution"] = DEFAULT_ATTRIBUTION  # the one default (inference/methods.py)
        if values["roi_size"] is None:
            values["roi_size"] = model_roi_size(values["model"]) or DEFAULT_ROI_SIZE
        if values["nprocs"] is None:
            values["nprocs"] = os.cpu_count() or 1
        if values["omp_nthreads"] is None:
            values["omp_nthreads"] = min(8, values["nprocs"])
        return RunConfig(**values)

    def with_options(self, **changes) -> "RunConfig":
        """A copy with some options replaced (e.g. labels normalised by the argument checks)."""
        return replace(self, **changes)

    # -- the sections: what each part of the code is handed ------------------------------------------
    @functools.cached_property
    def resources(self) -> Resources:
        return Resources(self.nprocs or 1, self.omp_nthreads or 1, self.mem_mb, self.device, self.stop_on_first_crash)

    @functools.cached_property
    def freesurfer(self) -> FreeSurferOptions:
        """Every option that reaches recon-all, on every path (participant, --model, --train)."""
        resources = self.resources
        return FreeSurferOptions(
            subjects_dir=self.fs_subjects_dir, license_file=self.fs_license_file, no_reconall=self.fs_no_reconall,
            omp_nthreads=resources.omp_nthreads, nprocs=resources.nprocs, mem_gb=resources.mem_gb,
            use_plugin=self.use_plugin, crash_dir=self.output_dir / "logs",
            stop_on_first_crash=self.stop_on_first_crash)

    @functools.cached_property
    def genetics(self) -> GenotypeInput | None:
        """The genotype input (None without --genotypes)."""
        if self.genotypes is None:
            return None
        return GenotypeInput(self.genotypes, self.genome_build, self.gene_panel)

    @functools.cached_property
    def _train_config_document(self) -> dict | None:
        return read_train_config(self.train_config) if self.train_config is not None else None

    @functools.cached_property
    def training(self) -> TrainSettings:
        """``--train-config``'s training tables (defaults without it), checked."""
        return train_settings(self._train_config_document, self.train_config or "--train-config")

    @functools.cached_property
    def analysis(self) -> CohortSettings:
        """``--train-config``'s ``[analysis]`` table (defaults without it), checked."""
        document = self._train_config_document or {}
        return analysis_settings(document.get("analysis"), self.train_config, default_seed=self.seed,
                                 group_by=self.group_by)

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
    """The ``--train-config`` TOML as a dict: the one reader (``RunConfig.training`` and ``.analysis`` check it)."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise MissingInputError(f"cannot read --train-config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--train-config {path} is not valid TOML: {exc}") from exc
