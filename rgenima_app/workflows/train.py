"""``rgenima BIDS OUT group --train``: cohort -> splits -> genotype QC -> stage 1 -> stage 2 -> evaluation.

Per fold (one for a plain split): genotype QC on the fold's training participants, the RiT trained
and frozen (stage 1), its tokens cached, the connector + LLM trained (stage 2), test participants
evaluated, and the model bundle written. Outputs (model label ``<m>``, from the train config's
``name``): ``models/<m>/`` (``<m>fold<k>`` with k-fold), ``desc-<m>_split.tsv``,
``desc-<m>_evaluation.tsv`` (held-out metrics with CIs, one row per model and metric, baselines
included), ``desc-<m>_testpredictions.tsv`` and ``figures/desc-<m>_training.svg``. With a progression
target (``[target] kind``), the baseline sample of each participant with the target is trained on, and the
fold ends in ``workflows/train_progression.py`` (its own evaluation and predictions tables).

Work that is done is not redone: ROI patches, whole-brain volumes, stage-1 weights and RiT tokens are
cached in the work dir, and stage 2 (R-GenIMA's and the ``llm_wholebrain`` baseline's) resumes from its
last checkpoint, so an interrupted run finishes when rerun with the same command.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgenima_app import __version__
from rgenima_app.analysis.metrics import ChanceCheck, MetricsReport, summarize_folds
from rgenima_app.bids.derivatives import DerivativesWriter
from rgenima_app.bids.inputs import collect_t1w, load_bids_filters, read_participants
from rgenima_app.bids.tsv import BIDS_BOOLEAN, read_tsv, to_tsv
from rgenima_app.bids.validation import validate_bids
from rgenima_app.config import RunConfig
from rgenima_app.confinement import check_write
from rgenima_app.environment import resolve_device
from rgenima_app.errors import OutputNotWritableError, UsageError
from rgenima_app.imaging.roi_table import N_ROIS, load_roi_table
from rgenima_app.models.bundle import chance_status, model_label, save_bundle, training_summary
from rgenima_app.models.distribution import fit_distribution, missing_fraction, roi_features
from rgenima_app.models.finetune import set_finetune_mode, trainable_parameters
from rgenima_app.models.llm import build_llm
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.prompt import PROMPT_TEMPLATE, target_template
from rgenima_app.progression.training import ProgressionCohort, progression_cohort
from rgenima_app.models.tiny_llm import TinyLLMConfig
from rgenima_app.reports.training import write_training_figure
from rgenima_app.training import data as cohort_data
from rgenima_app.training import distributed
from rgenima_app.training.baselines import train_baseline, train_llm_wholebrain
from rgenima_app.training.budget import available_memory, check_fits, describe, measured_flops_per_second
from rgenima_app.training.classical import NAME as CLASSICAL
from rgenima_app.training.classical import train_classical
from rgenima_app.training.evaluate import evaluate_chance, evaluate_probabilities, predict_items, prediction_table
from rgenima_app.training.settings import TrainSettings
from rgenima_app.training.splits import Fold, make_folds, split_table
from rgenima_app.training.stage1 import load_rit, rit_config, save_weights, stage1_cost, train_stage1
from rgenima_app.training.stage2 import Stage2Item, Stage2Trainer
from rgenima_app.training.token_probe import TokenProbe, probe_tokens
from rgenima_app.training.tokens import rit_tokens
from rgenima_app.workflows import train_progression

log = logging.getLogger("rgenima")


def bundle_names(label: str, folds: int) -> list[str]:
    return [label] if not folds else [f"{label}fold{k + 1}" for k in range(folds)]


def train_group(config: RunConfig, writer: DerivativesWriter, run_id: str) -> None:
    settings = config.training
    label = model_label(settings.name)
    names = bundle_names(label, settings.split.folds)
    if config.genotypes is None:
        raise UsageError("training needs --genotypes (every data configuration reads the SNP text)",
                         hint="give the cohort's PLINK .bed/prefix or VCF")
    if not config.skip_bids_validation:
        validate_bids(config.bids_dir)
    device = resolve_device(config.device)
    if config.deepspeed is not None:
        distributed.init_distributed(device)
    rank = distributed.world()[0] if config.deepspeed is not None else 0
    t1w = collect_t1w(config.bids_dir, config.participant_label, config.session_label,
                      load_bids_filters(config.bids_filter_file))
    participants = read_participants(config.bids_dir, required=True)
    cohort = cohort_data.Cohort(cohort_data.labelled_samples(t1w, participants))
    cohort_data.match_genotypes(config.genetics, participants, cohort)
    _select_samples(cohort, settings)
    progression = None
    if settings.target.kind != "stage":  # the baseline sample of each participant with the target
        t = settings.target
        progression = progression_cohort(config.bids_dir, t.kind, t.horizon_months, t.window_months, cohort)
    # unsplittable labels are refused before any imaging work
    labels = cohort.labels() if progression is None else progression.strata
    if progression is not None and settings.baselines.run:
        log.warning("[baselines] run = %s: the paper's baselines are not adapted to progression targets yet; "
                    "skipped (the classical reference is trained)", ", ".join(settings.baselines.run))
        settings.baselines.run = []
    folds = make_folds(labels, settings.split.test, settings.split.validation, settings.split.folds,
                       settings.split.seed if settings.split.seed else config.seed)
    if settings.data != "gene":
        _stage1_budget(config, settings, cohort, folds, device)
        cohort_data.prepare_imaging(t1w, cohort.samples, settings, freesurfer=config.freesurfer,
                                    work_dir=config.work_dir, roi_size=config.roi_size, device=config.device)
        if "llm_wholebrain" in settings.baselines.run:
            cohort_data.prepare_wholebrain(cohort.samples, settings, config.work_dir, config.device)
    keys = [run_key(config, settings, cohort, fold, progression) for fold in folds]
    finished = _finished_folds(config, names, keys)
    if rank == 0:
        writer.initialize(load_roi_table())
        config.save(config.output_dir / "logs", run_id)
        table = split_table(cohort.table(), folds)
        writer.write_tsv(writer.path(None, desc=label, suffix="split", extension=".tsv"), table, SPLIT_SIDECAR)
        if progression is not None:
            train_progression.write_targets(writer, label, settings, progression)
    log.info("training %s on %d samples of %d participants (%s), %d fold(s), device %s", label,
             len(cohort.samples), len(labels), settings.data, len(folds), device)

    ages = participant_ages(participants)
    results = [finished[fold.index] if fold.index in finished else
               train_fold(config, settings, cohort, fold, names[fold.index], device, rank, ages, progression)
               for fold in folds]
    if rank != 0:  # rank 0 evaluates and writes the outputs
        return
    if progression is not None:
        train_progression.write_outputs(writer, label, settings, results)
        write_training_figure(config.output_dir / "figures" / f"desc-{label}_training.svg",
                              {names[r["fold"]]: r["curves"] for r in results})
        log.info("training finished: %s", ", ".join(str(config.output_dir / "models" / n) for n in names))
        return
    write_evaluation(writer, label, settings, results)

    write_training_figure(config.output_dir / "figures" / f"desc-{label}_training.svg",
                          {names[r["fold"]]: r["curves"] for r in results},
                          chance={names[r["fold"]]: r["chance"][names[r["fold"]]].to_dict() for r in results})
    for r in results:
        status = chance_status({"metrics": {"chance": r["chance"][names[r["fold"]]].to_dict()}})
        (log.info if status["state"] == "beats" else log.warning)("%s: %s", names[r["fold"]], status["message"])
    log.info("training finished: %s", ", ".join(str(config.output_dir / "models" / n) for n in names))


SPLIT_SIDECAR = {
    "Description": "Participant-disjoint split of the training run (all sessions of a participant on one side)",
}  # the columns are described in bids_spec/derivatives.yaml


def participant_ages(participants: pd.DataFrame) -> dict[str, float]:
    """participants.tsv ``age`` by participant label (empty without the column)."""
    if "age" not in participants:
        return {}
    ages = pd.to_numeric(participants["age"], errors="coerce")
    return {str(p): float(a) for p, a in ages.items() if pd.notna(a)}


def training_distribution(samples: list[cohort_data.CohortSample], genotypes: dict[str, pd.DataFrame],
                          settings: TrainSettings, ages: dict[str, float], with_genotypes: bool) -> dict:
    """The distribution of what the model saw in training (``models.distribution``), for its bundle."""
    features = None
    if settings.data != "gene" and all(s.morph is not None for s in samples):
        features = np.vstack([roi_features(s.morph, settings.imaging.normalization) for s in samples])
    missingness = np.array([missing_fraction(genotypes[s.participant]) for s in samples
                            if s.participant in genotypes]) if with_genotypes else None
    distribution = fit_distribution([s.participant for s in samples], features=features,
                                    normalization=settings.imaging.normalization,
                                    missingness=missingness if missingness is not None and len(missingness) else None,
                                    ages=np.array([ages.get(s.participant, np.nan) for s in samples]))
    if "image" in distribution:
        image = distribution["image"]
        log.info("training distribution of %d participants: ROI score threshold %.3g (leave-one-out scores "
                 "median %.3g, max %.3g)", distribution["n_participants"], image["threshold"],
                 image["training_score_median"], image["training_score_max"])
    return distribution


STAGE1_HINT = ("the RiT's patch embedding grows with the cube of the ROI size: use a smaller --roi-size, or lower "
               "[stage1] dim, depth or batch_size in --train-config (docs/training.md), or a device with more memory")
STAGE2_HINT = ("lower [stage2] batch_size (raise gradient_accumulation to keep the effective batch), use "
               "--finetune lora, a smaller --llm, --deepspeed to spread it over GPUs, or a device with more memory")


def _stage1_budget(config: RunConfig, settings: TrainSettings, cohort: cohort_data.Cohort, folds: list[Fold],
                   device: torch.device) -> None:
    """Stage 1's memory and time from the configuration, before any imaging work; refused if it cannot fit."""
    def count(fold: Fold, role: str) -> int:
        members = set(fold.participants(role))
        return sum(s.participant in members for s in cohort.samples)

    largest = max(folds, key=lambda f: count(f, "train"))
    cost = stage1_cost(settings.stage1, config.roi_size, count(largest, "train"), count(largest, "validation"))
    _check_budget(cost, device, config, STAGE1_HINT)


