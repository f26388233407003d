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

The attention outputs hold the attribution of the run's ``--attribution`` method (``Prediction.method``;
rollout by default): every one of their sidecars records ``AttributionMethod``, ``AttributionParameters``
(integrated gradients' steps and reference), ``AttributionMeaning`` (one sentence) and the method's full
``Definition``; the column entries of ``importance``/``attention`` name the method too.
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
from rgenima_app.inference.methods import MEANINGS, SHORT, AttributionSettings
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


# -- what each attribution method's outputs hold (the sidecars' Definition, Description and column entries) --
_GRADIENT_NORMALISATION = (
    "ROI importance = the relevance of the 109 ROI tokens normalised to sum 1; gene importance = the relevance "
    "summed over the gene's SNP-text tokens, normalised to sum 1 over the genes")
DEFINITIONS = {
    "rollout": DEFINITION,
    "input_gradient": (
        "Input x gradient: relevance of prompt position p = |sum_h x_ph * df/dx_ph|, x the prompt embeddings and f = "
        "log P(predicted stage) under the scoring of the four answers (softmax of their log-likelihoods). "
        + _GRADIENT_NORMALISATION + "; ROI-gene attention = ROI importance x gene importance (no pairwise term)."),
    "attention_gradient": (
        "Gradient-weighted attention rollout (Chefer et al. 2021): per decoder layer A_l = mean over heads of "
        "ReLU(df/dA_h * A_h), R <- R + A_l R from R = I, over the prompt's positions and the four answers' (scored "
        "on the prompt's cache), f = log P(predicted stage); the relevance is the sum of the rows of R of the "
        "positions that score the answers (AttributionParameters Read: answers). " + _GRADIENT_NORMALISATION
        + "; ROI-gene attention a(roi, gene) = sum of R[roi, t] over the gene's SNP-text tokens."),
    "integrated_gradients": (
        "Integrated gradients (Sundararajan et al. 2017): relevance of prompt position p = |(x_p - x'_p) . (1/S) "
        "sum_k df/dx_p at x' + a_k (x - x')|, a_k = (k + 1/2)/S, with S the Steps and x' the Reference input of "
        "AttributionParameters (only the ROI tokens and the SNP text move along the path), f = log P(predicted "
        "stage). " + _GRADIENT_NORMALISATION + "; ROI-gene attention = ROI importance x gene importance (no "
        "pairwise term)."),
}
#: The ``importance``/``attention`` column entries of the attention tables, per method (rollout's: the spec's).
_PAIRWISE = {"rollout": "sum over the gene's SNP-text tokens t of R[roi, t] (attention rollout)",
             "attention_gradient": "sum over the gene's SNP-text tokens t of R[roi, t] (gradient-weighted rollout)"}


def attention_columns(method: str) -> dict[str, dict]:
    """Column entries of ``roiattention``, ``geneattention`` and ``roigeneattention`` for ``method``."""
    if method == "rollout":
        return {"roiattention": {}, "geneattention": {}, "roigeneattention": {}}  # the spec's entries
    short = SHORT[method]
    return {
        "roiattention": {"importance": {"Description": f"{short} relevance of the ROI token, normalised to sum 1 "
                                                       "over the 109 ROIs (Definition)"}},
        "geneattention": {"importance": {"Description": f"{short} relevance summed over the gene's SNP-text tokens, "
                                                        "normalised to sum 1 over the genes (Definition)"}},
        "roigeneattention": {"attention": {"Description": _PAIRWISE.get(
            method, f"ROI importance x gene importance ({short} has no pairwise term)")}},
    }


def attribution_sidecar(settings: AttributionSettings) -> dict:
    """The keys every attention output records of the attribution it holds (bids_spec/derivatives.yaml)."""
    return {"AttributionMethod": settings.method, "AttributionParameters": settings.parameters(),
            "AttributionMeaning": MEANINGS[settings.method], "Definition": DEFINITIONS[settings.method]}


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
    method = attribution_sidecar(prediction.method)
    described = (f"ROI importance ({SHORT[prediction.method.method]}) painted into the voxels of each ROI; 0 outside "
                 "the ROIs")
    written = {
        "statmap": writer.write_nifti(paths["statmap"], on_t1w, sidecar={
            "Description": f"{described}. On the grid of the participant's T1w image ({_grid_description(t1w)}): "
                           "the desc-rois_dseg labels moved there by nearest neighbour in world coordinates",
            "Sources": sources, "SpatialReference": t1w_uri, **method, **common}),
        "statmap_conformed": writer.write_nifti(paths["statmap_conformed"], conformed, sidecar={
            "Description": f"{described}. On the grid of desc-rois_dseg: FreeSurfer's conformed grid, in the "
                           "world coordinates of the T1w image",
            "Sources": sources, "SpatialReference": t1w_uri,
            "Resolution": f"{CONFORMED}: FreeSurfer's conformed grid of the desc-rois_dseg image "
                          f"({_grid_description(conformed)})",
            **method, **common}),
    }
    return written


def _remove_superseded_statmap(writer: DerivativesWriter, prediction: Prediction, model: str) -> None:
    superseded = superseded_statmap(writer, prediction.input.subject, prediction.input.session, model)
    for old in (superseded, sidecar_path(superseded)):
        if old.is_file():
            log.info("removing %s: replaced by the space-T1w statmaps", old)
            old.unlink()


_DESCRIPTIONS = {
    "rollout": {
        "roiattention": "ROI importance: rolled-out attention of the answer position to each ROI token, normalised "
                        "over the 109 ROIs (n/a without an image)",
        "geneattention": "Gene importance: rolled-out attention of the answer position summed over the gene's "
                         "SNP-text tokens (empty without genotypes)",
        "roigeneattention": "ROI x gene attention: rolled-out attention of each ROI token summed over the gene's "
                            "SNP-text tokens (empty without image or genotypes)"},
    "gradient": {  # every other method: {short} is its short name
        "roiattention": "ROI importance by {short} (AttributionMethod), normalised over the 109 ROIs (n/a without "
                        "an image)",
        "geneattention": "Gene importance by {short} (AttributionMethod): relevance summed over the gene's SNP-text "
                         "tokens, normalised over the genes (empty without genotypes)",
        "roigeneattention": "ROI x gene attribution by {short} (AttributionMethod; Definition says how the pairs "
                            "are formed; empty without image or genotypes)"},
}


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
        method = prediction.method.method
        attention_sidecar = {"Sources": attention_sources, **attribution_sidecar(prediction.method), **common,
                             "Modalities": prediction.modalities}
        columns = attention_columns(method)
        descriptions = _DESCRIPTIONS.get(method) or {kind: text.format(short=SHORT[method])
                                                     for kind, text in _DESCRIPTIONS["gradient"].items()}
        for kind, table in (("roiattention", roi_table), ("geneattention", gene_table),
                            ("roigeneattention", roi_gene_table)):
            written[kind] = writer.write_tsv(paths[kind], table(prediction), {
                **attention_sidecar, "Description": descriptions[kind], **columns[kind]})
        written.update(_write_statmaps(writer, prediction, paths, common))
    _remove_superseded_statmap(writer, prediction, model)
    return written
