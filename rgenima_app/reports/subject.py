"""The subject report ``sub-X.html``: one self-contained page per participant and model.

Built from what the participant level wrote for the model (so it can be re-rendered from the outputs
alone): for each session, the predicted stage and the class probabilities beside the model's test-set
metrics, the attention map over the participant's T1w on a colour scale fixed for every participant
(``figures.IMPORTANCE_SCALE``), the segmentation-on-T1w QC figure, the top ROIs and genes, the ROI × gene
heat map of the top pairs, QC facts (absent ROIs, imputed SNPs, modalities, held-out status, out-of-distribution
score, with a banner when the sample is out of the training distribution), warnings (first of all a
banner when the model does not beat chance, or records no chance check), the errors of
this run's steps for the participant (details in OUTPUT_DIR/logs), and the methods with citations and
software versions. Figures are inline SVG or data-URI PNG; nothing is
fetched from elsewhere.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

import nibabel as nib
import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from rgenima_app import STAGES, __version__
from rgenima_app.bids.derivatives import DerivativesWriter, sidecar_path, write_text
from rgenima_app.bids.tsv import read_tsv
from rgenima_app.environment import package_versions
from rgenima_app.genetics.panel import load_gwas_genes
from rgenima_app.imaging.grids import labels_on_grid
from rgenima_app.imaging.roi_table import N_ROIS, load_roi_table
from rgenima_app.inference.methods import MEANINGS, SHORT
from rgenima_app.models.bundle import chance_status
from rgenima_app.reports import figures

N_TOP_ROIS, N_TOP_GENES, N_HEAT = 15, 15, 10
CITATIONS = [
    "Zhao et al. R-GenIMA: Integrating Neuroimaging and Genetics with Interpretable Multimodal AI for "
    "Alzheimer's Disease Progression. arXiv:2512.18986.",
    "Abnar S, Zuidema W. Quantifying Attention Flow in Transformers. ACL 2020.",
    "Fischl B. FreeSurfer. NeuroImage 2012;62(2):774-781.",
    "Liu H, Li C, Wu Q, Lee YJ. Visual Instruction Tuning (LLaVA). NeurIPS 2023.",
    "Qwen Team. Qwen2.5 Technical Report. arXiv:2412.15115.",
]
#: Cited when a session's attention outputs hold that method.
METHOD_CITATIONS = {
    "attention_gradient": "Chefer H, Gur S, Wolf L. Generic Attention-model Explainability for Interpreting Bi-Modal "
                          "and Encoder-Decoder Transformers. ICCV 2021.",
    "integrated_gradients": "Sundararajan M, Taly A, Yan Q. Axiomatic Attribution for Deep Networks. ICML 2017.",
    "input_gradient": "Shrikumar A, Greenside P, Kundaje A. Learning Important Features Through Propagating "
                      "Activation Differences. ICML 2017.",
}


def attribution_facts(sidecar: Mapping) -> dict:
    """Which attribution a session's attention outputs hold (their sidecar's ``AttributionMethod``; outputs written
    before rgenima recorded it are rollout's) and the report's one line on what it means."""
    method = sidecar.get("AttributionMethod") or "rollout"
    parameters = sidecar.get("AttributionParameters") or {}
    settings = []
    if parameters.get("Steps") is not None:
        settings.append(f"{parameters['Steps']} steps")
    if parameters.get("ReferenceDescription"):
        settings.append(f"reference: {parameters['ReferenceDescription']}")
    meaning = sidecar.get("AttributionMeaning") or MEANINGS.get(method, "")
    return {"method": method, "short": SHORT.get(method, method), "meaning": meaning,
            "settings": "; ".join(settings), "definition": sidecar.get("Definition", ""),
            "line": f"Attribution shown: {method} ({'; '.join(settings)})" if settings else
                    f"Attribution shown: {method}"}


# --------------------------------------------------------------------------------------- figures
def probability_figure(probabilities: Mapping[str, float], predicted: str) -> str:
    fig, ax = figures._new_figure(4.2, 1.7)
    values = [probabilities[s] for s in STAGES]
    colors = [figures.stage_color(s) if s == predicted else matplotlib_alpha(figures.stage_color(s)) for s in STAGES]
    ax.barh(range(len(STAGES)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(min(v + 0.02, 0.9), i, f"{v:.1%}", va="center", fontsize=8)
    ax.set_yticks(range(len(STAGES)), STAGES)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability")
    return figures.to_svg(fig, "probabilities")


def matplotlib_alpha(color: str, alpha: float = 0.35):
    from matplotlib.colors import to_rgba

    return to_rgba(color, alpha)


def bars_figure(names: list[str], values: np.ndarray, xlabel: str, name: str, color, italic: bool = False) -> str:
    """Horizontal bars; ``color``: one colour or one per bar."""
    fig, ax = figures._new_figure(4.6, 0.6 + 0.2 * max(len(names), 1))
    ax.barh(range(len(names)), values, color=color)
    ax.set_yticks(range(len(names)), [n.replace("ctx-", "") for n in names], fontsize=7.5,
                  fontstyle="italic" if italic else "normal")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    return figures.to_svg(fig, name)


def heatmap_figure(matrix: pd.DataFrame, name: str) -> str:
    fig, ax = figures._new_figure(1.8 + 0.45 * matrix.shape[1], 0.9 + 0.26 * matrix.shape[0])
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap=figures.AMOUNT_CMAP, aspect="auto", vmin=0, vmax=float(values.max()) or 1.0)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=45, ha="right", fontsize=7.5, fontstyle="italic")
    ax.set_yticks(range(matrix.shape[0]), [r.replace("ctx-", "") for r in matrix.index], fontsize=7.5)
    ax.spines[:].set_visible(False)
    ax.tick_params(length=0)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("ROI → gene attention", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return figures.to_svg(fig, name)


# --------------------------------------------------------------------------------------- content
def metric_rows(metrics: Mapping | None) -> tuple[list[dict], int | None]:
    """Rows ``{metric, value, ci}`` of a bundle's test metrics (``{"test": {m: {value, ci_low, ci_high}}}``
    as training writes them, or flat ``{m: value}``), and the number of test samples when known."""
    metrics = dict(metrics or {})
    n = metrics.get("n_test_samples")
    source = metrics.get("test") if isinstance(metrics.get("test"), Mapping) else metrics
    rows = []
    for key, value in source.items():
        if key in ("confusion", "n_test_samples"):
            continue
        low = high = None
        if isinstance(value, Mapping):
            value, low, high = value.get("value"), value.get("ci_low"), value.get("ci_high")
        elif isinstance(value, (list, tuple)) and len(value) == 3:
            value, low, high = value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value is None:
            continue
        ci = f"{low:.3f} – {high:.3f}" if isinstance(low, (int, float)) and isinstance(high, (int, float)) \
            and not (math.isnan(low) or math.isnan(high)) else "—"
        rows.append({"metric": str(key).replace("_", " "), "value": f"{float(value):.3f}", "ci": ci})
    return rows, int(n) if isinstance(n, (int, float)) else None


def _read_tsv(path: Path) -> pd.DataFrame:
    return read_tsv(path, na_values=["n/a"], keep_default_na=False)


def input_banners(sidecar: dict) -> list[str]:
    """Banners on what a prediction was made from: genotypes that count as missing for a low panel
    coverage, and an input configuration the model was not validated on."""
    banners = []
    observed, total = sidecar.get("PanelSNPsObserved"), sidecar.get("PanelSNPsTotal")
    if sidecar.get("PanelCoverageLow") and isinstance(total, int):
        banners.append(f"Genotypes not used: only {observed} of the model's {total} panel SNPs were observed in "
                       f"this participant's genotypes (under the minimum share {sidecar.get('MinPanelCoverage')}), "
                       "so the genetic input counts as missing.")
    if sidecar.get("InputsValidated") is False:
        banners.append(f"Unvalidated input: predicted from {sidecar.get('InputConfiguration')}, an input "
                       "configuration the model was not validated on (validated: "
                       f"{', '.join(sidecar.get('ValidatedInputs') or [])}); allowed by --allow-unvalidated-inputs. "
                       "Treat this prediction with caution.")
    return banners


def ood_facts(sidecar: Mapping) -> dict:
    """The out-of-distribution banner's facts from a predictions sidecar (``OutOfDistribution``)."""
    ood = sidecar.get("OutOfDistribution") or {}
    available = bool(ood.get("Available")) and ood.get("Score") is not None
    return {"available": available, "score": ood.get("Score"), "flagged": available and bool(ood.get("Flagged")),
            "reasons": list(ood.get("Reasons") or []),
            "note": ood.get("Note") or "the predictions were written without an out-of-distribution score"}


