"""The participant-level outputs of a prediction (docs/outputs.md, "Layout"), written through the DerivativesWriter.

Per sample (``sub-X[_ses-Y]``, model label ``<model>``):

* ``sub-X[_ses-Y]_desc-<model>_predictions.tsv`` (+ .json): ``label``, ``p_NC``, ``p_SMC``, ``p_MCI``, ``p_AD``,
  then the inputs (``INPUT_COLUMNS``): ``modalities``, ``inputs_validated``, ``panel_snps_observed``,
  ``panel_snps_total``, ``panel_coverage_low``; then ``ood_score``, ``ood_flag`` (n/a when the bundle stores
  no training distribution; details in the sidecar's ``OutOfDistribution``)
* ``..._roiattention.tsv`` (+ .json): ``index``, ``roi``, ``importance`` — 109 rows, canonical order
* ``..._geneattention.tsv`` (+ .json): ``gene``, ``importance`` — one row per gene of the SNP text
* ``..._roigeneattention.tsv`` (+ .json): ``roi``, ``gene``, ``attention`` — long format
* ``anat/..._space-T1w_desc-<model>_stat-attention_statmap.nii.gz`` (+ .json): ROI importance in each ROI's
  voxels, on the grid of the participant's (first) T1w image
* ``anat/..._space-T1w_res-conformed_desc-<model>_stat-attention_statmap.nii.gz`` (+ .json): the same on the
  grid of ``desc-rois_dseg`` (FreeSurfer's conformed grid, same world coordinates)

A sample without image has ``n/a`` importances and an empty ROI-gene table (and no statmap); a sample
without genotypes has empty gene tables.
"""
from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from rgenima_app import STAGES, __version__
from rgenima_app.bids.derivatives import DerivativesWriter, sidecar_path
from rgenima_app.bids.tsv import BIDS_BOOLEAN
from rgenima_app.imaging.grids import labels_on_grid
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.inference.predict import Prediction
from rgenima_app.inference.rollout import DEFINITION
from rgenima_app.models.bundle import LoadedBundle

log = logging.getLogger("rgenima")

TABLES = ("predictions", "roiattention", "geneattention", "roigeneattention")
#: The attention statmaps: on the T1w's own grid, and on the conformed grid of desc-rois_dseg (``res-conformed``).
STATMAPS = ("statmap", "statmap_conformed")
CONFORMED = "conformed"


def output_paths(writer: DerivativesWriter, subject: str, session: str | None, model: str) -> dict[str, Path]:
    """The prediction outputs of one sample (``TABLES`` and ``statmap``) and the inputs they cite."""
    paths = {kind: writer.path(subject, session, desc=model, suffix=kind, extension=".tsv") for kind in TABLES}
    for kind, res in zip(STATMAPS, (None, CONFORMED)):
        paths[kind] = writer.path(subject, session, datatype="anat", space="T1w", res=res, desc=model,
                                  stat="attention", suffix="statmap", extension=".nii.gz")
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
    return {c: (BIDS_BOOLEAN[v] if isinstance(v, bool) else v) for c, v in zip(INPUT_COLUMNS, values)}


def ood_columns(prediction: Prediction) -> dict:
    """``ood_score`` and ``ood_flag`` of the predictions table (``n/a`` when unavailable)."""
    ood = prediction.ood
    if ood is None or not ood.available:
        return {"ood_score": "n/a", "ood_flag": "n/a"}
    return {"ood_score": round(float(ood.score), 6), "ood_flag": BIDS_BOOLEAN[bool(ood.flag)]}


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


def superseded_statmap(writer: DerivativesWriter, subject: str, session: str | None, model: str) -> Path:
    """The statmap name of rgenima versions before the two gridded ones (no ``space-``): removed when a sample's
    prediction is written again, so that an older output dataset stays one that matches the spec."""
    return writer.path(subject, session, datatype="anat", desc=model, stat="attention", suffix="statmap",
                       extension=".nii.gz")


