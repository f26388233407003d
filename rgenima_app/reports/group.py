"""The group report ``group.html``: one self-contained page (inline SVG / data-URI PNG, inline CSS).

It shows the cohort, the classification metrics with their confidence intervals, the confusion matrix,
one-vs-rest ROC curves and a calibration plot of the held-out participants (when labels are known), the
stage-specific ROIs (frequency heat map, bars, and brain slices of
a representative participant's ROI map), the paper's Manhattan-style ROI-gene plot per stage, the gene
ranking with the GWAS enrichment test, the methods, and the provenance: the command line, the inputs and
the software versions. Nothing in the page is fetched from elsewhere.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from .. import __version__
from ..analysis.bootstrap import STAGE_ORDER, ordered_groups
from ..analysis.group import GroupAnalysis
from ..analysis.metrics import one_vs_rest_auc, reliability, roc_curve
from ..bids.derivatives import write_text
from ..environment import package_versions
from ..imaging.roi_table import load_roi_table
from . import figures

LABELS = STAGE_ORDER
BRAIN_MIN_FREQUENCY = 0.1
CITATIONS = [
    "Zhao et al. R-GenIMA: Integrating Neuroimaging and Genetics with Interpretable Multimodal AI for "
    "Alzheimer's Disease Progression. arXiv:2512.18986.",
    "Abnar S, Zuidema W. Quantifying Attention Flow in Transformers. ACL 2020.",
    "Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993.",
    "Fisher RA. On the interpretation of chi-square from contingency tables. J R Stat Soc 1922;85:87-94.",
]


def metrics_rows(metrics) -> list[dict]:
    """Normalise metrics to rows ``{metric, value, ci_low, ci_high}``.

    Accepts a DataFrame with those columns, or a mapping ``name -> value``, ``name -> (value, low, high)``
    or ``name -> {"value": .., "ci_low": .., "ci_high": ..}``.
    """
    if metrics is None:
        return []
    if isinstance(metrics, pd.DataFrame):
        records = metrics.to_dict("records")
    else:
        records = []
        for name, value in metrics.items():
            if isinstance(value, Mapping):
                records.append({"metric": name, **value})
            elif isinstance(value, (tuple, list)):
                records.append({"metric": name, **dict(zip(("value", "ci_low", "ci_high"), value))})
            else:
                records.append({"metric": name, "value": value})
    rows = []
    for rec in records:
        low, high = rec.get("ci_low"), rec.get("ci_high")
        has_ci = low is not None and high is not None and not (pd.isna(low) or pd.isna(high))
        rows.append({"metric": str(rec["metric"]).replace("_", " "), "value": float(rec["value"]),
                     "ci": f"{float(low):.3f} – {float(high):.3f}" if has_ci else "—"})
    return rows


def confusion_from_predictions(predictions: pd.DataFrame, truth: str = "diagnosis",
                               predicted: str = "label") -> pd.DataFrame | None:
    """Confusion counts (index true, columns predicted) over held-out participants when marked, else all."""
    if predictions is None or truth not in predictions or predicted not in predictions:
        return None
    rows = predictions.dropna(subset=[truth, predicted])
    if "held_out" in rows:
        rows = rows[rows["held_out"].astype(bool)]
    if rows.empty:
        return None
    labels = [label for label in LABELS if label in set(rows[truth]) | set(rows[predicted])]
    return pd.crosstab(rows[truth], rows[predicted]).reindex(index=labels, columns=labels, fill_value=0)


def held_out_labelled(predictions: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows the performance figures use: held-out participants with a diagnosis and the four probabilities."""
    columns = ["diagnosis", *(f"p_{label}" for label in LABELS)]
    if predictions is None or any(c not in predictions for c in columns):
        return None
    rows = predictions.dropna(subset=columns)
    if "held_out" in rows:
        rows = rows[rows["held_out"].astype(bool)]
    return rows if len(rows) else None


