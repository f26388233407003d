"""Figures of the reports, returned as inline SVG (vector) or PNG data URIs (brain slices).

Everything is drawn with matplotlib's Agg backend and embedded into the HTML, so a report is a single
file that opens offline. SVG ids are salted per figure (no clashes between figures inlined in one page)
and text stays text (searchable, sharp at any zoom).

Colour conventions, the same in every figure of both reports:
- a stage (NC, SMC, MCI, AD) is always drawn in its ``stage_color``, and no other quantity uses those colours;
- every amount (ROI importance, attention, top-set frequency, a fraction of participants) is drawn on one
  sequential scale, ``AMOUNT_CMAP``: dark is little, bright is much;
- brain maps use a ``ColourScale`` fixed in advance (never the range of the data shown), so a colour means
  the same value in every participant's report.
"""
from __future__ import annotations

import base64
import io
import os
import re
import tempfile
from dataclasses import dataclass
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
#: Bars of an amount that belongs to no stage (a participant's ROI importance): a neutral slate.
AMOUNT_COLOR = "#4c5b70"
#: The one sequential colour scale of every amount: dark = little, bright = much.
AMOUNT_CMAP = "inferno"
#: Colours of the ROI kinds (desc-rois_dseg.tsv ``kind``) in the segmentation figure, none a stage colour.
KIND_COLORS = {"cortical": "#ffe14d", "subcortical": "#ff5ce1", "white-matter": "#5ce8ff", "ventricle": "#ffffff",
               "other": "#b6ff5c"}
BACKGROUND = "#0f1115"


@dataclass(frozen=True)
class ColourScale:
    """A fixed colour scale of a brain map: values up to ``threshold`` are not painted (the anatomy shows),
    ``vmin``..``vmax`` span the colour map, values above ``vmax`` take its brightest colour."""

    vmin: float
    vmax: float
    threshold: float
    label: str
    open_top: bool = False  # values above vmax occur (shown by the colour bar's arrow)


#: A participant's ROI importance relative to the uniform share 1/109 (importance x 109): the same scale for
#: every participant and model; ROIs at or below their uniform share are not painted.
IMPORTANCE_SCALE = ColourScale(1.0, 3.0, 1.0, "ROI importance / uniform share 1/109 (1 = all ROIs equal)",
                               open_top=True)
#: The group report's fraction of bootstrap resamples in which an ROI is in a stage's top set.
FREQUENCY_SCALE = ColourScale(0.0, 1.0, 0.0, "top-set frequency")
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


