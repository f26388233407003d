"""The participant-level outputs of a prediction (docs/outputs.md, "Layout"), written through the DerivativesWriter.

Per sample (``sub-X[_ses-Y]``, model label ``<model>``):

* ``sub-X[_ses-Y]_desc-<model>_predictions.tsv`` (+ .json): ``label``, ``p_NC``, ``p_SMC``, ``p_MCI``, ``p_AD``,
  then the inputs (``INPUT_COLUMNS``): ``modalities``, ``inputs_validated``, ``panel_snps_observed``,
  ``panel_snps_total``, ``panel_coverage_low``; then ``ood_score``, ``ood_flag`` (n/a when the bundle stores
  no training distribution; details in the sidecar's ``OutOfDistribution``)
* ``..._roiattention.tsv`` (+ .json): ``index``, ``roi``, ``importance`` — 109 rows, canonical order
* ``..._geneattention.tsv`` (+ .json): ``gene``, ``importance`` — one row per gene of the SNP text
* ``..._roigeneattention.tsv`` (+ .json): ``roi``, ``gene``, ``attention`` — long format
* ``anat/..._desc-<model>_stat-attention_statmap.nii.gz`` (+ .json): ROI importance in each ROI's voxels

A sample without image has ``n/a`` importances and an empty ROI-gene table (and no statmap); a sample
without genotypes has empty gene tables.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima_app import STAGES, __version__
from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.inference.predict import Prediction
from rgenima_app.inference.rollout import DEFINITION
from rgenima_app.models.bundle import LoadedBundle

TABLES = ("predictions", "roiattention", "geneattention", "roigeneattention")


def output_paths(writer: DerivativesWriter, subject: str, session: str | None, model: str) -> dict[str, Path]:
    """The prediction outputs of one sample (``TABLES`` and ``statmap``) and the inputs they cite."""
    paths = {kind: writer.path(subject, session, desc=model, suffix=kind, extension=".tsv") for kind in TABLES}
    paths["statmap"] = writer.path(subject, session, datatype="anat", desc=model, stat="attention",
                                   suffix="statmap", extension=".nii.gz")
    paths["dseg"] = writer.path(subject, session, datatype="anat", desc="rois", suffix="dseg", extension=".nii.gz")
    paths["genotypes"] = writer.path(subject, datatype="genotype", desc="panel", suffix="genotypes", extension=".tsv")
    return paths


def _paths(writer: DerivativesWriter, prediction: Prediction, model: str) -> dict[str, Path]:
    return output_paths(writer, prediction.input.subject, prediction.input.session, model)


def prediction_table(prediction: Prediction) -> pd.DataFrame:
    item = prediction.input
    row = {"participant_id": f"sub-{item.subject}"}
    if item.session:
        row["session_id"] = f"ses-{item.session}"
    row["label"] = prediction.label
    row.update({f"p_{s}": float(p) for s, p in zip(STAGES, prediction.probabilities)})
    row.update(input_columns(prediction))
    row.update(ood_columns(prediction))
    table = pd.DataFrame([row])
    for column in ("panel_snps_observed", "panel_snps_total"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


#: What a prediction was made from (docs/inference.md, "Missing modalities"); the columns are described in
#: bids_spec/derivatives.yaml.
INPUT_COLUMNS = ("modalities", "inputs_validated", "panel_snps_observed", "panel_snps_total", "panel_coverage_low")


def input_columns(prediction: Prediction) -> dict:
    """The ``INPUT_COLUMNS`` of one prediction (None is written as n/a)."""
    inputs = prediction.inputs
    if inputs is None:
        return {}
    values = (inputs.configuration, inputs.is_validated, inputs.panel_observed, inputs.panel_total,
              inputs.panel_coverage_low)
    as_bids = {True: "true", False: "false"}  # the Levels of the boolean columns
    return {c: (as_bids[v] if isinstance(v, bool) else v) for c, v in zip(INPUT_COLUMNS, values)}


def ood_columns(prediction: Prediction) -> dict:
    """``ood_score`` and ``ood_flag`` of the predictions table (``n/a`` when unavailable)."""
    ood = prediction.ood
    if ood is None or not ood.available:
        return {"ood_score": "n/a", "ood_flag": "n/a"}
    return {"ood_score": round(float(ood.score), 6), "ood_flag": "true" if ood.flag else "false"}


def ood_sidecar(prediction: Prediction) -> dict:
    """The ``OutOfDistribution`` entry of the predictions sidecar: components, thresholds and reasons."""
    ood = prediction.ood
    return {"OutOfDistribution": ood.to_dict() if ood is not None else {"Available": False}}


def roi_table(prediction: Prediction) -> pd.DataFrame:
    rois = load_roi_table()
    importance = prediction.rollout.roi_importance
    return pd.DataFrame({"index": rois["index"], "roi": rois["name"],
                         "importance": importance if importance is not None else np.nan})


def gene_table(prediction: Prediction) -> pd.DataFrame:
    r = prediction.rollout
    return pd.DataFrame({"gene": r.genes, "importance": r.gene_importance if r.gene_importance is not None else []})


def roi_gene_table(prediction: Prediction) -> pd.DataFrame:
    r = prediction.rollout
    if r.roi_gene is None:
        return pd.DataFrame({"roi": pd.Series(dtype=str), "gene": pd.Series(dtype=str),
                             "attention": pd.Series(dtype=float)})
    names = list(load_roi_table()["name"])
    return pd.DataFrame({"roi": np.repeat(names, len(r.genes)), "gene": np.tile(r.genes, len(names)),
                         "attention": r.roi_gene.reshape(-1)})


def attention_map(prediction: Prediction) -> nib.Nifti1Image | None:
    """ROI importance painted into each ROI's voxels, on the grid of the sample's dseg; 0 outside ROIs."""
    importance = prediction.rollout.roi_importance
    imaging = prediction.input.imaging
    if importance is None or imaging is None:
        return None
    index = np.asarray(imaging.dseg.dataobj).astype(np.int64)
    lut = np.zeros(len(importance) + 1, dtype=np.float32)
    lut[1:] = importance
    data = lut[np.clip(index, 0, len(importance))] * (index > 0)
    image = nib.Nifti1Image(data.astype(np.float32), imaging.dseg.affine)
    image.header.set_xyzt_units("mm")
    return image


def write_prediction(writer: DerivativesWriter, prediction: Prediction, bundle: LoadedBundle,
                     model_hash: str, genotypes_file: Path | None = None,
                     provenance: str | None = None) -> dict[str, Path]:
    """Write every output of one sample; returns the paths written (statmap only with an image).
    ``provenance`` (``rgenima_app.provenance``) is recorded in every sidecar."""
    model = bundle.name
    paths = _paths(writer, prediction, model)
    item = prediction.input
    sources = []
    if item.imaging is not None:
        sources += [writer.source_uri(p) for p in item.imaging.t1w_files]
        sources.append(writer.source_uri(paths["dseg"]))
    if prediction.n_snps is not None:
        sources.append(writer.source_uri(paths["genotypes"]))
        if genotypes_file is not None:
            sources.append(writer.source_uri(genotypes_file))
    sources.append(writer.source_uri(bundle.path))
    common = {"Model": model, "ModelHash": model_hash, "ModelPath": str(Path(bundle.path).resolve())}
    if provenance is not None:
        common["ProvenanceKey"] = provenance
    pred_sidecar = {
        "Description": "Alzheimer's disease stage predicted by R-GenIMA (argmax of the class probabilities)",
        "Sources": sources, **common,
        "ImputedSNPs": prediction.imputed_snps, "PanelSNPs": prediction.n_snps,
        "Modalities": prediction.modalities,
        "HeldOut": prediction.held_out,
        "Warnings": prediction.warnings,
        "AbsentROIs": prediction.absent_rois,
        "SNPTextFormat": bundle.metadata.get("snp_text_format"),
        "SoftwareVersion": __version__,
        **(prediction.inputs.to_sidecar() if prediction.inputs is not None else {}),
        **ood_sidecar(prediction),
    }  # the columns are described in bids_spec/derivatives.yaml
    with writer.output_set():  # the prediction and its attention outputs: all or none
        written = {"predictions": writer.write_tsv(paths["predictions"], prediction_table(prediction), pred_sidecar)}
        attention_sources = [writer.source_uri(paths["predictions"])]
        rollout_sidecar = {"Sources": attention_sources, "Definition": DEFINITION, **common,
                           "Modalities": prediction.modalities}
        written["roiattention"] = writer.write_tsv(paths["roiattention"], roi_table(prediction), dict(
            rollout_sidecar, Description="ROI importance: rolled-out attention of the answer position to each ROI "
                                         "token, normalised over the 109 ROIs (n/a without an image)"))
        written["geneattention"] = writer.write_tsv(paths["geneattention"], gene_table(prediction), dict(
            rollout_sidecar, Description="Gene importance: rolled-out attention of the answer position summed over "
                                         "the gene's SNP-text tokens (empty without genotypes)"))
        written["roigeneattention"] = writer.write_tsv(paths["roigeneattention"], roi_gene_table(prediction), dict(
            rollout_sidecar, Description="ROI x gene attention: rolled-out attention of each ROI token summed over "
                                         "the gene's SNP-text tokens (empty without image or genotypes)"))
        image = attention_map(prediction)
        if image is not None:
            written["statmap"] = writer.write_nifti(paths["statmap"], image, sidecar={
                "Description": "ROI importance (attention rollout) painted into the voxels of each ROI, on the grid "
                               "of the desc-rois_dseg image (FreeSurfer conformed space); 0 outside the ROIs",
                "Sources": [writer.source_uri(paths["dseg"]), writer.source_uri(paths["roiattention"])],
                "Definition": DEFINITION, **common})
    return written
