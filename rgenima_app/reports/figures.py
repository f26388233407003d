"""Figures of the reports, returned as inline SVG (vector) or PNG data URIs (brain slices).

Everything is drawn with matplotlib's Agg backend and embedded into the HTML, so a report is a single
file that opens offline. SVG ids are salted per figure (no clashes between figures inlined in one page)
and text stays text (searchable, sharp at any zoom).
"""
from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from typing import Mapping, Sequence

os.environ.setdefault("MPLCONFIGDIR", os.path.join(tempfile.gettempdir(), "rgenima-matplotlib"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

STAGE_COLORS = {"NC": "#3b8f5a", "SMC": "#3d7cc9", "MCI": "#e69423", "AD": "#c8413a", "all": "#555555"}
GWAS_COLOR, OTHER_COLOR = "#8e3fa8", "#a8b3bf"
STYLE = {
    "font.family": "sans-serif", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
    "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelcolor": "#333333", "xtick.color": "#444444",
    "ytick.color": "#444444", "svg.fonttype": "none", "figure.dpi": 100,
}


def stage_color(group: str) -> str:
    return STAGE_COLORS.get(group, "#777777")


def _new_figure(width: float, height: float, **kwargs):
    with plt.rc_context(STYLE):
        return plt.subplots(figsize=(width, height), **kwargs)


def to_svg(fig, name: str) -> str:
    """The figure as an ``<svg>`` element for inlining (no XML prolog, DOCTYPE or metadata); closes it."""
    buffer = io.StringIO()
    with plt.rc_context({**STYLE, "svg.hashsalt": name}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # Let the page size the figure: keep the viewBox, drop fixed width/height in pt.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="figure"', text, count=1)


def to_png_uri(fig, dpi: int = 110) -> str:
    """The figure as a ``data:image/png;base64,...`` URI; closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor=fig.get_facecolor())
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def cohort_figure(counts: pd.DataFrame) -> str:
    """Participants per diagnostic group, split into columns (e.g. held out / training): rows = groups."""
    fig, ax = _new_figure(5.2, 0.5 + 0.42 * max(len(counts), 1))
    left = np.zeros(len(counts))
    shades = [1.0, 0.55, 0.3]
    for j, column in enumerate(counts.columns):
        values = counts[column].to_numpy(dtype=float)
        colors = [matplotlib.colors.to_rgba(stage_color(g), shades[j % len(shades)]) for g in counts.index]
        ax.barh(range(len(counts)), values, left=left, color=colors, edgecolor="white", label=str(column))
        for i, (x0, v) in enumerate(zip(left, values)):
            if v > 0:
                ax.text(x0 + v / 2, i, f"{int(v)}", ha="center", va="center", fontsize=8,
                        color="white" if j == 0 else "#222222")
        left += values
    ax.set_yticks(range(len(counts)), counts.index)
    ax.invert_yaxis()
    ax.set_xlabel("participants")
    if len(counts.columns) > 1:
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(counts.columns), fontsize=8)
    return to_svg(fig, "cohort")


def confusion_figure(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """Confusion matrix (rows: true, columns: predicted); colour = row fraction, text = counts."""
    matrix = np.asarray(matrix, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    frac = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = _new_figure(3.4, 3.0)
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{int(matrix[i, j])}\n{frac[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if frac[i, j] > 0.55 else "#222222")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.spines[:].set_visible(False)
    return to_svg(fig, "confusion")


def stage_heatmap(frequency: pd.DataFrame, threshold: float) -> str:
    """Top-k frequency of ROIs (rows) in each stage (columns); cells above ``threshold`` are outlined."""
    fig, ax = _new_figure(1.6 + 0.9 * frequency.shape[1], 0.9 + 0.24 * max(len(frequency), 1))
    ax.imshow(frequency.to_numpy(dtype=float), cmap="magma_r", vmin=0, vmax=1, aspect="auto")
    for i in range(frequency.shape[0]):
        for j in range(frequency.shape[1]):
            value = frequency.iat[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value > 0.55 else "#222222", fontweight="bold" if value > threshold else None)
            if value > threshold:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.6, ec="#1d1d1d"))
    ax.set_xticks(range(frequency.shape[1]), frequency.columns)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(frequency)), frequency.index, fontsize=8)
    ax.spines[:].set_visible(False)
    ax.tick_params(length=0)
    return to_svg(fig, "stageheat")


def stage_bars(table: pd.DataFrame, group: str, threshold: float, n: int = 12) -> str:
    """Top ``n`` ROIs of one group by top-k frequency; selected ROIs in the stage colour."""
    top = table.sort_values(["frequency", "mean"], ascending=False).head(n)
    fig, ax = _new_figure(4.0, 0.6 + 0.2 * len(top))
    colors = [stage_color(group) if s else "#c9cfd6" for s in top["selected"]]
    ax.barh(range(len(top)), top["frequency"], color=colors)
    ax.axvline(threshold, color="#333333", lw=0.8, ls="--")
    ax.set_yticks(range(len(top)), top["roi"], fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of bootstrap iterations in the top set")
    ax.set_title(group, color=stage_color(group), loc="left")
    return to_svg(fig, f"stagebars-{group}")


def _slice_centre(weights: np.ndarray, fallback: np.ndarray) -> tuple[int, int, int]:
    """Per axis, the slice holding most of the painted weight (of the brain mask when nothing is painted)."""
    mass = weights if weights.sum() > 0 else fallback.astype(float)
    if mass.sum() == 0:
        return tuple(s // 2 for s in weights.shape)
    axes = {0: (1, 2), 1: (0, 2), 2: (0, 1)}
    return tuple(int(np.argmax(mass.sum(axis=axes[a]))) for a in range(3))


def brain_slices(dseg, roi_values: Mapping[int, float], title: str, vmax: float = 1.0,
                 colorbar_label: str = "top-set frequency") -> str:
    """Paint ``roi_values`` (image value -> value) into an ROI image and show three slices.

    ``dseg`` is a nibabel ROI image (a participant's ``desc-rois_dseg``), reoriented to
    RAS for display; voxels of unlisted ROIs show as the grey brain outline; ``colorbar_label`` names
    the colour bar. Returns a PNG data URI.
    """
    import nibabel as nib

    image = nib.as_closest_canonical(dseg)
    labels = np.asarray(image.dataobj).astype(np.int64)
    painted = np.zeros(labels.shape)
    for label, value in roi_values.items():
        painted[labels == int(label)] = float(value)
    brain = labels > 0
    cx, cy, cz = _slice_centre(painted, brain)
    zooms = image.header.get_zooms()[:3]
    views = [("sagittal", painted[cx, :, :], brain[cx, :, :], zooms[2] / zooms[1]),
             ("coronal", painted[:, cy, :], brain[:, cy, :], zooms[2] / zooms[0]),
             ("axial", painted[:, :, cz], brain[:, :, cz], zooms[1] / zooms[0])]
    cmap = plt.get_cmap("inferno").with_extremes(bad=(0, 0, 0, 0))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.7), facecolor="#0f1115",
                                 gridspec_kw={"wspace": 0.02})
        for ax, (name, values, mask, aspect) in zip(axes, views):
            ax.imshow(np.where(mask, 0.35, 0.0).T, cmap=ListedColormap(["#0f1115", "#5b6170"]), origin="lower",
                      vmin=0, vmax=0.35, aspect=aspect, interpolation="nearest")
            ax.imshow(np.ma.masked_less_equal(values, 0).T, cmap=cmap, vmin=0, vmax=vmax, origin="lower",
                      aspect=aspect, interpolation="nearest")
            ax.set_title(name, color="#aeb4c0", fontsize=9, fontweight="normal")
            ax.set_axis_off()
        fig.suptitle(title, color="#f3f4f6", fontsize=11, fontweight="bold", x=0.13, y=1.0, ha="left")
        mappable = plt.cm.ScalarMappable(norm=plt.Normalize(0, vmax), cmap=cmap)
        bar = fig.colorbar(mappable, ax=axes, fraction=0.025, pad=0.02)
        bar.ax.tick_params(colors="#d9dde5", labelsize=7)
        bar.set_label(colorbar_label, color="#d9dde5", fontsize=7)
    return to_png_uri(fig)


def manhattan(table: pd.DataFrame, group: str, rois: Sequence[str], n_annotate: int = 2) -> str:
    """The paper's ROI-gene plot: ROIs as contiguous blocks on x, stability on y, top genes annotated.

    ``table`` is the ROI-gene stability table restricted to one group; ``rois`` the ROIs to show, in order.
    """
    rois = list(rois)
    genes = list(dict.fromkeys(table["gene"]))
    fig, ax = _new_figure(10.0, 3.3)
    palette = plt.get_cmap("tab10" if len(rois) <= 10 else "tab20")
    ticks = []
    for i, roi in enumerate(rois):
        part = table[table["roi"] == roi].set_index("gene").reindex(genes)
        x = i * (len(genes) + 8) + np.arange(len(genes))
        y = part["stability"].to_numpy(dtype=float)
        ax.scatter(x, np.nan_to_num(y, nan=0.0), s=9, color=palette(i % palette.N), alpha=0.85, lw=0)
        ticks.append(x.mean())
        best = part["stability"].dropna().sort_values(ascending=False).head(n_annotate)
        for rank, (gene, value) in enumerate(best.items()):
            xi = x[genes.index(gene)]
            side = -1 if rank % 2 == 0 else 1  # first gene to the left, second to the right: no overlap
            ax.annotate(gene, (xi, value), xytext=(side * 6, 8 + 10 * rank), textcoords="offset points",
                        fontsize=7.5, fontstyle="italic", ha="right" if side < 0 else "left",
                        arrowprops=dict(arrowstyle="-", lw=0.5, color="#666666"))
    ax.set_xticks(ticks, [r.replace("ctx-", "") for r in rois], rotation=20 if len(rois) > 6 else 0,
                  ha="right" if len(rois) > 6 else "center", fontsize=8)
    ax.set_ylabel("stability (mean / 95% CI width)")
    ax.set_title(group, color=stage_color(group), loc="left")
    ax.margins(y=0.18)
    return to_svg(fig, f"manhattan-{group}")


def gene_ranking_figure(ranking: pd.DataFrame, gwas: set[str], threshold: float, n: int = 25) -> str:
    """Top ``n`` genes by top-set frequency; GWAS-supported genes coloured, stable genes in bold."""
    top = ranking.sort_values("rank").head(n)
    fig, ax = _new_figure(4.6, 0.7 + 0.15 * len(top))
    colors = [GWAS_COLOR if g in gwas else OTHER_COLOR for g in top["gene"]]
    ax.barh(range(len(top)), top["frequency"], color=colors)
    ax.axvline(threshold, color="#333333", lw=0.8, ls="--")
    ax.set_yticks(range(len(top)), top["gene"], fontsize=7.5, fontstyle="italic")
    for tick, stable in zip(ax.get_yticklabels(), top["stable"]):
        tick.set_fontweight("bold" if stable else "normal")
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("fraction of bootstrap iterations in the top set")
    handles = [plt.Rectangle((0, 0), 1, 1, color=GWAS_COLOR), plt.Rectangle((0, 0), 1, 1, color=OTHER_COLOR)]
    ax.legend(handles, ["GWAS-supported", "other panel gene"], frameon=False, fontsize=7.5, loc="lower right")
    return to_svg(fig, "generanking")
