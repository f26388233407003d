"""Output tables, the attention map and the report's metric rows, from a prediction made here."""
from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from inference_helpers import genome_text, image_sample, tiny_model
from rgenima_app.imaging.roi_table import N_ROIS, roi_names
from rgenima_app.inference.outputs import attention_map, gene_table, prediction_table, roi_gene_table, roi_table
from rgenima_app.inference.predict import Prediction, PredictionInput
from rgenima_app.inference.rollout import rollout
from rgenima_app.models.distribution import OODScore
from rgenima_app.reports.subject import metric_rows


class _Imaging:  # the two attributes of ParticipantImaging that the map needs
    def __init__(self, dseg):
        self.dseg = dseg
        self.morph = pd.DataFrame({"name": roi_names(), "present": [True] * N_ROIS})


@pytest.fixture(scope="module")
def prediction(tiny_tokenizer):
    model = tiny_model(tiny_tokenizer)
    sample = image_sample(0, genome_text(n_genes=5, seed=1))
    (result,), p = rollout(model, [sample])
    index = np.zeros((10, 12, 14), dtype=np.int16)
    index[1:4, 2:5, 3:6] = 17
    index[6:9, 7:10, 8:12] = 109
    index[5, 5, 5] = 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, 4, 7]
    dseg = nib.Nifti1Image(index, affine)
    item = PredictionInput("01", "2", imaging=_Imaging(dseg), genotypes=None)
    return Prediction(item, p[0].double().numpy(), result, sample.genome_text, ["T1w", "genotypes"], 0, 15, True)


def test_tables(prediction):
    table = prediction_table(prediction)
    assert list(table.columns) == ["participant_id", "session_id", "label", "p_NC", "p_SMC", "p_MCI", "p_AD",
                                   "ood_score", "ood_flag"]
    assert table["session_id"].iloc[0] == "ses-2" and abs(table.iloc[0, 3:7].sum() - 1) < 1e-6
    assert table["ood_score"].iloc[0] == table["ood_flag"].iloc[0] == "n/a"   # no score computed: n/a
    scored = prediction_table(replace(prediction, ood=OODScore(1.5, True)))
    assert scored["ood_score"].iloc[0] == 1.5 and scored["ood_flag"].iloc[0] == "true"
    rois = roi_table(prediction)
    assert list(rois["roi"]) == roi_names() and abs(rois["importance"].sum() - 1) < 1e-9
    genes = gene_table(prediction)
    assert len(genes) == 5 and list(genes["gene"]) == prediction.rollout.genes
    pairs = roi_gene_table(prediction)
    assert len(pairs) == N_ROIS * 5
    wide = pairs.pivot(index="roi", columns="gene", values="attention").loc[roi_names(), prediction.rollout.genes]
    np.testing.assert_allclose(wide.to_numpy(), prediction.rollout.roi_gene)


def test_attention_map(prediction):
    image = attention_map(prediction)
    dseg = prediction.input.imaging.dseg
    assert image.shape == dseg.shape and np.array_equal(image.affine, dseg.affine)
    values, index = image.get_fdata(), np.asarray(dseg.dataobj)
    importance = prediction.rollout.roi_importance
    assert np.all(values[index == 0] == 0)
    for roi in (1, 17, 109):
        np.testing.assert_allclose(values[index == roi], importance[roi - 1], rtol=1e-6)


def _t1w_grid() -> nib.Nifti1Image:
    """A T1w on another grid than the dseg: 1.5 mm voxels, axes flipped and swapped, origin off the dseg's."""
    affine = np.array([[0.0, -1.5, 0.0, 12.137], [1.5, 0.0, 0.0, -3.071], [0.0, 0.0, 1.5, 5.213], [0, 0, 0, 1]])
    return nib.Nifti1Image(np.ones((16, 20, 24), dtype=np.int16), affine)


def test_attention_map_on_the_t1w_grid(prediction):
    t1w = _t1w_grid()
    image = attention_map(prediction, reference=t1w)
    assert image.shape == t1w.shape and np.allclose(image.affine, t1w.affine)
    dseg = prediction.input.imaging.dseg
    index, importance = np.asarray(dseg.dataobj), prediction.rollout.roi_importance
    # every T1w voxel holds the importance of the ROI at the dseg voxel nearest to the same world point
    ijk = np.indices(t1w.shape).reshape(3, -1).T
    world = nib.affines.apply_affine(t1w.affine, ijk)
    nearest = np.rint(nib.affines.apply_affine(np.linalg.inv(dseg.affine), world)).astype(int)
    inside = np.all((nearest >= 0) & (nearest < np.array(dseg.shape)), axis=1)
    labels = np.zeros(len(ijk), dtype=int)
    labels[inside] = index[tuple(nearest[inside].T)]
    expected = np.where(labels > 0, importance[np.clip(labels, 1, None) - 1], 0.0)
    values = image.get_fdata()[tuple(ijk.T)]
    assert (labels == 17).sum() > 20 and (labels == 109).sum() > 20      # both ROIs reach the T1w grid
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_labels_move_between_grids_without_mixing():
    from rgenima_app.imaging.grids import labels_on_grid

    labels = np.zeros((6, 6, 6), dtype=np.int16)
    labels[1:3, 1:3, 1:3], labels[3:5, 3:5, 3:5] = 5, 90
    moved = labels_on_grid(nib.Nifti1Image(labels, np.eye(4)), nib.Nifti1Image(np.zeros((12, 12, 12, 2)),
                                                                               np.diag([0.5, 0.5, 0.5, 1])))
    data = np.asarray(moved.dataobj)
    assert moved.shape == (12, 12, 12) and set(np.unique(data)) == {0, 5, 90}   # no averaged label appears
    assert np.count_nonzero(data == 5) == np.count_nonzero(labels == 5) * 8     # each 1 mm voxel: 8 half-mm ones


def test_metric_rows_from_training_and_flat_metrics():
    rows, n = metric_rows({"test": {"accuracy": {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75},
                                    "macro_f1": {"value": 0.4, "ci_low": None, "ci_high": None}},
                           "n_test_samples": 12, "confusion": {"NC": {"NC": 3}}})
    assert n == 12 and rows == [{"metric": "accuracy", "value": "0.500", "ci": "0.250 – 0.750"},
                                {"metric": "macro f1", "value": "0.400", "ci": "—"}]
    assert metric_rows({"auc": 0.7, "note": "x"}) == ([{"metric": "auc", "value": "0.700", "ci": "—"}], None)
    assert metric_rows({}) == ([], None) and metric_rows(None) == ([], None)