def roc_curves(rows: pd.DataFrame) -> list[dict]:
    """One-vs-rest ROC of every stage with positives and negatives among ``rows``; the AUC is the metrics
    table's ``auc_<stage>`` (the same rank formula)."""
    curves = []
    for label in LABELS:
        positive = (rows["diagnosis"] == label).to_numpy()
        if positive.all() or not positive.any():
            continue
        scores = rows[f"p_{label}"].to_numpy(float)
        fpr, tpr = roc_curve(scores, positive)
        curves.append({"stage": label, "fpr": fpr, "tpr": tpr, "auc": one_vs_rest_auc(scores, positive),
                       "n_positive": int(positive.sum())})
    return curves


def calibration_bins(rows: pd.DataFrame, n_bins: int = 5) -> dict[str, pd.DataFrame]:
    """Per stage present among ``rows``' diagnoses, the reliability table of its predicted probability."""
    present = set(rows["diagnosis"])
    return {label: reliability(rows[f"p_{label}"].to_numpy(float), (rows["diagnosis"] == label).to_numpy(), n_bins)
            for label in LABELS if label in present}


def _performance_figures(predictions: pd.DataFrame | None) -> dict:
    rows = held_out_labelled(predictions)
    if rows is None:
        return {"roc": None, "calibration": None, "roc_rows": [], "n_curves": 0}
    curves = roc_curves(rows)
    return {"roc": figures.roc_figure(curves) if curves else None,
            "calibration": figures.calibration_figure(calibration_bins(rows)), "n_curves": len(rows),
            "roc_rows": [{"stage": c["stage"], "auc": c["auc"], "n_positive": c["n_positive"]} for c in curves]}


def provenance_section(provenance: Mapping | None) -> dict:
    """The page's provenance: the command line that produced the analysis (and the one that re-rendered the
    page, with --reports-only), its inputs and the software versions (recorded with the analysis, else the
    versions installed now)."""
    provenance = dict(provenance or {})
    inputs = []
    for name, value in (provenance.get("Inputs") or {}).items():
        inputs.append({"name": name, "value": ", ".join(map(str, value)) if isinstance(value, list) else str(value)})
    attribution = provenance.get("Attribution") or {}
    return {"command_line": provenance.get("CommandLine"), "report_command_line": provenance.get("ReportCommandLine"),
            "inputs": inputs, "versions": provenance.get("SoftwareVersions") or package_versions(),
            # the participant outputs' attribution method (analyses recorded before it: rollout's)
            "attribution": {"method": attribution.get("Method") or "rollout",
                            "meaning": attribution.get("Meaning") or "",
                            "parameters": _parameters_text(attribution.get("Parameters"))}}


def _parameters_text(parameters) -> str:
    """An attribution's parameters in a few words (``Steps 16, Reference training_mean_token``); several sets
    (a cohort whose outputs used different steps) joined by " / "."""
    sets = parameters if isinstance(parameters, list) else [parameters or {}]
    return " / ".join(", ".join(f"{k} {v}" for k, v in p.items() if k != "ReferenceDescription") for p in sets
                      if p)


def _cohort_counts(predictions: pd.DataFrame | None, analysis: GroupAnalysis) -> pd.DataFrame:
    if predictions is not None and len(predictions):
        group_col = "diagnosis" if "diagnosis" in predictions and predictions["diagnosis"].notna().any() else "label"
        rows = predictions.dropna(subset=[group_col])
        split = (rows["held_out"].map({True: "held out", False: "training"}) if "held_out" in rows
                 else pd.Series("participants", index=rows.index))
        counts = pd.crosstab(rows[group_col], split)
        return counts.reindex(ordered_groups(list(counts.index)))
    sizes = analysis.roi_stability.groupby("group", sort=False)["n"].first()
    return sizes.to_frame("participants")


