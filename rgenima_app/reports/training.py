"""The training-curve figure of a training run (``figures/desc-<model>_training.svg``)."""
from __future__ import annotations

from pathlib import Path

from rgenima_app.bids.derivatives import write_text
from rgenima_app.reports.figures import _new_figure, to_svg

PANELS = (("stage1", "Stage 1: RiT"), ("stage2", "Stage 2: connector + LLM"))


def chance_caption(chance: dict[str, dict]) -> str | None:
    """The figure's banner when a model (fold) does not beat chance on its test participants, or records
    no chance check; None when every one beats chance."""
    failing = [name for name, check in chance.items() if check and check.get("beats_chance") is False]
    unknown = [name for name, check in chance.items() if not check or not isinstance(check.get("beats_chance"), bool)]
    parts = []
    if failing:
        parts.append(f"DOES NOT BEAT CHANCE on its test participants: {', '.join(failing)} "
                     "(accuracy not above the majority-class rate, or label-permutation p above alpha)")
    if unknown:
        parts.append(f"chance check unknown: {', '.join(unknown)}")
    return "; ".join(parts) or None


def write_training_figure(path: Path, curves: dict[str, dict], chance: dict[str, dict] | None = None) -> Path:
    """Loss per epoch of both stages (training solid, validation dashed), one line colour per fold;
    ``chance`` (model name -> its chance check, ``ChanceCheck.to_dict()``) puts a banner above the
    curves when a model does not beat chance: low losses then say nothing about held-out participants."""
    fig, axes = _new_figure(9, 3.2, ncols=2)
    caption = chance_caption(chance) if chance is not None else None
    if caption:
        fig.suptitle(caption, color="#b00020", fontsize=8, fontweight="bold", wrap=True)
    for ax, (stage, title) in zip(axes, PANELS):
        for i, (name, stages) in enumerate(curves.items()):
            curve = stages.get(stage)
            if not curve:
                continue
            color = f"C{i}"
            epochs = range(1, len(curve["train_loss"]) + 1)
            ax.plot(epochs, curve["train_loss"], color=color, label=f"{name} train")
            if curve.get("val_loss"):
                ax.plot(range(1, len(curve["val_loss"]) + 1), curve["val_loss"], color=color, linestyle="--",
                        label=f"{name} validation")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy")
        if ax.lines:
            ax.legend(fontsize=7, frameon=False)
        else:
            ax.text(0.5, 0.5, "not trained (gene-only data)", ha="center", va="center", transform=ax.transAxes)
    svg = to_svg(fig, Path(path).stem)  # a standalone file needs the namespace an inline SVG may omit
    if "xmlns=" not in svg.split(">", 1)[0]:
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    return write_text(Path(path), svg)
