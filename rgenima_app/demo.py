"""The bundled demo: make the synthetic ``demo`` cohort and run all of rgenima on it (no GPU, no FreeSurfer).

    python -m rgenima_app.demo [OUT]        (default OUT: ./rgenima-demo)

Writes OUT/cohort (the synthetic BIDS dataset, FreeSurfer subjects and PLINK genotypes, made once) and
OUT/derivatives (rgenima's BIDS-Derivatives output), running the same entry point users run, four times:

1. ``participant``: FreeSurfer subjects reused, 109 ROIs extracted, panel genotypes written;
2. ``group --train``: the tiny LLM trained on CPU (packaged ``train-demo.toml``), bundle in models/demo;
3. ``participant --model``: stage probabilities, attention rollout, attention maps, subject reports;
4. ``group --model``: cohort predictions, held-out metrics, stable ROIs and genes, group.html.

A step whose outputs exist is not redone, so rerunning the demo finishes what an interrupted one left.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import click

from rgenima_app import cli
from rgenima_app.synthetic import main as synthetic_main

DEMO_ROI_SIZE = 16  # small patches keep the demo's work dir in megabytes (the paper's 96 is for GPUs)


@click.command(help=__doc__)
@click.argument("out", type=click.Path(path_type=Path), default=Path("rgenima-demo"))
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, seed: int) -> None:
    cohort = out / "cohort"
    if not (cohort / "ground_truth.json").exists():
        click.echo(f"making the synthetic demo cohort in {cohort} ...")
        run(synthetic_main, [str(cohort), "--preset", "demo", "--seed", str(seed), "--overwrite"])
    derivatives = out / "derivatives"
    common = ["--fs-subjects-dir", str(cohort / "freesurfer"), "--genotypes", str(cohort / "genotypes" / "cohort.bed"),
              "--work-dir", str(out / "work"), "--seed", str(seed), "--roi-size", str(DEMO_ROI_SIZE)]
    bids = [str(cohort / "bids"), str(derivatives)]
    bundle = derivatives / "models" / "demo"
    train_config = resources.files("rgenima_app.data").joinpath("train-demo.toml")
    steps = [
        ("1/4 participant level: ROIs and genotypes", [*bids, "participant", *common]),
        ("2/4 group level: training (tiny LLM, CPU)",
         [*bids, "group", "--train", "--train-config", str(train_config), "--llm", "tiny", *common]
         if not bundle.exists() else None),
        ("3/4 participant level with the model: predictions and attention",
         [*bids, "participant", "--model", str(bundle), *common]),
        ("4/4 group level with the model: cohort analysis", [*bids, "group", "--model", str(bundle), *common]),
    ]
    for title, args in steps:
        if args is None:
            click.echo(f"\n== {title}: {bundle} exists, kept")
            continue
        click.echo(f"\n== {title}\nrgenima " + " ".join(args))
        run(cli.main, args)
    click.echo(f"\ndone: the derivatives dataset is {derivatives}\n"
               f"      group report: {derivatives / 'group.html'}\n"
               f"      subject reports: {derivatives}/sub-*.html\n"
               f"      model bundle: {bundle} (MODEL_CARD.md)\n"
               f"      ground truth of the cohort: {cohort / 'ground_truth.json'}")


def run(entry, args: list[str]) -> None:
    """Run a console entry point in-process; stop the demo with its exit code if it fails."""
    try:
        entry(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            sys.exit(exc.code)


if __name__ == "__main__":
    demo()