def _stage_section(analysis: GroupAnalysis, dseg, roi_labels: Mapping[str, int]) -> dict:
    stage = analysis.stage_rois
    threshold = analysis.options.roi_threshold
    groups = ordered_groups(list(stage["group"].unique()))
    selected = stage[stage["selected"]]
    rois = list(dict.fromkeys(selected.sort_values(["rank"], kind="stable")["roi"]))
    freq = stage.pivot(index="roi", columns="group", values="frequency").reindex(index=rois, columns=groups)
    panels = []
    for group in groups:
        table = stage[stage["group"] == group]
        chosen = table[table["selected"]].sort_values("rank")
        panel = {"group": group, "color": figures.stage_color(group), "n_selected": len(chosen),
                 "rois": chosen[["roi", "frequency", "mean"]].to_dict("records"),
                 "bars": figures.stage_bars(table, group, threshold)}
        if dseg is not None:
            # ROIs rarely in the top set stay grey: the map shows where the stage's signal is
            values = {roi_labels[r]: f for r, f in zip(table["roi"], table["frequency"])
                      if r in roi_labels and f >= BRAIN_MIN_FREQUENCY}
            panel["brain"] = figures.brain_slices(dseg, values, f"{group}: top-set frequency")
        panels.append(panel)
    return {
        "heatmap": figures.stage_heatmap(freq, threshold) if len(rois) else None,
        "panels": panels,
        "sharing": analysis.sharing.to_dict("records"),
        "sharing_stages": [s for s in analysis.options.stages],
    }


def _manhattan_section(analysis: GroupAnalysis) -> list[dict]:
    out = []
    stage = analysis.stage_rois
    present = ordered_groups(list(analysis.roi_gene_stability["group"].unique()))
    shown = [g for g in present if g in analysis.options.stages] or present  # the paper shows disease stages
    for group in shown:
        rois = list(stage[(stage["group"] == group) & stage["selected"]].sort_values("rank")["roi"])
        if not rois:  # nothing stage-specific: show the group's top ROIs so the plot is not empty
            rois = list(stage[stage["group"] == group].sort_values("rank")["roi"].head(5))
        table = analysis.roi_gene_stability
        table = table[(table["group"] == group) & table["roi"].isin(rois)]
        top = (table.dropna(subset=["stability"]).sort_values("stability", ascending=False)
               .groupby("roi", sort=False).head(2))
        out.append({"group": group, "color": figures.stage_color(group), "figure": figures.manhattan(table, group, rois),
                    "top": top[["roi", "gene", "mean", "stability"]].to_dict("records")})
    return out


def _gene_section(analysis: GroupAnalysis, gwas: set[str]) -> dict:
    ranking = analysis.gene_ranking
    main_group = "all" if "all" in set(ranking["group"]) else ranking["group"].iloc[0]
    main = ranking[ranking["group"] == main_group]
    enrichment = analysis.enrichment.to_dict("records")
    primary = next((e for e in enrichment if e["group"] == main_group), enrichment[0] if enrichment else None)
    return {
        "group": main_group,
        "figure": figures.gene_ranking_figure(main, gwas, analysis.options.gene_threshold),
        "stable": [dict(r, gwas=r["gene"] in gwas) for r in main[main["stable"]].to_dict("records")],
        "enrichment": enrichment,
        "primary": primary,
    }


def chance_banner(chance: Mapping | None) -> dict:
    """The report's chance-check banner: ``{"state": "fails" | "unknown" | "beats", "messages": [...]}``.
    ``chance`` is the group analysis's verdict (``workflows.analyse.chance_verdict``; None: tables or a
    caller without one, i.e. unknown)."""
    if not chance:
        return {"state": "unknown", "interpretable": None,
                "messages": ["Chance check unknown: these results record no held-out chance check of the model, so "
                             "whether the stage-specific ROIs, stable genes and enrichment are interpretable is "
                             "unknown."]}
    flag = chance.get("interpretable")
    state = "beats" if flag is True else "fails" if flag is False else "unknown"
    return {"state": state, "interpretable": flag, "messages": list(chance.get("messages") or [])}


def _headline(analysis: GroupAnalysis, metrics: list[dict], n_participants: int,
              interpretable: bool | None = True) -> list[dict]:
    tiles = [{"value": str(n_participants), "label": "participants"}]
    accuracy = next((m for m in metrics if m["metric"].lower() in ("accuracy", "balanced accuracy")), None)
    if accuracy:
        tiles.append({"value": f"{accuracy['value']:.1%}", "label": f"{accuracy['metric']} (held out)"})
    # a finding of a model that does not beat chance is shown, never headlined as one
    caveat = {False: " — NOT INTERPRETABLE (model at chance)", None: " (chance check unknown)"}.get(interpretable, "")
    selected = analysis.stage_rois[analysis.stage_rois["selected"]].groupby("group")["roi"].count()
    for stage in analysis.options.stages:
        if stage in set(analysis.stage_rois["group"]):
            tiles.append({"value": str(int(selected.get(stage, 0))), "label": f"{stage}-specific ROIs{caveat}",
                          "color": "#b00020" if interpretable is False else figures.stage_color(stage)})
    enrich = analysis.enrichment
    if len(enrich):
        row = enrich.iloc[0]
        warn = "#b00020" if interpretable is False else None
        tiles.append({"value": f"{int(row['n_stable'])}", "label": f"stable genes ({row['group']}){caveat}",
                      "color": warn})
        tiles.append({"value": f"{row['p_value']:.3g}", "label": f"GWAS enrichment p{caveat}", "color": warn})
    return tiles


