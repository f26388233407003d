"""The bundled demo: make the synthetic ``demo`` cohort and run all of rgenima on it (no GPU, no FreeSurfer).

    python -m rgenima_app.demo [OUT]        (default OUT: ./rgenima-demo)

Writes OUT/cohort (the synthetic BIDS dataset, FreeSurfer subjects and PLINK genotypes, made once) and
OUT/derivatives (rgenima's BIDS-Derivatives output), running the same entry point users run, four times:

1. ``participant``: FreeSurfer subjects reused, 109 ROIs extracted, panel genotypes written;
2. ``group --train``: the tiny LLM trained on CPU (packaged ``train-demo.toml``), bundle in models/demo;
3. ``participant --model``: stage probabilities, attributions (attention x gradient by default), attention maps, subject reports;
4. ``group --model``: cohort predictions, held-out metrics, stable ROIs and genes, group.html.

A step whose outputs exist is not redone, so rerunning the demo finishes what an interrupted one left.
"""
from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import click

from rgenima_app import cli
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.synthetic import main as synthetic_main
from rgenima_app.training.classical import NAME as CLASSICAL

DEMO_ROI_SIZE = 16  # small patches keep the demo's work dir in megabytes (the paper's 96 is for GPUs)
# 120 participants leave 30 held out: enough for a model that learned to beat chance visibly (with 40, the
# 11 held-out participants could not tell a learned model from the majority answer)
DEMO_PARTICIPANTS = 120


@click.command(help=__doc__)
@click.argument("out", type=click.Path(path_type=Path), default=Path("rgenima-demo"))
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, seed: int) -> None:
    cohort = out / "cohort"
    if not (cohort / "ground_truth.json").exists():
        click.echo(f"making the synthetic demo cohort in {cohort} ...")
        run(synthetic_main, [str(cohort), "--preset", "demo", "--n-participants", str(DEMO_PARTICIPANTS),
                             "--seed", str(seed), "--overwrite"])
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
    click.echo("\n" + held_out_summary(derivatives / "desc-demo_evaluation.tsv", cohort / "ground_truth.json"))
    click.echo(f"\ndone: the derivatives dataset is {derivatives}\n"
               f"      group report: {derivatives / 'group.html'}\n"
               f"      subject reports: {derivatives}/sub-*.html\n"
               f"      model bundle: {bundle} (MODEL_CARD.md)\n"
               f"      ground truth of the cohort: {cohort / 'ground_truth.json'}")


def held_out_summary(evaluation: Path, ground_truth: Path, model: str = "demo") -> str:
    """The trained model's held-out accuracy beside its references on the same test participants: the
    majority-class rate and permutation p of the chance check, the classical reference, and the cohort's
    Bayes-optimal accuracy (an oracle that knows the generating model)."""
    table = read_tsv(evaluation)
    accuracy = table[(table["metric"] == "accuracy") & (table["fold"].astype(str) == "0")].set_index("model")
    row = accuracy.loc[model]
    bayes = json.loads(ground_truth.read_text())["bayes_optimal_accuracy"]
    verdict = "beats chance" if str(row["beats_chance"]).lower() == "true" else "does NOT beat chance"
    lines = [f"held-out accuracy of the demo model: {row['value']:.3f} "
             f"(95% CI {row['ci_low']:.3f}-{row['ci_high']:.3f}), {verdict} "
             f"(majority-class rate {row['majority_rate']:.3f}, permutation p {row['permutation_p']:.3g})"]
    if CLASSICAL in accuracy.index:
        ref = accuracy.loc[CLASSICAL]
        lines.append(f"  classical reference ({CLASSICAL}) on the same participants: {ref['value']:.3f} "
                     f"(95% CI {ref['ci_low']:.3f}-{ref['ci_high']:.3f})")
    lines.append(f"  Bayes-optimal accuracy of the cohort (oracle): {bayes:.3f}")
    return "\n".join(lines)


def run(entry, args: list[str]) -> None:
    """Run a console entry point in-process; stop the demo with its exit code if it fails."""
    try:
        entry(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            sys.exit(exc.code)


if __name__ == "__main__":
    demo()