def importance_summary(rois: pd.DataFrame) -> dict:
    """What the caption of the attention map says: ROIs above their uniform share and the largest ratio."""
    ratio = rois["importance"].fillna(0.0) * N_ROIS
    top = int(ratio.to_numpy().argmax())
    return {"above": int((ratio > figures.IMPORTANCE_SCALE.threshold).sum()), "max_ratio": float(ratio.iloc[top]),
            "max_roi": str(rois["roi"].iloc[top])}


def attention_figures(anat: Path, name: str, model: str, rois: pd.DataFrame, resolve: Callable[[str], Path | None]
                      ) -> dict:
    """The attention map and the segmentation QC figure of one sample, on its T1w image.

    The T1w is the ``SpatialReference`` of the ``space-T1w`` statmap; when it cannot be read (a report rendered
    away from the BIDS dataset, or outputs of an older rgenima), the attention map is painted on the ROI image
    alone, on the same fixed scale, and the page says why."""
    dseg_path = anat / f"{name}_desc-rois_dseg.nii.gz"
    statmap_path = anat / f"{name}_space-T1w_desc-{model}_stat-attention_statmap.nii.gz"
    if not dseg_path.is_file():
        return {}
    out = {"importance_summary": importance_summary(rois)}
    title = f"{name}: ROI importance on the T1w"
    t1w_path = None
    if statmap_path.is_file():
        reference = json.loads(sidecar_path(statmap_path).read_text()).get("SpatialReference")
        t1w_path = resolve(reference) if isinstance(reference, str) else None
    if t1w_path is not None and t1w_path.is_file():
        t1w, dseg = nib.load(str(t1w_path)), nib.load(str(dseg_path))
        out["brain"] = figures.statmap_slices(nib.load(str(statmap_path)), t1w, title, figures.IMPORTANCE_SCALE,
                                              factor=N_ROIS)
        out["brain_on_t1w"] = True
        table = load_roi_table()
        out["segmentation"] = figures.segmentation_figure(
            t1w, labels_on_grid(dseg, t1w), dict(zip(table["index"].astype(int), table["kind"])),
            f"{name}: desc-rois_dseg on the T1w")
        return out
    out["t1w_missing"] = str(t1w_path) if t1w_path is not None else "no space-T1w statmap names one"
    ratios = dict(zip(rois["index"].astype(int), rois["importance"].fillna(0.0) * N_ROIS))
    out["brain"] = figures.brain_slices(nib.load(str(dseg_path)), ratios, f"{name}: ROI importance",
                                        scale=figures.IMPORTANCE_SCALE)
    return out