def attention_map(prediction: Prediction, reference: nib.spatialimages.SpatialImage | None = None
                  ) -> nib.Nifti1Image | None:
    """ROI importance painted into each ROI's voxels; 0 outside ROIs. On the grid of the sample's dseg, or of
    ``reference`` (the T1w) when given: the ROI labels are moved there by nearest neighbour, in world
    coordinates, and painted after, so every voxel holds exactly one ROI's importance."""
    importance = prediction.rollout.roi_importance
    imaging = prediction.input.imaging
    if importance is None or imaging is None:
        return None
    labels = imaging.dseg if reference is None else labels_on_grid(imaging.dseg, reference)
    index = np.asarray(labels.dataobj).astype(np.int64)
    lut = np.zeros(len(importance) + 1, dtype=np.float32)
    lut[1:] = importance
    data = lut[np.clip(index, 0, len(importance))] * (index > 0)
    image = nib.Nifti1Image(data.astype(np.float32), labels.affine)
    image.header.set_xyzt_units("mm")
    return image


def _grid_description(image: nib.spatialimages.SpatialImage) -> str:
    shape = " x ".join(str(n) for n in image.shape[:3])
    zooms = " x ".join(f"{z:g}" for z in image.header.get_zooms()[:3])
    return f"{shape} voxels of {zooms} mm"


def _write_statmaps(writer: DerivativesWriter, prediction: Prediction, paths: dict[str, Path], common: dict,
                    ) -> dict[str, Path]:
    """The two attention statmaps of a sample with an image (none without); see ``STATMAPS``."""
    imaging = prediction.input.imaging
    conformed = attention_map(prediction)
    if conformed is None:
        return {}
    t1w_path = Path(imaging.t1w_files[0])  # the reference T1w: the first, as recon-all's first -i
    t1w = nib.load(str(t1w_path))
    on_t1w = attention_map(prediction, reference=t1w)
    t1w_uri = writer.source_uri(t1w_path)
    sources = [t1w_uri, writer.source_uri(paths["dseg"]), writer.source_uri(paths["roiattention"])]
    described = "ROI importance (attention rollout) painted into the voxels of each ROI; 0 outside the ROIs"
    written = {
        "statmap": writer.write_nifti(paths["statmap"], on_t1w, sidecar={
            "Description": f"{described}. On the grid of the participant's T1w image ({_grid_description(t1w)}): "
                           "the desc-rois_dseg labels moved there by nearest neighbour in world coordinates",
            "Sources": sources, "SpatialReference": t1w_uri, "Definition": DEFINITION, **common}),
        "statmap_conformed": writer.write_nifti(paths["statmap_conformed"], conformed, sidecar={
            "Description": f"{described}. On the grid of desc-rois_dseg: FreeSurfer's conformed grid, in the "
                           "world coordinates of the T1w image",
            "Sources": sources, "SpatialReference": t1w_uri,
            "Resolution": f"{CONFORMED}: FreeSurfer's conformed grid of the desc-rois_dseg image "
                          f"({_grid_description(conformed)})",
            "Definition": DEFINITION, **common}),
    }
    return written


def _remove_superseded_statmap(writer: DerivativesWriter, prediction: Prediction, model: str) -> None:
    superseded = superseded_statmap(writer, prediction.input.subject, prediction.input.session, model)
    for old in (superseded, sidecar_path(superseded)):
        if old.is_file():
            log.info("removing %s: replaced by the space-T1w statmaps", old)
            old.unlink()


def write_prediction(writer: DerivativesWriter, prediction: Prediction, bundle: LoadedBundle,
                     model_hash: str, genotypes_file: Path | None = None,
                     provenance: str | None = None) -> dict[str, Path]:
    """Write every output of one sample; returns the paths written (statmaps only with an image).
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
        "GenotypesFile": str(genotypes_file) if genotypes_file is not None and prediction.n_snps is not None else None,
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
        written.update(_write_statmaps(writer, prediction, paths, common))
    _remove_superseded_statmap(writer, prediction, model)
    return written