def _check_budget(cost, device: torch.device, config: RunConfig, hint: str, resident: int = 0) -> None:
    available, source = available_memory(device, config.mem_mb)
    log.info("%s", describe(cost, measured_flops_per_second(device), available, source))
    if config.deepspeed is None:  # ZeRO partitions the states over the ranks: the estimate does not apply
        check_fits(cost, available, source, hint, resident)


def _select_samples(cohort: cohort_data.Cohort, settings: TrainSettings) -> None:
    """Keep the samples the data configuration can use; gene-only needs one sample per participant."""
    no_genotypes = sorted({s.name for s in cohort.samples if s.participant not in cohort.genetic_ids})
    if no_genotypes:
        log.warning("%d sample(s) without genotypes are left out of training: %s", len(no_genotypes),
                    ", ".join(no_genotypes[:20]))
    kept = [s for s in cohort.samples if s.participant in cohort.genetic_ids]
    if settings.data == "gene":  # the SNP text is the same for every session
        seen: set[str] = set()
        kept = [s for s in kept if not (s.participant in seen or seen.add(s.participant))]
    cohort.samples = kept


def run_key(config: RunConfig, settings: TrainSettings, cohort: cohort_data.Cohort, fold: Fold,
            progression: ProgressionCohort | None = None) -> str:
    """What the fold's trained state depends on: settings, options, inputs and the split (and a progression
    target's values, which change with the visit tables while the settings stay the same)."""
    parts = {
        "settings": settings.to_dict(), "llm": config.llm, "finetune": config.finetune, "seed": config.seed,
        "roi_size": config.roi_size, "deepspeed": config.deepspeed, "genotypes": str(config.genotypes),
        "genotypes_mtime": Path(config.genotypes).stat().st_mtime_ns,
        "samples": [(s.name, s.diagnosis, str(s.patches)) for s in cohort.samples],
        "roles": sorted(fold.roles.items()), "version": __version__,
    }
    if progression is not None:
        parts["targets"] = sorted(progression.values.items())
    return _digest(parts)