def _session_section(prediction_file: Path, model: str, resolve: Callable[[str], Path | None]) -> dict:
    stem = str(prediction_file)[: -len("_predictions.tsv")]
    table = _read_tsv(prediction_file)
    sidecar = json.loads(prediction_file.with_suffix(".json").read_text())
    session = table["session_id"].iloc[0] if "session_id" in table else None
    predicted = str(table["label"].iloc[0])
    probabilities = {s: float(table[f"p_{s}"].iloc[0]) for s in STAGES}
    rois = _read_tsv(Path(stem + "_roiattention.tsv"))
    attention_sidecar = Path(stem + "_roiattention.json")
    attribution = attribution_facts(json.loads(attention_sidecar.read_text()) if attention_sidecar.is_file() else {})
    genes = _read_tsv(Path(stem + "_geneattention.tsv"))
    pairs = _read_tsv(Path(stem + "_roigeneattention.tsv"))
    name = Path(stem).name.replace(f"_desc-{model}", "")
    section = {
        "id": name, "session": session, "predicted": predicted, "color": figures.stage_color(predicted),
        "probabilities": [{"stage": s, "p": probabilities[s]} for s in STAGES],
        "probability_figure": probability_figure(probabilities, predicted),
        "modalities": sidecar.get("Modalities", []), "held_out": sidecar.get("HeldOut", True),
        "imputed": sidecar.get("ImputedSNPs"), "panel_snps": sidecar.get("PanelSNPs"),
        "absent_rois": sidecar.get("AbsentROIs", []), "warnings": sidecar.get("Warnings", []),
        "model_hash": sidecar.get("ModelHash", ""), "input_banners": input_banners(sidecar),
        "panel_observed": sidecar.get("PanelSNPsObserved"), "panel_total": sidecar.get("PanelSNPsTotal"),
        "ood": ood_facts(sidecar), "attribution": attribution,
        "brain": None, "brain_on_t1w": False, "t1w_missing": None, "segmentation": None, "importance_summary": None,
        "roi_figure": None, "gene_figure": None, "heatmap": None,
        "top_rois": [], "top_genes": [], "top_pairs": [],
    }
    if rois["importance"].notna().any():
        top = rois.sort_values("importance", ascending=False).head(N_TOP_ROIS)
        section["top_rois"] = top[["roi", "importance"]].to_dict("records")
        section["roi_figure"] = bars_figure(list(top["roi"]), top["importance"].to_numpy(), "ROI importance",
                                            f"rois-{name}", figures.AMOUNT_COLOR)
        section.update(attention_figures(Path(prediction_file).parent / "anat", name, model, rois, resolve))
    if len(genes):
        top = genes.sort_values("importance", ascending=False).head(N_TOP_GENES)
        section["top_genes"] = top.to_dict("records")
        gwas = set(load_gwas_genes()["gene"])  # coloured as in the group report: GWAS-supported or not
        section["gene_figure"] = bars_figure(
            list(top["gene"]), top["importance"].to_numpy(), "gene importance (purple: GWAS-supported AD gene)",
            f"genes-{name}", [figures.GWAS_COLOR if g in gwas else figures.OTHER_COLOR for g in top["gene"]],
            italic=True)
    if len(pairs):
        best = pairs.sort_values("attention", ascending=False)
        section["top_pairs"] = best.head(10).to_dict("records")
        roi_order = list(dict.fromkeys(best["roi"]))[:N_HEAT]
        gene_order = list(dict.fromkeys(best["gene"]))[:N_HEAT]
        matrix = (pairs[pairs["roi"].isin(roi_order) & pairs["gene"].isin(gene_order)]
                  .pivot(index="roi", columns="gene", values="attention").reindex(index=roi_order, columns=gene_order))
        section["heatmap"] = heatmap_figure(matrix.fillna(0.0), f"heat-{name}")
    return section