def render_group_report(analysis: GroupAnalysis, out_path: Path | str, model: str, *,
                        predictions: pd.DataFrame | None = None, metrics=None,
                        confusion: pd.DataFrame | None = None, dseg=None, dseg_source: str | None = None,
                        dseg_values: str = "index", gwas_genes: Sequence[str] = (),
                        app_version: str | None = None, chance: Mapping | None = None,
                        provenance: Mapping | None = None) -> Path:
    """Render ``group.html`` (atomically) and return its path.

    ``predictions``: one row per participant/session with ``label`` (predicted), ``p_<label>`` columns and,
    when known, ``diagnosis`` and ``held_out``. ``metrics``: see :func:`metrics_rows`. ``confusion``:
    counts (index true, columns predicted); computed from ``predictions`` when omitted. ``dseg``: a nibabel
    ROI image of a representative participant for the brain figures (named by ``dseg_source`` in the
    page) whose voxels hold the canonical ROI index 1..109 (``dseg_values="index"``, the BIDS dseg
    convention of ``desc-rois_dseg``) or FreeSurfer labels (``"freesurfer"``). ``chance``: the model's
    chance verdict (see :func:`chance_banner`); the page opens with a banner unless the model beats chance,
    and marks the stage-specific ROIs, stable genes and enrichment as not interpretable when it does not.
    ``provenance``: ``CommandLine``, ``Inputs`` (name -> value), ``SoftwareVersions`` and, for a re-rendered
    page, ``ReportCommandLine`` (``workflows.analyse.run_provenance``); see :func:`provenance_section`.
    """

    roi_table = load_roi_table()
    if dseg_values not in ("index", "freesurfer"):
        raise ValueError(f"dseg_values must be 'index' or 'freesurfer', got {dseg_values!r}")
    value_column = "index" if dseg_values == "index" else "label"
    roi_labels = dict(zip(roi_table["name"], roi_table[value_column].astype(int)))
    gwas = set(gwas_genes)
    metric_list = metrics_rows(metrics)
    if confusion is None:
        confusion = confusion_from_predictions(predictions)
    counts = _cohort_counts(predictions, analysis)
    n_participants = int(len(predictions)) if predictions is not None else int(counts.to_numpy().sum())
    banner = chance_banner(chance)
    context = {
        "chance": banner,
        "model": model,
        "version": app_version or _app_version(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tiles": _headline(analysis, metric_list, n_participants, banner["interpretable"]),
        "cohort_figure": figures.cohort_figure(counts),
        "cohort_table": counts.reset_index().rename(columns={counts.index.name or "index": "group"}).to_dict("records"),
        "cohort_columns": ["group", *map(str, counts.columns)],
        "metrics": metric_list,
        "confusion_figure": (figures.confusion_figure(confusion.to_numpy(), list(confusion.columns))
                             if confusion is not None else None),
        "performance": _performance_figures(predictions),
        "provenance": provenance_section(provenance),
        "stage": _stage_section(analysis, dseg, roi_labels),
        "dseg_source": dseg_source,
        "manhattan": _manhattan_section(analysis),
        "genes": _gene_section(analysis, gwas),
        "options": asdict(analysis.options),
        "citations": CITATIONS,
        "stage_colors": figures.STAGE_COLORS,
    }
    env = Environment(loader=PackageLoader("rgenima_app.reports", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _format_number
    text = env.get_template("group.html.j2").render(**context)
    return write_text(Path(out_path), text)


def _format_number(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}g}"


def _app_version() -> str:
    return str(__version__)