def stage1_key(config: RunConfig, settings: TrainSettings, cohort: cohort_data.Cohort, fold: Fold) -> str:
    """What the fold's stage-1 RiT depends on, and nothing else: runs that differ only in the data
    configuration, stage 2, the LLM or the baselines share one RiT (and its cached tokens)."""
    parts = {
        "stage1": asdict(settings.stage1), "imaging": asdict(settings.imaging), "seed": config.seed,
        "roi_size": config.roi_size, "samples": [(s.name, s.diagnosis, str(s.patches)) for s in cohort.samples],
        "roles": sorted(fold.roles.items()), "version": __version__,
    }
    return _digest(parts)


def _digest(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_model(config: RunConfig, settings: TrainSettings, image_dim: int, n_image_tokens: int,
                device: torch.device, target_initial: float = 0.0) -> RGenIMA:
    """A fresh R-GenIMA (LLM from ``--llm``, connector) in the ``--finetune`` mode, seeded; with a
    progression target, its prompt and its head (starting at ``target_initial``)."""
    torch.manual_seed(config.seed)
    tiny = TinyLLMConfig(**{**asdict(TinyLLMConfig()), **settings.tiny, "seed": config.seed})
    llm, tokenizer, description = build_llm(config.llm, tiny=tiny)
    target = settings.target
    template = PROMPT_TEMPLATE if target.kind == "stage" else target_template(target.kind, target.horizon_months)
    model = RGenIMA(llm, tokenizer, image_dim=image_dim, n_image_tokens=n_image_tokens,
                    connector=settings.stage2.connector, llm_description=description, prompt_template=template)
    set_finetune_mode(model, config.finetune, settings.lora)
    if target.kind != "stage":  # after the fine-tune mode, which sets requires_grad of the other parts
        model.set_target(target.kind, target_initial)
    return model.to(device)


def target_initial(progression: ProgressionCohort | None, train_participants: set[str]) -> float:
    """The head's starting output: the training participants' mean change, or the logit of their converter
    rate (clipped away from 0 and 1)."""
    if progression is None:
        return 0.0
    mean = float(progression.values[sorted(train_participants)].mean())
    if progression.kind == "conversion":
        rate = min(max(mean, 0.01), 0.99)
        return float(np.log(rate / (1 - rate)))
    return mean


def train_fold(config: RunConfig, settings: TrainSettings, cohort: cohort_data.Cohort, fold: Fold,
               bundle_name: str, device: torch.device, rank: int = 0, ages: dict[str, float] | None = None,
               progression: ProgressionCohort | None = None) -> dict | None:
    """Everything of one fold; returns its test predictions, metrics and curves (None on ranks > 0).
    With ``progression``, the model learns that target and the fold ends in ``train_progression.finish_fold``."""
    state_dir = check_write(config.work_dir / "training" / run_key(config, settings, cohort, fold, progression))
    train_p, val_p, test_p = (set(fold.participants(r)) for r in ("train", "validation", "test"))
    log.info("fold %d: %d train, %d validation, %d test participants", fold.index, len(train_p), len(val_p), len(test_p))
    fold_genes = cohort_data.fold_genotypes(config.genetics, settings, cohort, sorted(train_p),
                                            labels=progression.strata if progression is not None else None)
    snp_panel, genotypes = fold_genes.snp_panel, fold_genes.tables
    in_role = lambda role: [s for s in cohort.samples if s.participant in role]  # noqa: E731

    rit, curves, tokens = None, {}, {}
    if settings.data != "gene":
        stage1_dir = check_write(config.work_dir / "training" / f"stage1-{stage1_key(config, settings, cohort, fold)}")
        rit_file = stage1_dir / "rit.safetensors"
        rit_cfg = rit_config(settings.stage1, config.roi_size)
        if rank == 0 and not rit_file.is_file():  # other ranks wait for rank 0's RiT and tokens
            rit, curve = train_stage1(in_role(train_p), in_role(val_p), settings.stage1, config.roi_size,
                                      config.seed, device)
            stage1_dir.mkdir(parents=True, exist_ok=True)
            (stage1_dir / "curve.json").write_text(json.dumps(curve.to_dict()))
            save_weights(rit, rit_file)
            rit_tokens(rit, cohort.samples, config.work_dir / "tokens", device, settings.stage1.batch_size)
        if config.deepspeed is not None:
            distributed.barrier()
        log.info("stage 1: the trained RiT is %s", rit_file)
        rit = load_rit(rit_cfg, rit_file, device)
        curves["stage1"] = json.loads((stage1_dir / "curve.json").read_text())
        tokens = rit_tokens(rit, cohort.samples, config.work_dir / "tokens", device, settings.stage1.batch_size)
    probe = token_probe(in_role(train_p), in_role(test_p), tokens) if tokens else None
    if probe is not None:
        log.info("fold %d: %s", fold.index, probe.summary())

    value = progression.values.get if progression is not None else lambda participant: None
    items = {s.name: Stage2Item(s.name, s.participant, s.diagnosis, genotypes.get(s.participant),
                                tokens.get(s.name), value(s.participant)) for s in cohort.samples}
    pick = lambda role: [items[s.name] for s in in_role(role)]  # noqa: E731
    dim = rit.config.dim if rit is not None else settings.stage1.dim
    n_tokens = rit.config.n_rois if rit is not None else N_ROIS
    initial = target_initial(progression, train_p)
    model = build_model(config, settings, dim, n_tokens, device, initial)
    log.info("stage 2: %s", trainable_parameters(model))
    trainer = Stage2Trainer(model, settings.stage2, data=settings.data, fmt=settings.genetics.snp_text_format,
                            seed=config.seed, device=device, checkpoint_dir=state_dir / "stage2" / "checkpoint",
                            deepspeed_config=deepspeed_config(config, settings))
    _check_budget(trainer.cost(pick(train_p), pick(val_p)), device, config, STAGE2_HINT,
                  resident=4 * sum(p.numel() for p in model.parameters()))
    curves["stage2"] = trainer.fit(pick(train_p), pick(val_p)).to_dict()
    if trainer.engine is not None:  # gather the ZeRO-partitioned weights into a plain model on rank 0
        state = distributed.gathered_state(model)
        if rank != 0:
            return None
        model = build_model(config, settings, dim, n_tokens, device, initial)
        model.load_state_dict(state)
        model.eval()
    model.image_encoder = rit
    training = training_summary(
        sorted(train_p | val_p), fold=fold.index, run_key=state_dir.name, data=settings.data, n_test=len(test_p),
        split={"test": settings.split.test, "validation": settings.split.validation, "folds": settings.split.folds},
        settings=settings.to_dict(), seed=config.seed, curves=curves,
        qc={"variants_read": int(len(fold_genes.qc_report)), "snps_passing_qc": int(len(fold_genes.qc_panel)),
            "snps_kept": int(len(snp_panel))},
        snp_selection=fold_genes.screening.to_dict() if fold_genes.screening else {"method": "all"},
        token_probe=probe.to_dict(list(load_roi_table().name)) if probe is not None else None)
    bundle = config.output_dir / "models" / bundle_name

    def save(metrics: dict, notes: str, target: dict | None = None) -> None:
        save_bundle(bundle, model, genome_build=config.genome_build, snp_text_format=settings.genetics.snp_text_format,
                    training=training, metrics=metrics, name=bundle_name,
                    snp_panel=None if settings.data == "image" else snp_panel,  # an image-only model reads no SNPs
                    roi_mode=settings.imaging.mode, roi_normalization=settings.imaging.normalization,
                    distribution=training_distribution(in_role(train_p | val_p), genotypes, settings, ages or {},
                                                       with_genotypes=settings.data != "image"),
                    **reference_tokens(in_role(train_p | val_p), tokens),
                    model_card_notes=notes, target=target)

    if progression is not None:
        result = train_progression.finish_fold(
            progression=progression, settings=settings, config=config, fold=fold, bundle_name=bundle_name,
            model=model, items_of=pick, samples_of=in_role, roles={"train": train_p, "validation": val_p,
                                                                   "test": test_p},
            fold_genes=fold_genes, curves=curves, state_dir=state_dir,
            save=lambda metrics, notes: save(metrics, notes, progression.summary()))
        _remove_checkpoints(state_dir)
        return result

    test_items = pick(test_p)
    proba = predict_items(model, test_items, settings.data, settings.genetics.snp_text_format,
                          settings.stage2.eval_batch_size)
    report = evaluate_probabilities(test_items, proba, n_boot=1000, seed=config.seed)
    check = settings.evaluation
    chance = lambda p: evaluate_chance(test_items, p, check.permutations, check.alpha, config.seed)  # noqa: E731
    chances = {bundle_name: chance(proba)}
    predictions = prediction_table(test_items, proba, fold.index, bundle_name)
    metrics = {"test": report.to_dict(), "n_test_samples": len(test_items),
               "confusion": report.confusion.to_dict(orient="index"), "chance": chances[bundle_name].to_dict()}
    classical = train_classical(in_role(train_p), in_role(val_p), in_role(test_p), fold_genes.qc_tables,
                                with_images=settings.data != "gene", with_genes=settings.data != "image",
                                seed=config.seed)
    baselines = [(CLASSICAL, evaluate_probabilities(test_items, classical.proba, n_boot=1000, seed=config.seed))]
    chances[CLASSICAL] = chance(classical.proba)
    predictions = pd.concat([predictions, prediction_table(test_items, classical.proba, fold.index, CLASSICAL)],
                            ignore_index=True)
    log.info("fold %d: classical reference (%s) test accuracy %.3f", fold.index, CLASSICAL,
             baselines[-1][1].value("accuracy"))
    metrics["classical_reference"] = classical.to_dict()
    for name in settings.baselines.run:
        if name != "snp_mlp" and rit is None:
            log.warning("baseline %s needs images; skipped with data = 'gene'", name)
            continue
        if name == "llm_wholebrain":
            if device.type == "cuda":  # R-GenIMA is only saved from here on: the GPU is the baseline LLM's
                model.cpu()
                torch.cuda.empty_cache()
            proba = train_llm_wholebrain(in_role(train_p), in_role(val_p), in_role(test_p), items, settings,
                                         lambda dim, n: build_model(config, settings, dim, n, device), config.seed,
                                         device, state_dir / "baselines" / name)
        else:
            proba = train_baseline(name, pick(train_p), pick(val_p), test_items, settings.baselines,
                                   settings.genetics.snp_text_format, model.tokenizer, config.seed)
        baselines.append((name, evaluate_probabilities(test_items, proba, n_boot=1000, seed=config.seed)))
        chances[name] = chance(proba)
        predictions = pd.concat([predictions, prediction_table(test_items, proba, fold.index, name)], ignore_index=True)
        log.info("fold %d: baseline %s test accuracy %.3f", fold.index, name, baselines[-1][1].value("accuracy"))
    metrics["baselines"] = {name: r.to_dict() for name, r in baselines}
    metrics["baselines_chance"] = {name: chances[name].to_dict() for name, _ in baselines}
    result = {"fold": fold.index, "report": report, "predictions": predictions, "curves": curves,
              "bundle": bundle, "baselines": baselines, "chance": chances}
    save_fold_result(state_dir / "result", result)  # before the bundle: a bundle always has its result
    save(metrics, model_card_notes(settings, report, len(test_items), baselines[0][1], fold_genes.screening,
                                   chances[bundle_name], chances[CLASSICAL], probe))
    log.info("fold %d: test accuracy %.3f (%d samples); bundle %s", fold.index,
             report.table.set_index("metric").loc["accuracy", "value"], len(test_items), bundle)
    _remove_checkpoints(state_dir)
    return result


def _remove_checkpoints(state_dir: Path) -> None:
    """The bundle and the fold's result now hold the results: the resumable checkpoints go."""
    for checkpoint in [state_dir / "stage2" / "checkpoint", *(state_dir / "baselines").glob("*/checkpoint")]:
        shutil.rmtree(checkpoint, ignore_errors=True)


def save_fold_result(directory: Path, result: dict) -> None:
    """A fold's evaluation (reports, test predictions, curves) in the work dir, so that a rerun of a
    finished run rewrites the outputs without training again."""
    directory.mkdir(parents=True, exist_ok=True)
    reports = {name: {"table": r.table.to_dict("list"), "confusion": r.confusion.to_dict("list"), "n": r.n}
               for name, r in [("model", result["report"]), *result["baselines"]]}
    to_tsv(result["predictions"], directory / "testpredictions.tsv")
    (directory / "result.json").write_text(json.dumps(
        {"fold": result["fold"], "reports": reports, "order": [n for n, _ in result["baselines"]],
         "curves": result["curves"], "chance": {n: c.to_dict() for n, c in result["chance"].items()}}, default=str))


def load_fold_result(directory: Path, bundle: Path) -> dict:
    saved = json.loads((directory / "result.json").read_text())

    def report(entry: dict) -> MetricsReport:
        confusion = pd.DataFrame(entry["confusion"], index=pd.Index(list(entry["confusion"]), name="true"))
        return MetricsReport(table=pd.DataFrame(entry["table"]), confusion=confusion, n=entry["n"])

    return {"fold": saved["fold"], "report": report(saved["reports"]["model"]), "bundle": bundle,
            "predictions": read_tsv(directory / "testpredictions.tsv"), "curves": saved["curves"],
            "baselines": [(name, report(saved["reports"][name])) for name in saved["order"]],
            "chance": {name: ChanceCheck(**{k: (float("nan") if v is None else v) for k, v in entry.items()})
                       for name, entry in saved["chance"].items()}}


def _finished_folds(config: RunConfig, names: list[str], keys: list[str]) -> dict[int, dict]:
    """Folds whose bundle this very run (same settings, options, inputs, split) already wrote; any other
    existing bundle of the same name is refused: a trained model is never overwritten."""
    finished, foreign = {}, []
    for index, (name, key) in enumerate(zip(names, keys)):
        bundle = config.output_dir / "models" / name
        if not bundle.exists():
            continue
        result = config.work_dir / "training" / key / "result"
        try:
            recorded = json.loads((bundle / "rgenima.json").read_text())["training"].get("run_key")
        except (OSError, ValueError, KeyError, AttributeError):
            recorded = None
        if recorded == key and (result / "result.json").is_file():
            log.info("%s was trained by this same run (same settings and inputs): kept, not retrained", bundle)
            finished[index] = train_progression.load_result(result, bundle) \
                if train_progression.is_progression_result(result) else load_fold_result(result, bundle)
        else:
            foreign.append(str(bundle))
    if foreign:
        raise OutputNotWritableError(
            f"model bundle(s) {', '.join(foreign)} already exist (trained with other settings or inputs)",
            hint="rgenima never overwrites a trained model: remove it, or set another name in --train-config")
    return finished


def deepspeed_config(config: RunConfig, settings: TrainSettings) -> dict | None:
    if config.deepspeed is None:
        return None
    return distributed.load_deepspeed_config(config.deepspeed, settings.stage2)


def reference_tokens(samples: list[cohort_data.CohortSample], tokens: dict[str, torch.Tensor]) -> dict:
    """``save_bundle``'s ``reference_tokens``: each ROI's mean frozen RiT token over the training samples (the
    participants the model was trained on, as ``training_distribution``), integrated gradients' reference input
    at the participant level (docs/inference.md, "Attribution methods"); none for a model without images."""
    stacked = [tokens[s.name] for s in samples if s.name in tokens]
    if not stacked:
        return {}
    return {"reference_tokens": torch.stack(stacked).float().mean(0), "reference_samples": len(stacked)}


def token_probe(train: list[cohort_data.CohortSample], held_out: list[cohort_data.CohortSample],
                tokens: dict[str, torch.Tensor]) -> TokenProbe | None:
    """The own-ROI probe of the frozen RiT tokens: fitted on the training samples, scored on the test ones."""
    if len(train) < 2 or len(held_out) < 2:
        return None
    stack = lambda samples: (np.stack([tokens[s.name].numpy() for s in samples]),  # noqa: E731
                             np.log1p(np.stack([s.volumes_mm3 for s in samples]).clip(min=0)))
    return probe_tokens(*stack(train), *stack(held_out))


def model_card_notes(settings: TrainSettings, report, n_test: int, reference=None, screening=None,
                     chance: ChanceCheck | None = None, reference_chance: ChanceCheck | None = None,
                     probe: TokenProbe | None = None) -> str:
    """The model card's held-out figures, beside the classical reference's on the same participants."""
    rows = report.table.set_index("metric")
    ref = reference.table.set_index("metric") if reference is not None else None
    lines = [f"Held-out test set: {n_test} samples (participant-disjoint split; no test participant was used for "
             "training, early stopping, QC or SNP selection).", "",
             f"| metric | value | 95% CI | classical reference ({CLASSICAL}) |", "|---|---|---|---|"]
    for metric in ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc"):
        r = rows.loc[metric]
        other = f"{ref.loc[metric, 'value']:.3f}" if ref is not None else "n/a"
        lines.append(f"| {metric} | {r['value']:.3f} | {r['ci_low']:.3f} – {r['ci_high']:.3f} | {other} |")
    if chance is not None:
        ref = reference_chance
        for what, mine, theirs in (
                ("majority-class rate", f"{chance.majority_rate:.3f}", ref and f"{ref.majority_rate:.3f}"),
                (f"permutation p ({chance.statistic})", f"{chance.p_value:.3g}", ref and f"{ref.p_value:.3g}"),
                ("beats chance", "yes" if chance.beats_chance else "NO",
                 ref and ("yes" if ref.beats_chance else "no"))):
            lines.append(f"| {what} | {mine} | — | {theirs or 'n/a'} |")
    g = settings.genetics
    selection = (f"the {g.screen_top} QC'd SNPs most associated with stage in the training participants "
                 f"(ANOVA F; {screening.n_participants} participants)" if screening is not None else "every QC'd SNP")
    lines += ["", f"Data configuration: {settings.data}; SNP text: {g.snp_text_format}; SNP selection: {selection}."]
    s1 = settings.stage1
    supervision = (f"ROI tokens supervised in stage 1 (own-ROI volume loss {s1.roi_volume_loss:g}, pooled stage "
                   f"loss {s1.roi_stage_loss:g})" if s1.roi_volume_loss or s1.roi_stage_loss
                   else "the paper's stage 1: only the CLS state is trained")
    if probe is not None:
        lines += ["", f"{probe.summary()}; {supervision}."]
    return "\n".join(lines)


EVALUATION_SIDECAR = {
    "Description": "Held-out (test-set) metrics of the training run, with participant-bootstrap 95% CIs; "
                   "one row per model (R-GenIMA and any baselines), fold and metric",
}  # the columns are described in bids_spec/derivatives.yaml


def write_evaluation(writer: DerivativesWriter, label: str, settings: TrainSettings, results: list[dict]) -> None:
    rows = []
    for r in results:
        for name, report in [(r["bundle"].name, r["report"]), *r["baselines"]]:
            check = r["chance"][name]
            rows.append(report.table.assign(model=name, fold=r["fold"], data=settings.data,
                                            majority_rate=check.majority_rate, permutation_p=check.p_value,
                                            beats_chance=check.beats_chance))
    table = pd.concat(rows, ignore_index=True)[["model", "data", "fold", "metric", "value", "ci_low", "ci_high",
                                                "majority_rate", "permutation_p", "beats_chance"]]
    if len(results) > 1:
        summary = summarize_folds([r["report"] for r in results])
        checks = [r["chance"][r["bundle"].name] for r in results]
        table = pd.concat([table, pd.DataFrame({
            "model": label, "data": settings.data, "fold": "mean", "metric": summary["metric"],
            "value": summary["mean"], "ci_low": summary["mean"] - summary["sd"],
            "ci_high": summary["mean"] + summary["sd"],
            "majority_rate": sum(c.majority_rate for c in checks) / len(checks), "permutation_p": float("nan"),
            "beats_chance": all(c.beats_chance for c in checks)})], ignore_index=True)
    table["beats_chance"] = table["beats_chance"].map(BIDS_BOOLEAN)
    writer.write_tsv(writer.path(None, desc=label, suffix="evaluation", extension=".tsv"), table, EVALUATION_SIDECAR)
    predictions = pd.concat([r["predictions"] for r in results], ignore_index=True)
    writer.write_tsv(writer.path(None, desc=label, suffix="testpredictions", extension=".tsv"), predictions, {
        "Description": "Class probabilities of the held-out test samples of each fold (training-time evaluation)"})