def render_subject_report(writer: DerivativesWriter, subject: str, bundle, errors: list[str] = ()) -> Path:
    """Write ``sub-<subject>.html`` for the model ``bundle`` (a ``LoadedBundle``) from the outputs on disk;
    ``errors``: failures of this run's steps for the participant (shown in the errors section)."""
    subject = subject.removeprefix("sub-")
    model = bundle.name
    root = writer.root / f"sub-{subject}"
    files = sorted(root.glob(f"**/sub-{subject}*_desc-{model}_predictions.tsv"))
    sessions, errors = [], list(errors)
    for path in files:
        try:
            sessions.append(_session_section(path, model, writer.resolve_uri))
        except (OSError, KeyError, ValueError) as exc:
            errors.append(f"{path.name}: {exc}")
    methods = list(dict.fromkeys(s["attribution"]["method"] for s in sessions))
    citations = CITATIONS + [METHOD_CITATIONS[m] for m in methods if m in METHOD_CITATIONS]
    metrics, n_test = metric_rows(bundle.metadata.get("metrics"))
    llm = bundle.metadata.get("llm", {})
    rois_meta = bundle.metadata.get("rois", {})
    context = {
        "subject": subject, "model": model, "version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "sessions": sessions, "errors": errors, "metrics": metrics, "n_test": n_test,
        "llm": llm, "finetune": bundle.metadata.get("finetune"), "roi_size": rois_meta.get("size"),
        "roi_mode": rois_meta.get("mode", "stretch"), "snp_format": bundle.metadata.get("snp_text_format"),
        "genome_build": bundle.metadata.get("genome_build"),
        "n_training": (bundle.metadata.get("training") or {}).get("n_participants"),
        "chance": chance_status(bundle.metadata),
        "attributions": [{"method": m, "definition": next(s["attribution"]["definition"] for s in sessions
                                                          if s["attribution"]["method"] == m)} for m in methods],
        "citations": citations, "versions": package_versions(), "scale": figures.IMPORTANCE_SCALE, "stages": STAGES,
    }
    env = Environment(loader=PackageLoader("rgenima_app.reports", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, d=3: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) \
        else f"{float(v):.{d}g}"
    text = env.get_template("subject.html.j2").render(**context)
    return write_text(writer.root / f"sub-{subject}.html", text)
