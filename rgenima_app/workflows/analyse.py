"""The group level with ``--model``: gather every participant's outputs of one model, analyse the cohort.

Reads what the participant level wrote for the model (``*_desc-<model>_predictions.tsv/.json``,
``*_roiattention.tsv``, ``*_roigeneattention.tsv``), joins the true diagnoses of participants.tsv, and
writes the cohort predictions, the held-out metrics, the stability/enrichment tables and ``group.html``.

The participants' attention outputs must all hold one attribution method (``AttributionMethod`` in their
sidecars, ``participant --model --attribution``; outputs written before rgenima recorded it are rollout's):
importances of different methods are different quantities, so a cohort that mixes them is refused
(``one_attribution``, a usage error naming the files and the fix). The method is recorded in the analysis's
provenance (cohort predictions' sidecar, group report).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rgenima_app import STAGES
from rgenima_app.analysis.group import AnalysisOptions, GroupAnalysis, analyse_cohort, write_group_tables
from rgenima_app.analysis.metrics import ChanceCheck, chance_check, classification_metrics
from rgenima_app.analysis.settings import CohortSettings
from rgenima_app.analysis.stage_rois import sharing_pattern
from rgenima_app.bids.inputs import read_participants
from rgenima_app.bids.tsv import BIDS_BOOLEAN, read_tsv
from rgenima_app.environment import package_versions
from rgenima_app.errors import MissingInputError, NoDataError, ProcessingError, UsageError
from rgenima_app.genetics.panel import load_gwas_genes
from rgenima_app.imaging.roi_table import load_roi_table, roi_names
from rgenima_app.inference.methods import MEANINGS
from rgenima_app.models.bundle import chance_status, hash_participant_id, model_label, read_bundle_metadata
from rgenima_app.reports.group import render_group_report

log = logging.getLogger("rgenima")


@dataclass
class CohortOutputs:
    """Every participant/session's outputs of one model, aligned: rows of ``predictions`` = first axes."""

    predictions: pd.DataFrame      # participant_id, session, label, p_NC..p_AD, held_out, model_hash, attribution...
    roi_importance: np.ndarray     # (n, 109), canonical ROI order (0 where a sample has no image)
    roi_gene: np.ndarray           # (n, 109, G)
    genes: list[str]
    gene_importance: np.ndarray | None = None   # (n, G) from ``*_geneattention.tsv`` when every sample has it
    complete: np.ndarray | None = None          # (n,) samples with ROI importance and ROI-gene attention


def _entities(path: Path) -> tuple[str, str | None]:
    parts = dict(p.split("-", 1) for p in path.name.split("_") if "-" in p)
    return f"sub-{parts['sub']}", parts.get("ses")


