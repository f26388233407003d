"""The subject report's brain figures: one colour scale for every participant, the segmentation QC figure."""
from __future__ import annotations

import base64
import io

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.image import imread

from rgenima_app.reports import figures


def _t1w_and_labels():
    labels = np.zeros((20, 22, 18), dtype=np.int16)
    labels[4:9, 5:11, 4:10], labels[10:16, 5:11, 4:10], labels[6:14, 12:18, 6:12] = 1, 2, 3
    t1w = np.where(labels > 0, 100.0, 10.0) + np.indices(labels.shape)[0]
    affine = np.diag([1.0, 1.2, 1.0, 1.0])
    return nib.Nifti1Image(t1w.astype(np.float32), affine), nib.Nifti1Image(labels, affine), labels


def test_the_importance_colour_scale_is_fixed_across_participants():
    _, _, labels = _t1w_and_labels()
    # two participants: ROI 1 has twice its uniform share in both, but their other ROIs differ widely, so a
    # scale from each participant's own range would colour ROI 1 differently
    ratios = [{1: 2.0, 2: 1.1, 3: 0.5}, {1: 2.0, 2: 6.0, 3: 0.9}]
    colours, norms, bars = [], [], []
    for values in ratios:
        painted = figures.paint_rois(labels, values)
        fig = figures.overlay_figure(painted, figures.IMPORTANCE_SCALE, "x", (1, 1, 1), anatomy=None,
                                     brain=labels > 0)
        overlay = fig.axes[0].get_images()[1]
        norms.append((overlay.norm.vmin, overlay.norm.vmax))
        colour_bar = fig.axes[-1]
        bars.append((colour_bar.get_ylim(), colour_bar.get_ylabel()))
        colours.append(tuple(overlay.to_rgba(np.array([[2.0]]))[0, 0]))
        shown = overlay.get_array()
        assert shown.count() > 0 and shown.min() > 1.0     # ROIs at or below their uniform share are not painted
        plt.close(fig)
    assert norms == [(1.0, 3.0), (1.0, 3.0)]
    assert bars[0] == bars[1] and bars[0][0] == (1.0, 3.0) and "uniform share 1/109" in bars[0][1]
    assert colours[0] == colours[1]
    # and the colour says how much: brighter for more (the one direction of every amount in the reports)
    overlay_cmap = figures.overlay_cmap()
    luminance = [np.dot(overlay_cmap(x)[:3], [0.299, 0.587, 0.114]) for x in (0.0, 0.5, 1.0)]
    assert luminance[0] < luminance[1] < luminance[2]


def test_amount_figures_share_one_colour_direction():
    confusion = figures.confusion_figure(np.array([[5, 0], [1, 4]]), ["NC", "AD"])
    heat = figures.stage_heatmap(__import__("pandas").DataFrame({"AD": [0.9, 0.1]}, index=["a", "b"]), 0.5)
    assert figures.AMOUNT_CMAP == "inferno"     # dark = little, bright = much
    cmap = plt.get_cmap(figures.AMOUNT_CMAP)
    assert np.mean(cmap(0.0)[:3]) < np.mean(cmap(1.0)[:3])
    assert "<svg" in confusion and "<svg" in heat
    assert not set(figures.KIND_COLORS.values()) & set(figures.STAGE_COLORS.values())
    assert figures.AMOUNT_COLOR not in figures.STAGE_COLORS.values()


def test_segmentation_figure_draws_roi_borders_on_the_t1w():
    t1w, labels_image, labels = _t1w_and_labels()
    uri = figures.segmentation_figure(t1w, labels_image, {1: "cortical", 2: "subcortical", 3: "ventricle"}, "QC")
    assert uri.startswith("data:image/png;base64,")
    pixels = imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))[..., :3]

    def present(colour):
        target = np.array(plt.matplotlib.colors.to_rgb(colour))
        return np.count_nonzero(np.all(np.abs(pixels - target) < 2 / 255, axis=-1))

    # the borders of all three kinds are drawn, and the T1w shows inside them (grey, not painted over)
    assert present(figures.KIND_COLORS["cortical"]) > 20 and present(figures.KIND_COLORS["subcortical"]) > 20
    assert present(figures.KIND_COLORS["ventricle"]) > 20
    grey = np.all(np.abs(pixels - pixels[..., :1]) < 1e-3, axis=-1) & (pixels[..., 0] > 0.3) & (pixels[..., 0] < 0.97)
    assert np.count_nonzero(grey) > 200
    inner = figures._outline(labels[:, :, 7])
    assert inner.sum() < np.count_nonzero(labels[:, :, 7])     # borders only, not filled ROIs