def text_on_amount(fraction: float) -> str:
    """Legible text on a cell of ``AMOUNT_CMAP`` at ``fraction`` of its range (light on the dark end)."""
    return "white" if fraction < 0.6 else "#111111"


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
    ax.imshow(frac, cmap=AMOUNT_CMAP, vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, f"{int(matrix[i, j])}\n{frac[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color=text_on_amount(frac[i, j]))
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.spines[:].set_visible(False)
    return to_svg(fig, "confusion")


def roc_figure(curves: Sequence[Mapping]) -> str:
    """One-vs-rest ROC curves, each ``{"stage", "fpr", "tpr", "auc", "n_positive"}`` in its stage colour with
    its AUC in the legend; the diagonal is chance."""
    fig, ax = _new_figure(3.6, 3.4)
    ax.plot([0, 1], [0, 1], color="#9aa1ad", lw=0.8, ls="--")
    for curve in curves:
        ax.plot(curve["fpr"], curve["tpr"], color=stage_color(curve["stage"]), lw=1.6, drawstyle="default",
                label=f"{curve['stage']} vs rest: AUC {curve['auc']:.3f} (n+ = {curve['n_positive']})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (1 - specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    return to_svg(fig, "roc")


def calibration_figure(bins: Mapping[str, pd.DataFrame]) -> str:
    """Reliability per stage (``bins``: stage -> ``analysis.metrics.reliability`` table): observed fraction of
    the stage against the mean predicted probability of each bin, marker area by the bin's participants; the
    diagonal is perfect calibration."""
    fig, ax = _new_figure(3.6, 3.4)
    ax.plot([0, 1], [0, 1], color="#9aa1ad", lw=0.8, ls="--", label="perfectly calibrated")
    for stage, table in bins.items():
        if len(table):
            ax.plot(table["predicted"], table["observed"], color=stage_color(stage), lw=1.0, alpha=0.8)
            ax.scatter(table["predicted"], table["observed"], s=12 + 6 * table["n"], color=stage_color(stage),
                       edgecolor="white", lw=0.5, label=stage, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("predicted probability of the stage")
    ax.set_ylabel("observed fraction with the stage")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    return to_svg(fig, "calibration")


def stage_heatmap(frequency: pd.DataFrame, threshold: float) -> str:
    """Top-k frequency of ROIs (rows) in each stage (columns); cells above ``threshold`` are outlined."""
    fig, ax = _new_figure(1.6 + 0.9 * frequency.shape[1], 0.9 + 0.24 * max(len(frequency), 1))
    ax.imshow(frequency.to_numpy(dtype=float), cmap=AMOUNT_CMAP, vmin=0, vmax=1, aspect="auto")
    for i in range(frequency.shape[0]):
        for j in range(frequency.shape[1]):
            value = frequency.iat[i, j]
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color=text_on_amount(value), fontweight="bold" if value > threshold else None)
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


def canonical_volume(image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A nibabel image as a 3-D array in RAS voxel order (the first volume of a 4-D one) and its voxel size:
    images on one grid stay on one grid."""
    import nibabel as nib

    image = nib.as_closest_canonical(image)
    data = np.asarray(image.dataobj)
    while data.ndim > 3:
        data = data[..., 0]
    return data, tuple(float(z) for z in image.header.get_zooms()[:3])


def _views(volume: np.ndarray, centre: Sequence[int], zooms) -> list[tuple[str, np.ndarray, float]]:
    """Sagittal, coronal and axial slices through ``centre``, each with its display aspect."""
    cx, cy, cz = centre
    return [("sagittal", volume[cx, :, :], zooms[2] / zooms[1]), ("coronal", volume[:, cy, :], zooms[2] / zooms[0]),
            ("axial", volume[:, :, cz], zooms[1] / zooms[0])]


def overlay_cmap() -> ListedColormap:
    """``AMOUNT_CMAP`` for painting over anatomy: its dark end is left out (it would hide the T1w as a black
    hole) and its opacity grows with the value, so values just above the threshold let the anatomy show."""
    colours = plt.get_cmap(AMOUNT_CMAP)(np.linspace(0.2, 1.0, 256))
    colours[:, 3] = np.linspace(0.35, 1.0, 256)
    return ListedColormap(colours, name="amount-overlay").with_extremes(bad=(0, 0, 0, 0), over=colours[-1])


def _display_range(anatomy: np.ndarray) -> tuple[float, float]:
    """Greyscale window of a T1w: 1st to 99.5th percentile of its nonzero voxels."""
    values = anatomy[anatomy > 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99.5])
    return float(low), float(high if high > low else low + 1)


def overlay_figure(values: np.ndarray, scale: ColourScale, title: str, zooms, anatomy: np.ndarray | None = None,
                   brain: np.ndarray | None = None):
    """Three orthogonal slices of ``values`` (3-D, RAS order) painted with ``scale`` over ``anatomy`` (a T1w
    on the same grid, in greyscale) or, without one, over the grey outline of ``brain``; returns the figure.

    The colours come from ``scale`` alone, never from the range of ``values``: the same value has the same
    colour in every participant's figure. Slices pass through the most painted voxels."""
    painted = np.where(values > scale.threshold, values, 0.0)
    outline = brain if brain is not None else (anatomy > 0 if anatomy is not None else values > 0)
    centre = _slice_centre(painted, outline)
    cmap = overlay_cmap()
    norm = plt.Normalize(scale.vmin, scale.vmax)
    window = _display_range(anatomy) if anatomy is not None else None
    painted_views = _views(painted, centre, zooms)
    background_views = _views(anatomy if anatomy is not None else outline, centre, zooms)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.7), facecolor=BACKGROUND, gridspec_kw={"wspace": 0.02})
        for ax, (name, shown, aspect), (_, under, _) in zip(axes, painted_views, background_views):
            if anatomy is not None:
                ax.imshow(under.T, cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect,
                          interpolation="nearest")
            else:
                ax.imshow(np.where(under, 0.35, 0.0).T, cmap=ListedColormap([BACKGROUND, "#5b6170"]), origin="lower",
                          vmin=0, vmax=0.35, aspect=aspect, interpolation="nearest")
            ax.imshow(np.ma.masked_less_equal(shown, scale.threshold).T, cmap=cmap, norm=norm, origin="lower",
                      aspect=aspect, interpolation="nearest")
            ax.set_title(name, color="#aeb4c0", fontsize=9, fontweight="normal")
            ax.set_axis_off()
        fig.suptitle(title, color="#f3f4f6", fontsize=11, fontweight="bold", x=0.13, y=1.0, ha="left")
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, fraction=0.025, pad=0.02,
                           extend="max" if scale.open_top else "neither")
        bar.ax.tick_params(colors="#d9dde5", labelsize=7)
        bar.set_label(scale.label, color="#d9dde5", fontsize=7)
    return fig


def paint_rois(labels: np.ndarray, roi_values: Mapping[int, float]) -> np.ndarray:
    """An ROI label volume with each listed label's voxels set to its value (0 elsewhere)."""
    lut = np.zeros(max([int(labels.max()), *map(int, roi_values)], default=0) + 1)
    for label, value in roi_values.items():
        lut[int(label)] = float(value)
    return lut[np.clip(labels.astype(np.int64), 0, None)]


