"""Orchestration of a run: check the inputs, then the participant or group level, stage by stage.

The layers are in docs/architecture.md: this module checks the arguments, sets up the output dataset,
the logs and the run's identity, and hands the run to the job's workflow (``rgenima_app.workflows``).

The workflows are imported inside the functions below, after ``ensure_writable_caches``, and only there
(tests/test_architecture.py allows exactly this): they import matplotlib and transformers, which fix their
cache locations (MPLCONFIGDIR, HF_HOME) once, at import, so the run's environment must be set first.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from rgenima_app import __version__
from rgenima_app.bids.derivatives import DerivativesWriter, disk_full, remove_stale_temporaries, write_error, write_text
from rgenima_app.bids.inputs import collect_t1w, load_bids_filters, normalize_label, read_participants
from rgenima_app.bids.spec import check_outputs
from rgenima_app.bids.validation import validate_bids
from rgenima_app.config import DEEPSPEED_PRESETS, RunConfig
from rgenima_app.confinement import register_root
from rgenima_app.environment import ensure_writable_caches
from rgenima_app.errors import MissingInputError, ProcessingError, RgenimaError, UsageError
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.models.pretrained import PRETRAINED, check_available

log = logging.getLogger("rgenima")

GENOTYPE_SUFFIXES = (".bed", ".vcf", ".vcf.gz", ".bcf")


def run(config: RunConfig) -> None:
    """Run one ``rgenima`` invocation; user errors propagate as RgenimaError, crashes are logged."""
    started = time.time()
    config = check_arguments(config)
    register_root(config.work_dir, "the work dir (-w)")
    register_root(config.fs_subjects_dir, "the FreeSurfer subjects dir (--fs-subjects-dir)")
    writer = DerivativesWriter(config.output_dir, config.bids_dir)
    writer.check_writable()
    stale = remove_stale_temporaries(config.output_dir, started)
    redirected = ensure_writable_caches(config.work_dir)
    run_id = f"rgenima-{config.analysis_level}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.getpid()}"
    logs_dir = config.output_dir / "logs"
    handler = _log_to_file(logs_dir / f"{run_id}.log")
    log.info("rgenima %s, %s level, run %s", __version__, config.analysis_level, run_id)
    for variable, path in redirected.items():
        log.info("%s was not writable; using %s", variable, path)
    if stale:
        log.info("removed %d temporary file(s) that killed runs left: %s", len(stale), ", ".join(map(str, stale[:10])))
    try:
        if config.analysis_level == "participant":
            run_participant_level(config, writer, run_id)
        else:
            run_group_level(config, writer, run_id)
    except RgenimaError as exc:
        log.info("stopped: %s", exc)  # the console gets the message once, from the CLI
        raise
    except Exception as exc:  # a bug or an unforeseen failure: keep the traceback for the report
        if disk_full(exc):
            raise write_error(Path(exc.filename or config.output_dir), exc) from exc
        crash = logs_dir / f"crash-{run_id}.txt"
        write_text(crash, traceback.format_exc())
        raise ProcessingError(f"rgenima failed unexpectedly: {type(exc).__name__}: {exc}",
                              hint=f"the traceback is in {crash}; please report it") from exc
    finally:
        log.removeHandler(handler)
        handler.close()


def _log_to_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)
    return handler


# -- argument checks: everything a user can get wrong is refused before any work starts --------------
def check_arguments(config: RunConfig) -> RunConfig:
    """Everything a user can get wrong, refused in a fixed order before any work; returns the configuration
    with its labels normalised and the genotype file resolved (the given one is left as it is)."""
    if not config.bids_dir.is_dir():
        raise MissingInputError(f"BIDS_DIR {config.bids_dir} does not exist or is not a directory",
                                hint="give the root folder of a BIDS dataset")
    check_outside_dataset(config)
    config = config.with_options(participant_label=[normalize_label(p) for p in config.participant_label],
                                 session_label=[normalize_label(s, "session") for s in config.session_label])
    for option in ("bids_filter_file", "gene_panel", "train_config", "use_plugin", "fs_license_file"):
        path = getattr(config, option)
        if path is not None and not path.is_file():
            raise MissingInputError(f"--{option.replace('_', '-')} {path} does not exist or is not a file")
    if config.model is not None and not config.model.is_dir():
        raise MissingInputError(f"--model {config.model} is not a model bundle directory",
                                hint="give the folder written by 'rgenima ... group --train' (models/<name>)")
    if config.genotypes is not None:
        config = config.with_options(genotypes=resolve_genotypes(config.genotypes))

    if config.llm in PRETRAINED:
        check_available(config.llm)  # a clear error now, before any processing, when its package is missing
    elif config.llm != "tiny" and not Path(config.llm).is_dir():
        raise MissingInputError(f"--llm {config.llm} is neither 'tiny', a pretrained name "
                                f"({', '.join(PRETRAINED)}) nor a local model directory",
                                hint="models are never downloaded: give a directory with config.json and *.safetensors")
    if config.deepspeed is not None and config.deepspeed not in DEEPSPEED_PRESETS and not Path(config.deepspeed).is_file():
        raise MissingInputError(f"--deepspeed {config.deepspeed} is neither a preset nor a file",
                                hint=f"presets: {', '.join(DEEPSPEED_PRESETS)}")
    if config.train_config is not None:  # read and checked now: a bad file is refused before any work
        (config.training, config.analysis)
    if config.analysis_level == "participant" and config.train:
        raise UsageError("--train is a group-level option", hint="run 'rgenima BIDS_DIR OUTPUT_DIR group --train'")
    if config.analysis_level == "group" and config.overwrite:
        raise UsageError("--overwrite is a participant-level option",
                         hint="the group level rewrites its tables on every run; a trained model is never "
                              "overwritten (remove models/<name> to train it again)")
    if config.analysis_level == "group" and not (config.train or config.model):
        raise UsageError("the group level needs --train (to train a model) or --model (to analyse a cohort)")
    if config.group_by is not None and not (config.analysis_level == "group" and config.model and not config.train):
        raise UsageError(f"--group-by {config.group_by} applies to the group analysis only",
                         hint="use it with 'group --model BUNDLE'")
    if config.attribution is not None and not (config.analysis_level == "participant" and config.model is not None):
        raise UsageError(f"--attribution {config.attribution} applies to the participant level with --model only",
                         hint="the group analysis reads the attribution method each participant's outputs record "
                              "(AttributionMethod in their sidecars)" if config.analysis_level == "group"
                         else "add --model BUNDLE to predict and explain the participants")
    if config.attribution_steps is not None and config.attribution != "integrated_gradients":
        raise UsageError(f"--attribution-steps {config.attribution_steps} applies to --attribution "
                         f"integrated_gradients only (this run: --attribution {config.attribution})",
                         hint="drop --attribution-steps, or add --attribution integrated_gradients")
    _refuse_stages_not_built(config)
    if config.model is not None and config.analysis_level == "participant":
        from rgenima_app.workflows.checks import check_model  # see the module docstring

        check_model(config)
    return config


def check_outside_dataset(config: RunConfig) -> None:
    """Nothing is written inside BIDS_DIR except below ``BIDS_DIR/derivatives/`` (fMRIPrep's rule): checked
    before anything is created, as a work dir inside the dataset would change the input (and then fail
    its validation). A FreeSurfer subjects dir there is allowed with --fs-no-reconall only (it is then read,
    never written)."""
    bids, derivatives = config.bids_dir.resolve(), config.bids_dir.resolve() / "derivatives"
    roots = {"OUTPUT_DIR": config.output_dir, "the work dir (-w)": config.work_dir}
    if not config.fs_no_reconall:
        roots["--fs-subjects-dir"] = config.fs_subjects_dir
    for what, path in roots.items():
        path = path.resolve()
        if path.is_relative_to(bids) and not (path.is_relative_to(derivatives) and path != derivatives):
            where = "is BIDS_DIR itself" if path == bids else f"is inside BIDS_DIR {bids}"
            extra = (" (or add --fs-no-reconall to only read the finished subjects there)"
                     if what == "--fs-subjects-dir" else "")
            raise UsageError(f"{what} {path} {where}: rgenima does not write into the input dataset",
                             hint=f"use a folder below {derivatives} (e.g. {derivatives / 'rgenima'}) or outside "
                                  f"BIDS_DIR{extra}")


def _refuse_stages_not_built(config: RunConfig) -> None:
    """Stages of later releases fail loudly (exit 1) before any work, never silently."""
    missing = []
    if config.reports_only and config.analysis_level == "participant":
        missing.append("--reports-only")
    if missing:
        raise ProcessingError(f"{' and '.join(missing)}: not available in rgenima {__version__}",
                              hint="this version runs the participant level's FreeSurfer/ROI and genotype stages")


def resolve_genotypes(path: Path) -> Path:
    """``--genotypes``: a PLINK ``.bed`` or prefix, or a VCF/BCF; returns the file to read."""
    if path.is_file() and path.name.endswith(GENOTYPE_SUFFIXES):
        return path
    if not path.name.endswith(GENOTYPE_SUFFIXES) and path.with_name(path.name + ".bed").is_file():
        return path.with_name(path.name + ".bed")
    raise MissingInputError(f"--genotypes {path} is not a readable PLINK .bed (or prefix) or VCF/BCF file",
                            hint="give cohort.bed (with cohort.bim and cohort.fam beside it), cohort, or cohort.vcf.gz")


# -- participant level ---------------------------------------------------------------------------------
def run_participant_level(config: RunConfig, writer: DerivativesWriter, run_id: str) -> None:
    if config.skip_bids_validation:
        log.info("BIDS validation skipped (--skip-bids-validation)")
    else:
        validate_bids(config.bids_dir)
    filters = load_bids_filters(config.bids_filter_file)
    samples = collect_t1w(config.bids_dir, config.participant_label, config.session_label, filters)
    participants = read_participants(config.bids_dir)
    log.info("%d T1w image(s) of %d participant(s) selected", len(samples), len({s.subject for s in samples}))
    writer.initialize(load_roi_table())
    config.save(config.output_dir / "logs", run_id)

    from rgenima_app.workflows.participant import process_samples  # see the module docstring

    process_samples(config, writer, samples, participants)
    check_written_outputs(config.output_dir, {s.subject for s in samples})


# -- group level ------------------------------------------------------------------------------------
def run_group_level(config: RunConfig, writer: DerivativesWriter, run_id: str) -> None:
    """``--train``: train and evaluate a model (training package); ``--model``: cohort analysis."""
    if config.train:
        from rgenima_app.workflows.train import train_group  # see the module docstring

        train_group(config, writer, run_id)
    else:
        from rgenima_app.workflows.analyse import analyse_group

        analyse_group(config, writer, run_id)
    if config.deepspeed is None or int(os.environ.get("RANK", 0)) == 0:  # the rank that wrote the outputs
        check_written_outputs(config.output_dir)


# -- the outputs, checked against bids_spec/derivatives.yaml ------------------------------------------
def check_written_outputs(output_dir: Path, subjects: set[str] | None = None) -> None:
    """The files the BIDS validator is told to skip (.bidsignore), and all others, checked against
    bids_spec/derivatives.yaml at the end of a run (docs/outputs.md, "Self-validation"); a file that fails
    fails the run (exit 1), after every output was written, so that no run passes with outputs that do not
    match their description. ``subjects``: the participant level checks its own participants only."""
    problems = check_outputs(output_dir, subjects)
    if not problems:
        log.info("output check: every file of %s matches bids_spec/derivatives.yaml", output_dir)
        return
    for problem in problems:
        log.error("output check: %s", problem)
    shown = "\n  ".join(map(str, problems[:10]))
    more = f"\n  ... and {len(problems) - 10} more (all in the run's log)" if len(problems) > 10 else ""
    raise ProcessingError(
        f"{len(problems)} problem(s) in the outputs, checked against rgenima's description of them "
        f"(bids_spec/derivatives.yaml):\n  {shown}{more}",
        hint="the outputs were written and are kept; a file rgenima did not write (remove it from OUTPUT_DIR) or a "
             "mismatch between rgenima and its specification (please report it)")
