"""The bundled demo: make the synthetic ``demo`` cohort and run rgenima on it (no GPU, no FreeSurfer).

    python -m rgenima_app.demo [OUT]        (default OUT: ./rgenima-demo)

Writes OUT/cohort (the synthetic BIDS dataset, FreeSurfer subjects and PLINK genotypes, made once)
and OUT/derivatives (rgenima's BIDS-Derivatives output), running the same entry point users run:
``rgenima OUT/cohort/bids OUT/derivatives participant --fs-subjects-dir ... --genotypes ...``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from rgenima_app import cli
from rgenima_app.synthetic import main as synthetic_main


@click.command(help=__doc__)
@click.argument("out", type=click.Path(path_type=Path), default=Path("rgenima-demo"))
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, seed: int) -> None:
    cohort = out / "cohort"
    if not (cohort / "ground_truth.json").exists():
        click.echo(f"making the synthetic demo cohort in {cohort} ...")
        run(synthetic_main, [str(cohort), "--preset", "demo", "--seed", str(seed), "--overwrite"])
    derivatives = out / "derivatives"
    args = [str(cohort / "bids"), str(derivatives), "participant",
            "--fs-subjects-dir", str(cohort / "freesurfer"),
            "--genotypes", str(cohort / "genotypes" / "cohort.bed"),
            "--work-dir", str(out / "work"), "--seed", str(seed), "-v"]
    click.echo("running: rgenima " + " ".join(args))
    run(cli.main, args)
    click.echo(f"\ndone: the derivatives dataset is {derivatives}\n"
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