def brain_slices(dseg, roi_values: Mapping[int, float], title: str, scale: ColourScale = FREQUENCY_SCALE,
                 anatomy=None) -> str:
    """Paint ``roi_values`` (ROI label -> value) into ``dseg`` (a nibabel ROI image) and show three slices with
    ``scale``, over ``anatomy`` (a nibabel T1w on the grid of ``dseg``) or the grey outline of the ROIs.
    Returns a PNG data URI."""
    labels, zooms = canonical_volume(dseg)
    background = canonical_volume(anatomy)[0].astype(float) if anatomy is not None else None
    return to_png_uri(overlay_figure(paint_rois(labels, roi_values), scale, title, zooms, background, labels > 0))


def statmap_slices(statmap, anatomy, title: str, scale: ColourScale, factor: float = 1.0) -> str:
    """A statmap (nibabel, values x ``factor``) over ``anatomy`` (a nibabel T1w on the same grid) with
    ``scale``; returns a PNG data URI."""
    values, zooms = canonical_volume(statmap)
    background = canonical_volume(anatomy)[0].astype(float)
    return to_png_uri(overlay_figure(values.astype(float) * factor, scale, title, zooms, background, values > 0))


def _outline(labels: np.ndarray) -> np.ndarray:
    """The labelled pixels of a 2-D slice that touch another label (or the background): the ROI borders."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return edge & (labels > 0)


def segmentation_figure(anatomy, labels, kinds: Mapping[int, str], title: str, n_slices: int = 5) -> str:
    """The segmentation QC figure: ROI borders of ``labels`` (a nibabel ROI image on the grid of ``anatomy``,
    a nibabel T1w), coloured by ROI kind (``kinds``: label -> kind of desc-rois_dseg.tsv), on ``n_slices``
    axial, coronal and sagittal T1w slices across the labelled extent. Returns a PNG data URI."""
    t1w, zooms = canonical_volume(anatomy)
    rois = canonical_volume(labels)[0].astype(np.int64)
    window = _display_range(t1w.astype(float))
    kind_names = list(KIND_COLORS)
    kind_of = np.zeros(max([int(rois.max()), *kinds], default=0) + 1, dtype=np.int64)  # 0: no ROI
    for label, kind in kinds.items():
        kind_of[int(label)] = kind_names.index(kind if kind in KIND_COLORS else "other") + 1
    colours = ListedColormap([(0, 0, 0, 0)] + [matplotlib.colors.to_rgba(KIND_COLORS[k]) for k in kind_names])
    present = np.argwhere(rois > 0)
    if len(present):
        low, high = present.min(axis=0), present.max(axis=0)
    else:
        low, high = np.zeros(3, int), np.array(rois.shape) - 1
    views = [("axial", 2), ("coronal", 1), ("sagittal", 0)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(3, n_slices, figsize=(1.6 * n_slices, 5.2), facecolor=BACKGROUND,
                                 gridspec_kw={"wspace": 0.02, "hspace": 0.08}, squeeze=False)
        for row, (name, axis) in enumerate(views):
            plane = [i for i in range(3) if i != axis]
            aspect = zooms[plane[1]] / zooms[plane[0]]
            for col, index in enumerate(np.linspace(low[axis], high[axis], n_slices + 2)[1:-1].round().astype(int)):
                ax = axes[row, col]
                image = np.take(t1w, index, axis=axis).astype(float)
                border = np.where(_outline(np.take(rois, index, axis=axis)),
                                  kind_of[np.clip(np.take(rois, index, axis=axis), 0, len(kind_of) - 1)], 0)
                ax.imshow(image.T, cmap="gray", vmin=window[0], vmax=window[1], origin="lower", aspect=aspect,
                          interpolation="nearest")
                ax.imshow(border.T, cmap=colours, vmin=0, vmax=len(kind_names), origin="lower", aspect=aspect,
                          interpolation="nearest")
                ax.set_axis_off()
                if col == 0:
                    ax.set_title(name, color="#aeb4c0", fontsize=8, fontweight="normal", loc="left")
        handles = [plt.Rectangle((0, 0), 1, 1, color=KIND_COLORS[k]) for k in kind_names]
        legend = fig.legend(handles, kind_names, loc="lower center", ncol=len(kind_names), frameon=False, fontsize=7.5,
                            bbox_to_anchor=(0.5, -0.02))
        for text in legend.get_texts():
            text.set_color("#d9dde5")
        fig.suptitle(title, color="#f3f4f6", fontsize=11, fontweight="bold", x=0.13, y=0.99, ha="left")
    return to_png_uri(fig, dpi=100)


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