def _read_output(path: Path, required: bool = True) -> pd.DataFrame | None:
    if not path.is_file():
        if not required:
            return None
        raise MissingInputError(f"{path} is missing (the prediction beside it has no attention output)",
                                hint="rerun the participant level of this participant with the same --model")
    try:
        return read_tsv(path, na_values=["n/a"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise MissingInputError(f"cannot read {path}: {exc}", hint="rerun the participant level of this participant") from exc
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def load_cohort_outputs(output_dir: Path, model: str) -> CohortOutputs:
    """Read the participant outputs of ``model``; refuse none found, or outputs of different model files."""
    prediction_files = sorted(Path(output_dir).glob(f"sub-*/**/sub-*_desc-{model}_predictions.tsv"))
    if not prediction_files:
        found = sorted({p.name.split("_desc-")[1].split("_")[0]
                        for p in Path(output_dir).glob("sub-*/**/*_predictions.tsv") if "_desc-" in p.name})
        raise NoDataError(
            f"no participant outputs of model '{model}' in {output_dir}"
            + (f" (outputs found for model(s): {', '.join(found)})" if found else " (no participant outputs of any model)"),
            hint="run the participant level with the same --model first" +
                 (", or pass the bundle of one of the models found" if found else ""))
    rows, roi_rows, pair_tables, gene_tables = [], [], [], []
    names = roi_names()
    for path in tqdm(prediction_files, desc=f"reading outputs of {model}", unit="output", leave=False):
        participant, session = _entities(path)
        table = _read_output(path)
        if table.empty or "label" not in table or any(f"p_{s}" not in table for s in STAGES):
            raise MissingInputError(f"{path} lacks the columns label, {', '.join(f'p_{s}' for s in STAGES)}",
                                    hint="rerun the participant level of this participant with the same --model")
        sidecar_path = path.with_suffix(".json")
        try:
            sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
        except (OSError, ValueError) as exc:
            raise MissingInputError(f"cannot read {sidecar_path}: {exc}",
                                    hint="rerun the participant level of this participant") from exc
        stem = str(path)[: -len("_predictions.tsv")]
        method, parameters = _attribution_of(Path(stem + "_roiattention.json"))
        row = {"participant_id": participant, "session": session, "label": table["label"].iloc[0],
               **{f"p_{s}": float(table[f"p_{s}"].iloc[0]) for s in STAGES},
               "held_out": bool(sidecar.get("HeldOut", sidecar.get("held_out", True))),
               "model_hash": sidecar.get("ModelHash", sidecar.get("model_hash")),
               "genotypes_file": sidecar.get("GenotypesFile"),
               "attribution": method, "attribution_parameters": parameters,
               "attribution_sidecar": str(Path(stem + "_roiattention.json").relative_to(output_dir))}
        rows.append(row)
        rois = _read_output(Path(stem + "_roiattention.tsv"))
        roi_rows.append(rois.set_index("roi")["importance"].reindex(names).to_numpy(float)
                        if {"roi", "importance"} <= set(rois.columns) else np.full(len(names), np.nan))
        pairs = _read_output(Path(stem + "_roigeneattention.tsv"))
        pair_tables.append(pairs if {"roi", "gene", "attention"} <= set(pairs.columns) and len(pairs) else None)
        genes_table = _read_output(Path(stem + "_geneattention.tsv"), required=False)
        gene_tables.append(genes_table if genes_table is not None and {"gene", "importance"} <= set(genes_table.columns)
                           and len(genes_table) else None)
    predictions = pd.DataFrame(rows)
    hashes = predictions["model_hash"].dropna().unique()
    if len(hashes) > 1:
        by_hash = predictions.groupby("model_hash")["participant_id"].apply(
            lambda s: ", ".join(s.iloc[:5]) + (f" and {len(s) - 5} more" if len(s) > 5 else ""))
        raise ProcessingError(
            f"outputs of '{model}' in {output_dir} come from {len(hashes)} different models (model hashes): "
            + "; ".join(f"{str(h)[:12]}: {who}" for h, who in by_hash.items()),
            hint="rerun the participant level of all participants with one --model")
    genes = sorted(set().union(*(set(t["gene"]) for t in pair_tables if t is not None),
                               *(set(t["gene"]) for t in gene_tables if t is not None)))
    roi_index, gene_index = {n: i for i, n in enumerate(names)}, {g: j for j, g in enumerate(genes)}
    roi_gene = np.zeros((len(pair_tables), len(names), len(genes)))
    for k, pairs in enumerate(pair_tables):
        if pairs is not None:
            keep = pairs["roi"].isin(roi_index)
            roi_gene[k, pairs.loc[keep, "roi"].map(roi_index).to_numpy(),
                     pairs.loc[keep, "gene"].map(gene_index).to_numpy()] = pairs.loc[keep, "attention"].fillna(0)
    roi_importance = np.vstack(roi_rows)
    complete = ~np.isnan(roi_importance).all(axis=1) & np.array([t is not None for t in pair_tables])
    gene_importance = None
    if all(t is not None for t in gene_tables):
        gene_importance = np.zeros((len(gene_tables), len(genes)))
        for k, table in enumerate(gene_tables):
            gene_importance[k, table["gene"].map(gene_index).to_numpy()] = table["importance"].fillna(0)
    return CohortOutputs(predictions, np.nan_to_num(roi_importance), roi_gene, genes, gene_importance, complete)


def _attribution_of(sidecar: Path) -> tuple[str, str]:
    """The attribution method of a sample's attention outputs and its parameters (as sorted JSON) from the
    ``roiattention`` sidecar; outputs written before rgenima recorded the method are rollout's."""
    try:
        recorded = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    except (OSError, ValueError) as exc:
        raise MissingInputError(f"cannot read {sidecar}: {exc}",
                                hint="rerun the participant level of this participant") from exc
    recorded = recorded if isinstance(recorded, dict) else {}
    method = recorded.get("AttributionMethod") or "rollout"
    return str(method), json.dumps(recorded.get("AttributionParameters") or {}, sort_keys=True)


def one_attribution(predictions: pd.DataFrame, output_dir: Path, model: str) -> dict:
    """The one attribution method of the analysed samples' attention outputs (``Method``, ``Parameters``,
    ``Meaning``): refused (``UsageError``) when they mix methods, a loud warning when one method ran with
    different parameters (integrated gradients' steps)."""
    if "attribution" not in predictions:
        return {"Method": "rollout", "Parameters": {}, "Meaning": MEANINGS["rollout"]}
    methods = list(dict.fromkeys(predictions["attribution"]))
    if len(methods) > 1:
        counts = predictions["attribution"].value_counts()
        lines = []
        for method in sorted(methods, key=lambda m: -counts[m]):
            rows = predictions[predictions["attribution"] == method]
            files = list(rows["attribution_sidecar"])
            lines.append(f"{method} ({len(rows)} sample(s)): " + ", ".join(files[:3])
                         + (f" and {len(files) - 3} more" if len(files) > 3 else ""))
        majority = str(counts.index[0])
        others = sorted({p.removeprefix("sub-") for p in
                         predictions.loc[predictions["attribution"] != majority, "participant_id"]})
        shown = " ".join(others[:10]) + (" ..." if len(others) > 10 else "")
        raise UsageError(
            f"the participant outputs of model '{model}' in {output_dir} hold {len(methods)} different attribution "
            f"methods (AttributionMethod in their attention sidecars): importances of different methods are "
            f"different quantities, so cohort statistics over a mix of them mean nothing:\n  " + "\n  ".join(lines),
            hint=f"make every participant's outputs one method, e.g. rerun 'rgenima BIDS_DIR OUTPUT_DIR participant "
                 f"--model BUNDLE --attribution {majority} --overwrite --participant-label {shown}' (or rerun all "
                 f"participants with the method you want); or analyse one method's participants with "
                 f"--participant-label")
    method = methods[0]
    variants = list(dict.fromkeys(predictions["attribution_parameters"]))
    if len(variants) > 1:
        by = predictions.groupby("attribution_parameters")["participant_id"].apply(
            lambda s: ", ".join(s.iloc[:3]) + (f" and {len(s) - 3} more" if len(s) > 3 else ""))
        log.warning("THE PARTICIPANT OUTPUTS OF %s MIX %s SETTINGS: %s. Their importances are comparable only "
                    "roughly; rerun the participant level of all of them with the same settings (--attribution-steps)"
                    " and --overwrite", model, method, "; ".join(f"{v}: {who}" for v, who in by.items()))
    return {"Method": method, "Parameters": json.loads(variants[0]) if len(variants) == 1 else
            [json.loads(v) for v in variants], "Meaning": MEANINGS.get(method, "")}


# -- the group level with --model -----------------------------------------------------------------------
#: Keys of the ``[analysis]`` table of ``--train-config`` (all optional).
def bundle_identity(path: Path) -> tuple[str, dict]:
    """The model label of output names and the bundle metadata (checked; no weights are loaded)."""

    metadata = read_bundle_metadata(path)
    return metadata.get("name") or model_label(Path(path).name), metadata


def _held_out(predictions: pd.DataFrame, metadata: dict) -> pd.Series:
    """Held out = the participant output says so and the bundle's hashed training IDs do not contain it."""

    training = metadata.get("training") or {}
    hashed = set(training.get("participants_sha256") or [])
    salt = training.get("participant_salt", "")
    trained = predictions["participant_id"].map(lambda p: hash_participant_id(p, salt) in hashed)
    claimed = predictions["held_out"].astype(bool)
    wrong = predictions.loc[claimed & trained, "participant_id"].unique()
    if len(wrong):
        log.warning("%d participant(s) marked held out in their outputs were in the model's training data: %s; "
                    "they count as training participants", len(wrong), ", ".join(wrong[:10]))
    return claimed & ~trained


def _filter(outputs: CohortOutputs, config) -> CohortOutputs:
    keep = np.ones(len(outputs.predictions), dtype=bool)
    pred = outputs.predictions
    if config.participant_label:
        keep &= pred["participant_id"].isin([f"sub-{p}" for p in config.participant_label]).to_numpy()
    if config.session_label:
        keep &= pred["session"].isin(config.session_label).to_numpy()
    if not keep.any():
        raise NoDataError("--participant-label/--session-label select none of the participant outputs "
                          f"({len(pred)} found)", hint="labels found: " + ", ".join(pred["participant_id"].unique()[:20]))
    return CohortOutputs(pred[keep].reset_index(drop=True), outputs.roi_importance[keep], outputs.roi_gene[keep],
                         outputs.genes,
                         outputs.gene_importance[keep] if outputs.gene_importance is not None else None,
                         outputs.complete[keep] if outputs.complete is not None else None)


PREDICTION_COLUMNS = {
    "participant_id": "Participant (sub-<label>)",
    "session": "Session label (n/a without sessions)",
    "diagnosis": "True diagnosis from participants.tsv (NC/SMC/MCI/AD after mapping; n/a when unknown)",
    "label": "Predicted stage (argmax of the probabilities)",
    **{f"p_{s}": f"Predicted probability of {s}" for s in STAGES},
    "held_out": "True when the participant was not in the model's training data (metrics use these only)",
}


def analyse_group(config, writer, run_id: str) -> dict[str, Path]:
    """``rgenima BIDS OUT group --model BUNDLE``: cohort tables, held-out metrics, stability, group.html."""

    settings = config.analysis
    model, metadata = bundle_identity(config.model)
    out = Path(config.output_dir)
    if config.reports_only:
        return {"report": rerender_group_report(out, model, config.command_line)}
    writer.initialize(load_roi_table())
    config.save(out / "logs", run_id)
    log.info("group analysis of model '%s' (%s)", model, config.model)
    outputs = _filter(load_cohort_outputs(out, model), config)
    predictions = outputs.predictions
    attribution = one_attribution(predictions, out, model)
    log.info("attribution of the participant outputs: %s (%s)", attribution["Method"], attribution["Meaning"])
    participants = _read_diagnoses(config.bids_dir, settings.diagnosis_column)
    predictions.insert(2, "diagnosis", predictions["participant_id"].str.removeprefix("sub-").map(participants))
    predictions["held_out"] = _held_out(predictions, metadata)
    settings = _resolve_grouping(settings, predictions)
    provenance = run_provenance(config, predictions, attribution)
    paths = {"predictions": _write_predictions(writer, predictions, model, provenance)}

    evaluated = predictions[predictions["held_out"] & predictions["diagnosis"].notna()]
    report = cohort_check = None
    if len(evaluated):
        report, cohort_check = _write_metrics(writer, model, evaluated, settings, paths, chance_status(metadata))
    else:
        log.warning("no labelled held-out participant among %d: no metrics (participants.tsv column '%s')",
                    len(predictions), settings.diagnosis_column)
    chance = chance_verdict(chance_status(metadata), cohort_check)
    if chance["interpretable"] is not True:
        log.warning("group analysis of %s: %s", model, " ".join(chance["messages"]))

    analysis = _analyse(outputs, predictions, settings, snps_per_gene(config.model, outputs.genes))
    paths.update(write_group_tables(analysis, out, model, chance=chance))
    dseg, dseg_source = _representative_dseg(out, predictions)
    paths["report"] = render_group_report(
        analysis, out / "group.html", model, predictions=predictions,
        metrics=report.table if report is not None else None,
        confusion=report.confusion if report is not None else None,
        dseg=dseg, dseg_source=dseg_source, gwas_genes=_gwas_genes(), chance=chance, provenance=provenance)
    log.info("group report: %s", paths["report"])
    return paths


def run_provenance(config, predictions: pd.DataFrame, attribution: dict | None = None) -> dict:
    """What produced the group analysis, as the group report and the cohort predictions' sidecar record it:
    the command line as typed, the inputs (the BIDS dataset, the genotype files and the model bundle the
    participant level recorded, with the bundle's SHA-256, and the attribution method of the participant
    outputs, ``one_attribution``) and the software versions."""
    hashes = predictions["model_hash"].dropna().unique()
    genotypes = sorted(predictions["genotypes_file"].dropna().unique()) if "genotypes_file" in predictions else []
    attribution = attribution or one_attribution(predictions, config.output_dir, "")
    parameters = attribution["Parameters"]
    described = attribution["Method"] + (f" {json.dumps(parameters)}" if parameters else "")
    return {"CommandLine": config.command_line,
            "Inputs": {"BIDS dataset": str(config.bids_dir), "participant outputs": str(config.output_dir),
                       "genotypes (participant level)": genotypes or "none recorded",
                       "model bundle": str(config.model),
                       "model SHA-256 (participant level)": str(hashes[0]) if len(hashes) else "not recorded",
                       "attribution method (participant level)": described},
            "Attribution": attribution,
            "SoftwareVersions": package_versions()}


def chance_verdict(model_status: dict, cohort: ChanceCheck | None) -> dict:
    """Whether the cohort's findings (stage-specific ROIs, stable genes, enrichment) are interpretable:
    False when the model failed a chance check, at training (``model_status``, from the bundle) or on
    this cohort's labelled held-out participants (``cohort``); True when every check made passed; None
    when none is known (a bundle without a chance check and no labelled held-out participant)."""
    cohort_status = chance_status({"metrics": {"chance": cohort.to_dict()}}) if cohort is not None else None
    states = [s["state"] for s in (model_status, cohort_status) if s is not None and s["state"] != "unknown"]
    interpretable = None if not states else all(state == "beats" for state in states)
    messages = [f"Model, at training: {model_status['message']}"]
    if cohort_status is not None:
        messages.append(f"This cohort's labelled held-out participants: {cohort_status['message']}")
    if interpretable is False:
        messages.append("The stage-specific ROIs, stable genes and GWAS enrichment below are computed but NOT "
                        "INTERPRETABLE: they describe the attention of a model that did not beat chance.")
    elif interpretable is None:
        messages.append("Whether the stage-specific ROIs, stable genes and enrichment are interpretable is unknown.")
    return {"interpretable": interpretable, "model": model_status["check"], "model_state": model_status["state"],
            "cohort": cohort.to_dict() if cohort is not None else None, "messages": messages}


def _read_diagnoses(bids_dir: Path, column: str) -> dict:
    table = read_participants(bids_dir, column)
    if table["diagnosis"].isna().all():
        log.warning("%s has no diagnoses (column '%s'): no held-out metrics can be computed",
                    Path(bids_dir) / "participants.tsv", column)
    return table["diagnosis"].dropna().to_dict()


def _resolve_grouping(settings: CohortSettings, predictions: pd.DataFrame) -> CohortSettings:
    """``auto``: the diagnoses when any analysed participant has one, else the predicted stage, said loudly."""
    if settings.options.group_by != "auto":
        return settings
    if predictions["diagnosis"].notna().any():
        group_by = "diagnosis"
    else:
        group_by = "predicted"
        log.warning("no analysed participant has a diagnosis (participants.tsv column '%s'): the stability analysis "
                    "groups participants by the model's predicted stage (--group-by predicted), so its stage-specific "
                    "ROIs and genes describe what the model predicts, not a diagnosis", settings.diagnosis_column)
    return replace(settings, options=replace(settings.options, group_by=group_by))


def _write_predictions(writer, predictions: pd.DataFrame, model: str, provenance: dict) -> Path:
    path = Path(writer.root) / f"desc-{model}_predictions.tsv"
    hashes = predictions["model_hash"].dropna().unique()
    sidecar = {"Description": f"Predictions of model '{model}' for every participant/session with outputs, "
                              "with the true diagnosis where known",
               "Model": model, "ModelHash": hashes[0] if len(hashes) else None, "Provenance": provenance,
               **{c: {"Description": d} for c, d in PREDICTION_COLUMNS.items()}}
    table = predictions[list(PREDICTION_COLUMNS)].copy()
    table["held_out"] = table["held_out"].map(BIDS_BOOLEAN)
    return writer.write_tsv(path, table, sidecar=sidecar)


def _write_metrics(writer, model: str, evaluated: pd.DataFrame, settings: CohortSettings, paths: dict,
                   model_chance: dict) -> tuple:
    opts = settings.options
    proba = evaluated[[f"p_{s}" for s in STAGES]].to_numpy(float)
    report = classification_metrics(list(evaluated["diagnosis"]), proba, STAGES, n_boot=opts.n_boot,
                                    seed=opts.seed, ci=settings.ci, groups=list(evaluated["participant_id"]))
    trained = model_chance["check"] or {}  # the same test as at training: its permutations and alpha
    cohort_check = chance_check(list(evaluated["diagnosis"]), proba, STAGES,
                                n_permutations=int(trained.get("n_permutations") or 1000),
                                alpha=float(trained.get("alpha") or 0.05), seed=opts.seed,
                                groups=list(evaluated["participant_id"]))
    path = Path(writer.root) / f"desc-{model}_metrics.tsv"
    sidecar = {
        "Description": f"Classification metrics of model '{model}' on held-out labelled participants only "
                       "(group analysis of the participant-level predictions)",
        "Model": model,
        "NSamples": report.n,
        "NParticipants": int(evaluated["participant_id"].nunique()),
        "Participants": sorted(evaluated["participant_id"].unique()),
        "Bootstrap": {"NBoot": opts.n_boot, "Seed": opts.seed, "ConfidenceLevel": settings.ci,
                      "Method": "percentile bootstrap over participants (sessions resampled together)"},
        "ConfusionMatrix": {"Rows": "true label", "Columns": "predicted label", "Labels": list(STAGES),
                            "Counts": report.confusion.to_numpy().tolist()},
        "Metrics": report.to_dict(),
        "ChanceCheck": {**cohort_check.to_dict(),
                        "Method": "beats_chance: accuracy > majority_rate and label-permutation p of the balanced "
                                  "accuracy <= alpha (labels permuted between participants; docs/analysis.md)"},
        "metric": {"Description": "Metric name (rgenima_app.analysis.metrics; docs/analysis.md)"},
        "value": {"Description": "Value on the held-out participants"},
        "ci_low": {"Description": f"Lower bound of the {settings.ci:.0%} bootstrap interval"},
        "ci_high": {"Description": f"Upper bound of the {settings.ci:.0%} bootstrap interval"},
    }

    paths["metrics"] = writer.write_tsv(path, report.table, sidecar)
    t = report.table.set_index("metric")["value"]
    log.info("held-out metrics (%d samples): accuracy %.3f, macro-F1 %.3f, balanced accuracy %.3f, macro AUC %.3f",
             report.n, t["accuracy"], t["macro_f1"], t["balanced_accuracy"], t["macro_auc"])
    log.info("chance check on these participants: majority-class rate %.3f, permutation p %.3g: %s",
             cohort_check.majority_rate, cohort_check.p_value,
             "beats chance" if cohort_check.beats_chance else "does NOT beat chance")
    return report, cohort_check


def snps_per_gene(bundle: Path, genes: list[str]) -> list[int] | None:
    """Each gene's number of SNPs in the bundle's ``snp_panel.tsv`` (per-SNP gene importance); None without it."""
    path = Path(bundle) / "snp_panel.tsv"
    if not path.is_file():
        return None
    try:
        counts = read_tsv(path, keep_default_na=False, na_values=["n/a", ""])["gene"].value_counts()
    except (OSError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        log.warning("cannot count the SNPs per gene in %s (%s): gene importance is not divided per SNP", path, exc)
        return None
    return [int(counts.get(gene, 1)) for gene in genes]


def _analyse(outputs: CohortOutputs, predictions: pd.DataFrame, settings: CohortSettings,
             snps_per_gene: list[int] | None = None):
    """Sessions averaged per participant (a participant is resampled once), grouped, small groups skipped."""

    opts = settings.options
    if not outputs.genes:
        raise ProcessingError("the participant outputs of this model have no ROI-gene attention (every "
                              "*_roigeneattention.tsv is empty): the stability analysis needs image and genotypes",
                              hint="run the participant level with --genotypes and T1w images, with an image-gene model")
    complete = outputs.complete if outputs.complete is not None else np.ones(len(predictions), dtype=bool)
    if (~complete).any():
        log.warning("%d sample(s) lack ROI or ROI-gene attention (no image or no genotypes) and are left out of "
                    "the stability analysis: %s", int((~complete).sum()),
                    ", ".join(predictions.loc[~complete, "participant_id"].unique()[:10]))
    participant = predictions["participant_id"].to_numpy()
    order = [p for p in dict.fromkeys(participant) if complete[participant == p].any()]
    rows = [np.flatnonzero((participant == p) & complete) for p in order]
    roi = np.stack([outputs.roi_importance[r].mean(axis=0) for r in rows])
    roi_gene = np.stack([outputs.roi_gene[r].mean(axis=0) for r in rows])
    gene_importance = (np.stack([outputs.gene_importance[r].mean(axis=0) for r in rows])
                       if outputs.gene_importance is not None else None)
    if opts.group_by == "predicted":
        proba = predictions[[f"p_{s}" for s in STAGES]].to_numpy(float)
        groups = np.array([STAGES[int(proba[r].mean(axis=0).argmax())] for r in rows], dtype=object)
    else:
        groups = np.array([predictions["diagnosis"].iloc[r[0]] for r in rows], dtype=object)
    keep = pd.notna(groups)
    if (~keep).any():
        log.info("%d participant(s) without a diagnosis left out of the stability analysis", int((~keep).sum()))
    sizes = pd.Series(groups[keep]).value_counts()
    for group, size in sizes.items():
        if size < 2:
            log.warning("group %s has %d participant(s): fewer than 2, skipped in the stability analysis", group, size)
            keep &= groups != group
    if not keep.any():
        raise NoDataError(
            f"no diagnostic group ({opts.group_by}) has 2 or more participants with outputs of the model "
            f"(groups: {', '.join(f'{g}: {n}' for g, n in sizes.items()) or 'none'})",
            hint="run the participant level on more participants, check participants.tsv diagnoses, "
                 "or group by the model's predicted stage with --group-by predicted")
    log.info("stability analysis of %d participants in %d group(s), B = %d", int(keep.sum()),
             len(set(groups[keep])), opts.n_boot)
    if gene_importance is None:
        log.info("no *_geneattention.tsv for every sample: gene importance = ROI-gene attention summed over ROIs")
    return analyse_cohort(roi[keep], roi_gene[keep], list(groups[keep]), roi_names(), outputs.genes,
                          _gwas_genes(), gene_importance[keep] if gene_importance is not None else None, opts,
                          snps_per_gene=snps_per_gene)


def _gwas_genes() -> list[str]:
    return list(load_gwas_genes()["gene"])


def _representative_dseg(out: Path, predictions: pd.DataFrame):
    """The first participant (by label) whose ``desc-rois_dseg.nii.gz`` exists, for the brain figures."""
    import nibabel as nib

    for participant, session in sorted(zip(predictions["participant_id"], predictions["session"].fillna("")),
                                       key=lambda x: (x[0], x[1])):
        name = participant + (f"_ses-{session}" if session else "")
        folder = out / participant / (f"ses-{session}" if session else "") / "anat"
        path = folder / f"{name}_desc-rois_dseg.nii.gz"
        if path.is_file():
            try:
                return nib.load(str(path)), name
            except Exception as exc:  # a damaged image only costs the brain figure
                log.warning("cannot read %s (%s); trying the next participant", path, exc)
    log.info("no participant ROI map (desc-rois_dseg.nii.gz) found: the report has no brain slices")
    return None, None


# -- --reports-only: group.html again from the tables on disk --------------------------------------------
def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise MissingInputError(f"{path} is missing: --reports-only re-renders group.html from the group tables",
                                hint="run 'rgenima BIDS_DIR OUTPUT_DIR group --model BUNDLE' without --reports-only first")
    try:
        return read_tsv(path, na_values=["n/a"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MissingInputError(f"cannot read {path}: {exc}", hint="rerun the group analysis to rewrite it") from exc


def _as_bool(series: pd.Series) -> pd.Series:
    return series.map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))


def load_group_analysis(output_dir: Path, model: str) -> GroupAnalysis:
    """Rebuild the ``GroupAnalysis`` of a finished group run from its tables (and settings sidecar)."""
    import json as _json


    out = Path(output_dir)
    roi = _read_table(out / f"desc-{model}_roistability.tsv")
    roi_gene = _read_table(out / f"desc-{model}_roigenestability.tsv")
    ranking = _read_table(out / f"desc-{model}_generanking.tsv")
    enrichment = _read_table(out / f"desc-{model}_geneenrichment.tsv")
    roi["stage_specific"] = _as_bool(roi["stage_specific"])
    ranking["stable"] = _as_bool(ranking["stable"])
    try:
        settings = _json.loads((out / f"desc-{model}_roistability.json").read_text()).get("Settings", {})
    except (OSError, ValueError):
        settings = {}
    known = set(AnalysisOptions.__dataclass_fields__)
    options = AnalysisOptions(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in settings.items() if k in known})
    stage = roi[["group", "roi", "mean", "frequency", "stage_specific"]].rename(columns={"stage_specific": "selected"})
    stage = stage.sort_values(["group", "frequency", "mean"], ascending=[True, False, False], kind="stable")
    stage["rank"] = stage.groupby("group").cumcount() + 1
    stage = stage[["group", "roi", "mean", "frequency", "rank", "selected"]].reset_index(drop=True)
    return GroupAnalysis(roi_stability=roi, roi_gene_stability=roi_gene, stage_rois=stage,
                         sharing=sharing_pattern(stage, options.stages), gene_ranking=ranking,
                         enrichment=enrichment, options=options)


def rerender_group_report(output_dir: Path, model: str, command_line: str | None = None) -> Path:
    """``group --model BUNDLE --reports-only``: write group.html again from the existing group tables; its
    provenance is the analysis's (the cohort predictions' sidecar), with this run's ``command_line`` beside."""
    import json as _json


    out = Path(output_dir)
    analysis = load_group_analysis(out, model)
    predictions = _read_table(out / f"desc-{model}_predictions.tsv")
    predictions["held_out"] = _as_bool(predictions["held_out"])
    try:
        provenance = _json.loads((out / f"desc-{model}_predictions.json").read_text()).get("Provenance") or {}
    except (OSError, ValueError):
        provenance = {}
    provenance = {**provenance, "ReportCommandLine": command_line}
    metrics = confusion = None
    metrics_path = out / f"desc-{model}_metrics.tsv"
    if metrics_path.is_file():
        metrics = _read_table(metrics_path)
        try:
            matrix = _json.loads(metrics_path.with_suffix(".json").read_text())["ConfusionMatrix"]
            confusion = pd.DataFrame(matrix["Counts"], index=pd.Index(matrix["Labels"], name="true"),
                                     columns=pd.Index(matrix["Labels"], name="predicted"))
        except (OSError, ValueError, KeyError):
            confusion = None  # recomputed from the predictions' held-out rows
    try:  # the verdict the tables were written with (absent in tables written before the chance check)
        chance = _json.loads((out / f"desc-{model}_roistability.json").read_text()).get("ChanceCheck")
    except (OSError, ValueError):
        chance = None
    dseg, dseg_source = _representative_dseg(out, predictions)
    path = render_group_report(analysis, out / "group.html", model, predictions=predictions, metrics=metrics,
                               confusion=confusion, dseg=dseg, dseg_source=dseg_source, gwas_genes=_gwas_genes(),
                               chance=chance, provenance=provenance)
    log.info("group report re-rendered from the tables: %s", path)
    return path
