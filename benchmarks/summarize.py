"""Write docs/benchmarks.json: every benchmark figure, machine-readable, from benchmarks/results/*.json.

    python benchmarks/summarize.py            # rewrite docs/benchmarks.json
    python benchmarks/summarize.py --check    # exit 1 when docs/benchmarks.json differs from what it would write

Each figure: ``id``, ``section``, ``metric``, ``value``, ``unit``, ``baseline`` (``{name, value, unit}`` or
null), ``ratio`` (value / baseline value; a figure in "x" is its own ratio), ``target`` (the issue-10 target, text),
``met`` (true / false / null when there is no target or nothing was measured), ``command``, ``machine``,
``date``, ``commit``, ``source`` and, where needed, ``note``.

Where the figures come from:

* ``benchmarks/results/*.json``: read here, so the summary cannot drift from them (``tests/
  test_benchmarks_summary.py`` checks that the committed docs/benchmarks.json is what this script writes).
  A results file this script has no reader for is an error. Date and commit: the file's own ``provenance``
  block (written by the benchmark scripts since --quick was added), else ``PROVENANCE`` below (the commit
  that recorded the file), used only while the file's SHA-256 is the one recorded there.
* ``HAND_KEPT``: figures that docs/benchmarks.md states but no results file holds (bench_models.py's run,
  whose JSON was not kept; the stage-1 RiT table; the loaded ROI run; DeepSpeed; profile break-downs), with
  the commit that added them to docs/benchmarks.md. A group tied to a results file is dropped once that file
  exists (``superseded_by``).
* Targets of issue 10 that have no measurement yet appear with ``value`` null and ``met`` null.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
OUT = REPO / "docs" / "benchmarks.json"
DEV_MACHINE = "development machine: 2 shared CPU cores (x86_64, Linux), no GPU, Python 3.11.7"

# Commit that recorded each results file without a provenance block of its own (git log -- FILE),
# valid while the file has this SHA-256.
PROVENANCE = {
    "bench_genetics.json": ("0232e1b1664c1ade0c5f0e5ae985bd6444b2004e", "2026-11-22",
                           "2a8dd1a2126819ff9f7a527d4c1047b8c79ad66fa663b83ac8bb522262eb1e00"),
    "bootstrap.json": ("50e81f3997120ae4b9ffa7505880d29f68bcdb79", "2026-11-22",
                      "2b7042b5eab28bc22ecd25d450b5455cb5e682607f24c98dcbc8fdb8063edced"),
    "planted_attention.json": ("109574c517b615238040f44e8048cf6418c4534b", "2026-11-30",
                              "87b9312cdb3b7f613c779c79695f74b95e3d1915c0377e1f1c3da97576b16382"),
    "planted_attention_NC.json": ("109574c517b615238040f44e8048cf6418c4534b", "2026-11-30",
                                 "48be654d2864ce94c10a4cd30fc9bd699d14fd7c880e86c14a642a72cc84605c"),
    "roi_extraction.json": ("32ef1f4b432600c8c26fed6b372c8553ddd8f50b", "2026-11-22",
                           "2c62cb62b121a3ffa522ed85e7e5a9cf6f0e87c8e70dbdc432a3ebf6e38ab258"),
    "training.json": ("521241029d2aa2f6bc4756a81fb6901a0a9e7905", "2026-12-01",
                     "d65e3ee0bb046d43d9b96d09e693ecd84c879e901884553a637f9094b02cf3c4"),
}

COMMANDS = {
    "participant_parallel.json": "python benchmarks/bench_participant_parallel.py",
    "bench_genetics.json": "PYTHONPATH=. python benchmarks/bench_genetics.py --shared ../shared/data",
    "bootstrap.json": "PYTHONPATH=. python benchmarks/bench_bootstrap.py",
    "roi_extraction.json": "python benchmarks/bench_roi_extraction.py --repeats 7",
    "rollout_cpu.json": ("PYTHONPATH=. python benchmarks/bench_rollout.py --device cpu --head-dim 4 --dtype float32 "
                         "--snps 300 800 --out benchmarks/results/rollout_cpu.json"),
    "planted_attention.json": ("python benchmarks/bench_planted_attention.py COHORT OUT tiny --k 10 --stage AD "
                               "--out benchmarks/results/planted_attention.json (COHORT: python -m "
                               "rgenima_app.synthetic COHORT --preset tiny --seed 11 --n-participants 60; OUT: "
                               "group --train with the tiny LLM, then participant --model on all 60)"),
    "planted_attention_NC.json": ("python benchmarks/bench_planted_attention.py COHORT OUT tiny --k 10 --stage NC "
                                  "--out benchmarks/results/planted_attention_NC.json (same cohort and outputs "
                                  "as planted_attention.json)"),
    "training.json": "python benchmarks/bench_training.py --participants 300 --baselines snp_mlp (ROI mode stretch)",
    "training_fit.json": ("python benchmarks/bench_training.py --participants 300 --baselines snp_mlp --json "
                          "benchmarks/results/training_fit.json"),
    "training_1000.json": ("python benchmarks/bench_training.py --participants 1000 --epochs 6 --baseline-epochs 20 "
                           "--baselines snp_mlp,bert_rit_concat,bert_rit_cross,llm_wholebrain "
                           "--out /tmp/rgenima-bench-1000 --json benchmarks/results/training_1000.json"),
    "training_1000_e15.json": ("python benchmarks/bench_training.py --participants 1000 --epochs 15 --baselines '' "
                               "--out /tmp/rgenima-bench-1000 --json benchmarks/results/training_1000_e15.json"),
    "training_1000_data.json": ("python benchmarks/bench_training.py --participants 1000 --epochs 6 --data gene,mixture "
                                "--baselines '' --out /tmp/rgenima-bench-1000 --json "
                                "benchmarks/results/training_1000_data.json"),
    "token_cache.json": "PYTHONPATH=. python benchmarks/bench_token_cache.py",
    "pretrained_llm.json": "PYTHONPATH=. python benchmarks/bench_pretrained_llm.py --threads 1 --snps 389",
    "pretrained_llm_screen8.json": ("PYTHONPATH=. python benchmarks/bench_pretrained_llm.py --threads 1 --snps 8 "
                                    "--json benchmarks/results/pretrained_llm_screen8.json"),
    "interpretability_1000.json": ("PYTHONPATH=. python benchmarks/bench_interpretability.py --run "
                                   "/tmp/rgenima-bench-1000 --json benchmarks/results/interpretability_1000.json "
                                   "(after the training_1000.json run)"),
    "interpretability_fit.json": ("PYTHONPATH=. python benchmarks/bench_interpretability.py --json "
                                  "benchmarks/results/interpretability_fit.json (after the training_fit.json run)"),
    "interpretability_controls.json": ("PYTHONPATH=. python benchmarks/bench_interpretability.py --run "
                                       "/tmp/rgenima-interp-300 --controls-only --json "
                                       "benchmarks/results/interpretability_controls.json (300-participant cohort of "
                                       "python benchmarks/bench_training.py --participants 300)"),
    "roi_modes.json": ("PYTHONPATH=. python benchmarks/bench_roi_modes.py (after python benchmarks/bench_training.py "
                       "--participants 300 --baselines snp_mlp)"),
    "interpretability.json": ("PYTHONPATH=. python benchmarks/bench_interpretability.py (after python "
                              "benchmarks/bench_training.py --participants 300 --baselines snp_mlp)"),
    "training_gpu.json": "PYTHONPATH=. python benchmarks/bench_training_gpu.py --shape qwen2.5-7b --finetune lora",
    "bench_models.json": "PYTHONPATH=. python benchmarks/bench_models.py --out benchmarks/results/bench_models.json",
    "progression.json": ("PYTHONPATH=. python benchmarks/bench_progression.py --dropout mcar (recorded before "
                         "informative dropout became the generator's default; --dropout mcar draws that cohort)"),
    "interpretability_methods_300.json": ("PYTHONPATH=. python benchmarks/bench_interpretability.py --run "
                                          "/tmp/rgenima-interp-300 --model bench --json "
                                          "benchmarks/results/interpretability_methods_300.json (after "
                                          "bench_training.py --participants 300 --baselines '' --out /tmp/rgenima-interp-300)"),
    "interpretability_methods_300_roisupervised.json": (
        "PYTHONPATH=. python benchmarks/bench_interpretability.py --run /tmp/rgenima-interp-300 --model benchvolstage "
        "--methods rollout,attention_gradient --json benchmarks/results/interpretability_methods_300_roisupervised.json "
        "(after the roi_supervision_300_roivolume_stage.json run)"),
    "science_300_gene_tiny.json": ("PYTHONPATH=. python benchmarks/bench_training.py --participants 300 --data gene "
                                   "--epochs 6 --baselines snp_mlp --out /tmp/rgenima-interp-300 --label-suffix tiny6"),
    "science_300_gene_smollm2.json": ("PYTHONPATH=. python benchmarks/bench_training.py --participants 300 --data gene "
                                      "--epochs 6 --baselines '' --llm smollm2 --finetune lora --lr 1e-3 --out "
                                      "/tmp/rgenima-interp-300 --label-suffix sm6"),
    "roi_supervision_300_paper.json": ("PYTHONPATH=. python benchmarks/bench_training.py --participants 300 "
                                       "--baselines '' --out /tmp/rgenima-interp-300 --label-suffix paper"),
    "roi_supervision_300_roivolume.json": ("PYTHONPATH=. python benchmarks/bench_training.py --participants 300 "
                                           "--baselines '' --out /tmp/rgenima-interp-300 --roi-volume-loss 1 "
                                           "--label-suffix vol"),
    "roi_supervision_300_roivolume_stage.json": ("PYTHONPATH=. python benchmarks/bench_training.py --participants 300 "
                                                 "--baselines '' --out /tmp/rgenima-interp-300 --roi-volume-loss 1 "
                                                 "--roi-stage-loss 1 --label-suffix volstage"),
    "bench_models_gpu.json": ("PYTHONPATH=. python benchmarks/bench_models_gpu.py "
                              "--out benchmarks/results/bench_models_gpu.json"),
}


def _round(x):
    """6 significant digits (floats), recursively; ints, bools, strings and None unchanged."""
    if isinstance(x, float):
        return x if x == 0 or not math.isfinite(x) else float(f"{x:.6g}")
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def figure(id, section, metric, value, unit, *, baseline=None, target=None, met=None, note=None,
           command=None, machine=None, date=None, commit=None, source=None) -> dict:
    """One figure. ``ratio`` is value / baseline value; for a figure that is itself a ratio (unit "x"), the value."""
    ratio = None
    if unit == "x" and _number(value):
        ratio = value
    elif baseline and _number(value) and _number(baseline["value"]) and baseline["value"]:
        ratio = value / baseline["value"]
    entry = {"id": id, "section": section, "metric": metric, "value": value, "unit": unit,
             "baseline": baseline, "ratio": ratio, "target": target, "met": met, "command": command,
             "machine": machine, "date": date, "commit": commit, "source": source}
    if note:
        entry["note"] = note
    return _round(entry)


def base(name, value, unit) -> dict:
    return {"name": name, "value": value, "unit": unit}


class Results:
    """One results file: its data and the fields every figure from it shares."""

    def __init__(self, path: Path):
        self.path, self.name = path, path.name
        self.data = json.loads(path.read_text())
        self.context = {"command": COMMANDS.get(self.name), **self._provenance()}

    def _provenance(self) -> dict:
        own = self.data.get("provenance") if isinstance(self.data, dict) else None
        if own:
            m = own.get("machine", {})
            machine = f"{m.get('cpus')} CPU cores, {m.get('platform')}, Python {m.get('python')}"
            if self.data.get("device") not in (None, "cpu"):
                machine += f", {self.data['device']}"
            return {"machine": machine, "date": own.get("date", "")[:10] or None, "commit": own.get("commit")}
        commit, date, sha = PROVENANCE.get(self.name, (None, None, None))
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if sha is not None and sha != digest:  # the file changed since that commit: do not claim it
            commit, date = None, None
        if isinstance(self.data, dict) and isinstance(self.data.get("date"), str):
            date = self.data["date"][:10]
        return {"machine": DEV_MACHINE, "date": date, "commit": commit}

    def fig(self, id, section, metric, value, unit, pointer, **kw) -> dict:
        return figure(id, section, metric, value, unit, source=f"benchmarks/results/{self.name}: {pointer}",
                      **{**self.context, **kw})


# ----------------------------------------------------------------------------------- readers
def roi_extraction(r: Results) -> list[dict]:
    S = "Imaging: ROI extraction"
    d, res = r.data, r.data["results"]
    naive = res["naive"]
    shape = f"109 ROIs at {d['roi_size']}^3, device {d['device']}"
    out = []
    labels = {"rgenima": "rgenima extract_rois (stretch)", "rgenima_fit": "rgenima extract_rois (fit)",
              "rgenima_reused_buffer": "rgenima extract_rois, reused out= buffer", "naive": "naive per-label baseline"}
    for key, label in labels.items():
        if key not in res:
            continue
        m = res[key]
        kw = {} if key == "naive" else {"baseline": base("naive per-label baseline (best)", naive["best_s"], "s")}
        out.append(r.fig(f"roi_extraction.{key}.best_s", S, f"{label}: best time, {shape}", m["best_s"], "s",
                         f"results.{key}.best_s", **kw))
        out.append(r.fig(f"roi_extraction.{key}.median_s", S, f"{label}: median time over {len(m['times_s'])} run(s)",
                         m["median_s"], "s", f"results.{key}.median_s"))
        out.append(r.fig(f"roi_extraction.{key}.peak_rss_growth", S, f"{label}: peak RSS growth",
                         m["peak_rss_growth_mb"], "MB", f"results.{key}.peak_rss_growth_mb"))
    out.append(r.fig("roi_extraction.speedup_best", S, "speed-up of rgenima over the naive baseline (best vs best)",
                     d["speedup_best"], "x", "speedup_best",
                     baseline=base("naive per-label baseline (best)", naive["best_s"], "s"),
                     target=">= 20x", met=d["speedup_best"] >= 20))
    median = naive["best_s"] / res["rgenima"]["median_s"]
    out.append(r.fig("roi_extraction.speedup_median", S, "speed-up, rgenima median vs the naive baseline",
                     median, "x", "results.naive.best_s / results.rgenima.median_s"))
    out.append(r.fig("roi_extraction.per_subject_time", S, "rgenima time per subject (best, 2 cores)",
                     res["rgenima"]["best_s"], "s", "results.rgenima.best_s", target="<= 1 s per subject on 2 cores",
                     met=res["rgenima"]["best_s"] <= 1.0))
    out.append(r.fig("roi_extraction.mgz_decoding", S, "decoding T1.mgz + aparc+aseg.mgz (not in the times above)",
                     res["rgenima"]["load_s"], "s", "results.rgenima.load_s"))
    return out


def bootstrap(r: Results) -> list[dict]:
    S = "Group analysis (bootstrap stability)"
    sp, rec = r.data["speed"], r.data["recovery"]
    shape = f"{sp['shape'][0]} participants x {sp['shape'][1]} ROIs x {sp['shape'][2]} genes, B = {sp['n_boot']}"
    loop, pair = sp["loop_baseline"], sp["per_pair_vectorised_baseline"]
    out = [
        r.fig("bootstrap.vectorised_s", S, f"rgenima bootstrap stability, all {sp['n_pairs']} pairs ({shape})",
              sp["vectorised_s"], "s", "speed.vectorised_s",
              baseline=base("per-pair, per-iteration loop (extrapolated)", loop["extrapolated_all_pairs_s"], "s"),
              note="docs/benchmarks.md gives 0.8-1.2 s and 160-240x over two runs; this file holds one"),
        r.fig("bootstrap.loop_baseline_s", S, f"per-pair, per-iteration loop (timed on {loop['timed_pairs']} pairs, "
              "extrapolated to all)", loop["extrapolated_all_pairs_s"], "s",
              "speed.loop_baseline.extrapolated_all_pairs_s"),
        r.fig("bootstrap.per_pair_vectorised_s", S, f"per pair, B resamples at once (timed on {pair['timed_pairs']} "
              "pairs, extrapolated)", pair["extrapolated_all_pairs_s"], "s",
              "speed.per_pair_vectorised_baseline.extrapolated_all_pairs_s"),
        r.fig("bootstrap.speedup_vs_loop", S, "speed-up over the per-pair loop", sp["speedup_vs_loop"], "x",
              "speed.speedup_vs_loop", baseline=base("per-pair loop", loop["extrapolated_all_pairs_s"], "s"),
              ),
        r.fig("bootstrap.speedup_vs_per_pair_vectorised", S, "speed-up over the per-pair vectorised version",
              sp["speedup_vs_per_pair_vectorised"], "x", "speed.speedup_vs_per_pair_vectorised",
              baseline=base("per pair, B at once", pair["extrapolated_all_pairs_s"], "s"),
              ),
        r.fig("bootstrap.peak_beyond_input", S,
              f"peak memory of the computation beyond its {sp['input_mib']} MiB input (tracemalloc)",
              sp["vectorised_peak_mib_beyond_input"], "MiB", "speed.vectorised_peak_mib_beyond_input"),
        r.fig("bootstrap.process_max_rss", S, "peak RSS of the whole benchmark process", sp["process_max_rss_mib"],
              "MiB", "speed.process_max_rss_mib"),
    ]
    setting = (f"fabricated attention, 4 groups x {rec['per_group']}, {rec['genes']} genes, top-k {rec['roi_top_k']} "
               f"ROIs, top {rec['gene_top']} genes, B = {rec['n_boot']}")
    for key in [k for k in rec if k.startswith("effect_")] + ["random"]:
        label = "no planted signal" if key == "random" else key.replace("_", " ")
        for stage in ("SMC", "MCI", "AD"):
            out.append(r.fig(f"bootstrap.recovery.{key}.roi_recall_{stage}", S,
                             f"planted {stage} ROIs recovered among the stage-specific ROIs ({label}; {setting})",
                             rec[key][f"roi_recall_{stage}"], "fraction", f"recovery.{key}.roi_recall_{stage}",
                             note=f"{rec[key][f'n_stage_rois_{stage}']} ROIs selected"))
        out.append(r.fig(f"bootstrap.recovery.{key}.gene_recall", S,
                         f"planted genes among the stable genes ({label}; {setting})", rec[key]["gene_recall"],
                         "fraction", f"recovery.{key}.gene_recall",
                         note=f"{rec[key]['n_stable_genes']} stable genes of {rec['genes']}, "
                              f"{rec['planted_genes']} planted"))
    return out


def genetics(r: Results) -> list[dict]:
    S = "Genetics"
    out = []
    for q in r.data["qc"]:
        s = q["set"]
        plink = base("plink1.9 (same filters, same run)", q.get("plink_s"), "s") if "plink_s" in q else None
        out += [
            r.fig(f"genetics.{s}.qc_s", S, f"rgenima QC time, {s} (best of 3)", q["rgenima_qc_s"], "s",
                  f"qc[{s}].rgenima_qc_s", baseline=plink, target="<= 2x plink1.9's time",
                  met=None if plink is None else q["ratio_qc_vs_plink"] <= 2),
            r.fig(f"genetics.{s}.process_s", S, f"rgenima QC whole process (Python start + imports), {s}",
                  q["rgenima_process_s"], "s", f"qc[{s}].rgenima_process_s", baseline=plink,
                  target="<= 2x plink1.9's time",
                  met=None if plink is None else q["ratio_process_vs_plink"] <= 2),
            r.fig(f"genetics.{s}.peak_rss", S, f"rgenima QC peak RSS (fresh process), {s}", q["rgenima_peak_rss_mib"],
                  "MiB", f"qc[{s}].rgenima_peak_rss_mib",
                  baseline=base("plink1.9 peak RSS", q.get("plink_peak_rss_mib"), "MiB") if plink else None),
        ]
        if "kept_equal_plink" in q:
            out.append(r.fig(f"genetics.{s}.kept_equal_plink", S, f"kept variant set equal to plink1.9's, {s}",
                             q["kept_equal_plink"], "bool", f"qc[{s}].kept_equal_plink",
                             note=f"{q['kept']} variants kept"))
    return out + snp_text_tokens(r, r.data["tokens"], "genetics.tokens", S, "tokens")


def snp_text_tokens(r: Results, t: dict, key: str, section: str, path: str) -> list[dict]:
    """Tokens per participant of the verbose and compact SNP texts (bench_genetics.bench_tokens's dict)."""
    out = []
    for tok, label in (("byte_level_bpe_4k", "byte-level BPE (4,000) trained on these texts"),
                       ("tiny_llm_tokenizer", "tiny LLM tokenizer"), ("llm_tokenizer", "LLM tokenizer")):
        if tok not in t:
            continue
        v, c = t[tok]["verbose"]["mean"], t[tok]["compact"]["mean"]
        setting = f"{t['panel_snps']} SNPs in {t['panel_genes']} genes, {t['participants']} participants"
        out.append(r.fig(f"{key}.{tok}.verbose", section, f"tokens per participant, verbose SNP text, {label} "
                         f"({setting})", v, "tokens", f"{path}.{tok}.verbose.mean"))
        out.append(r.fig(f"{key}.{tok}.compact", section, f"tokens per participant, compact SNP text, {label}",
                         c, "tokens", f"{path}.{tok}.compact.mean", baseline=base("verbose text", v, "tokens"),
                         target="<= 1/3 of the verbose text's tokens (at no loss of accuracy)",
                         met=c / v <= 1 / 3, note="token half of the target; the accuracy half is not measured"))
    return out


BASELINE_MODELS = ("snp_mlp", "benchgene", "bert_rit_concat", "bert_rit_cross", "llm_wholebrain")


def training(r: Results) -> list[dict]:
    S = "Training (group --train)"
    d = r.data
    key = r.name.removesuffix(".json")  # training, training_fit: one run each
    mode = f" {d['roi_mode']}" if "roi_mode" in d else ""
    setting = (f"{d['cohort']['participants']}-participant synthetic cohort ({d['cohort']['preset']} geometry), "
               f"{d['n_test']} test participants, ROI {d['roi_size']}^3{mode}, {d['stage2_epochs']} stage-2 epochs")
    bayes = d["bayes_optimal_test_accuracy"]["image_gene"]
    bayes_base = base("Bayes-optimal classifier, same test participants", bayes, "accuracy")
    out = [r.fig(f"{key}.bayes_optimal.{k}", S, f"Bayes-optimal accuracy ({k.replace('_', '-')}), {setting}", v,
                 "accuracy", f"bayes_optimal_test_accuracy.{k}")
           for k, v in d["bayes_optimal_test_accuracy"].items()]
    out.append(r.fig(f"{key}.bayes_optimal.expected", S, "Bayes-optimal accuracy expected over the generator",
                     d["bayes_optimal_accuracy_expected"], "accuracy", "bayes_optimal_accuracy_expected"))
    out.append(r.fig(f"{key}.majority_class", S, "majority-class rate on the test participants",
                     d["chance_majority_class"], "accuracy", "chance_majority_class"))
    names = {"bench": "R-GenIMA, tiny LLM on CPU", "benchmixture": "R-GenIMA, mixture configuration",
             "benchgene": "SNP-only LLM baseline (R-GenIMA, data = gene)", "snp_mlp": "SNP-only MLP baseline",
             "bert_rit_concat": "BERT+RiT (concat) baseline", "bert_rit_cross": "BERT+RiT (cross-attention) baseline",
             "llm_wholebrain": "LLM + whole-brain baseline"}
    # the mixture is R-GenIMA's other training configuration, not a baseline
    baselines = {m: v["accuracy"]["value"] for m, v in d["models"].items() if m not in ("bench", "benchmixture")}
    missing = [names[m] for m in BASELINE_MODELS if m not in baselines]
    for model, metrics in d["models"].items():
        label = names.get(model, model)
        for metric, unit in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"),
                             ("balanced_accuracy", "balanced accuracy"), ("macro_auc", "macro AUC")):
            m = metrics[metric]
            kw = {"note": f"95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f}"}
            if metric == "accuracy" and model == "bench":
                gap = bayes - m["value"]
                kw.update(baseline=bayes_base, target="within 3 points of the Bayes-optimal "
                          "accuracy", met=gap <= 0.03,
                          note=f"95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f}; {100 * gap:.1f} points below "
                               "Bayes-optimal")
            out.append(r.fig(f"{key}.{model}.{metric}", S, f"{label}{f' (ROI{mode})' if mode else ''}: test {unit}",
                             m["value"], unit,
                             f"models.{model}.{metric}.value", **kw))
    if baselines and "bench" in d["models"]:
        best = max(baselines, key=baselines.get)
        acc = d["models"]["bench"]["accuracy"]["value"]
        out.append(r.fig(f"{key}.bench_vs_best_baseline", S, "R-GenIMA test accuracy against the best baseline's",
                         acc, "accuracy", f"models.bench.accuracy vs models.{best}.accuracy",
                         baseline=base(names.get(best, best), baselines[best], "accuracy"),
                         target="above every baseline", met=acc > baselines[best],
                         note=f"not in this run: {', '.join(missing)}" if missing else None))
    out.append(r.fig(f"{key}.wall_seconds", S, "wall time of the whole run (cohort excluded)", d["wall_seconds"], "s",
                     "wall_seconds"))
    if "snp_text_tokens" in d:
        out += snp_text_tokens(r, d["snp_text_tokens"], f"{key}.tokens", S, "snp_text_tokens")
    return out


# runs of bench_training.py on one cohort, split and seed (one --data run each), compared together
CROSS_RUNS = [("training_1000.json", "training_1000_data.json")]


def bench_against_every_baseline(runs: list[Results]) -> list[dict]:
    """R-GenIMA's test accuracy against the best baseline of all the runs on its cohort."""
    shared = [(r.data["cohort"]["participants"], r.data["cohort"]["seed"], r.data["n_test"], r.data["roi_mode"])
              for r in runs]
    if len(set(shared)) != 1:
        raise SystemExit(f"{', '.join(r.name for r in runs)}: not runs on one cohort and split ({shared})")
    models = {m: v["accuracy"]["value"] for r in runs for m, v in r.data["models"].items()}
    home = next(r for r in runs if "bench" in r.data["models"])
    baselines = {m: a for m, a in models.items() if m not in ("bench", "benchmixture")}
    best = max(baselines, key=baselines.get)
    missing = [m for m in BASELINE_MODELS if m not in baselines]
    key = home.name.removesuffix(".json")
    return [home.fig(f"{key}.bench_vs_every_baseline", "Training (group --train)",
                     f"R-GenIMA test accuracy against the best of {len(baselines)} baselines "
                     f"({', '.join(r.name for r in runs)}, same test participants)", models["bench"], "accuracy",
                     "models.bench.accuracy vs every baseline's", baseline=base(best, baselines[best], "accuracy"),
                     target="above every baseline", met=models["bench"] > baselines[best],
                     note=f"not measured: {', '.join(missing)}" if missing else None)]


def rollout(r: Results) -> list[dict]:
    S = "Inference: attention rollout (docs/inference.md)"
    d = r.data
    shape = (f"{d['layers']} layers, {d['heads']} heads ({d['kv_heads']} KV), hidden {d['hidden']}, {d['dtype']}, "
             f"{d['device']}")
    out = []
    for i, run in enumerate(d["runs"]):
        n = run["n"]
        out.append(r.fig(f"rollout.{d['device']}.n{n}.peak", S, f"rollout peak memory, n = {n} tokens ({shape})",
                         run["rollout_peak_bytes"] / 1e6, "MB", f"runs[{i}].rollout_peak_bytes",
                         baseline=base("direct full-matrix method", run["direct_peak_bytes"] / 1e6, "MB")
                         if "direct_peak_bytes" in run else None,
                         target=f"<= 1/H (1/{d['heads']}) of the direct method's memory",
                         met=run["rollout_peak_bytes"] * d["heads"] <= run["direct_peak_bytes"]
                         if "direct_peak_bytes" in run else None,
                         note="the peak holds the lower triangles of the L head-mean maps (about L n^2 / 2 floats) "
                              "plus the forward pass's activations (one block of attention weights, the MLP); "
                              "no per-head weights"))
        if "direct_s" in run:
            out.append(r.fig(f"rollout.{d['device']}.n{n}.time", S, f"rollout time, n = {n} tokens ({shape})",
                             run["rollout_s"], "s", f"runs[{i}].rollout_s",
                             baseline=base("direct full-matrix method", run["direct_s"], "s"),
                             ))
    return out


def planted_attention(r: Results) -> list[dict]:
    S = "Inference: planted signal (docs/inference.md)"
    d = r.data
    out = []
    for subset in ("all", "held_out"):
        if subset not in d:
            continue
        p = d[subset]
        who = f"{d['stage']} participants, {subset.replace('_', ' ')} ({p['n']})"
        out.append(r.fig(f"planted_attention.{d['stage']}.{subset}.rois", S,
                         f"planted ROIs among the top {d['k']} ROI importances, mean over {who}",
                         p["planted_rois_in_top_k_mean"], "ROIs", f"{subset}.planted_rois_in_top_k_mean",
                         baseline=base("chance", p["chance_rois"], "ROIs"),
                         note=f"one-sided binomial p = {p['roi_p_value']:.2g}; tiny model near chance, the same ROI "
                              "ranking for every participant (docs/inference.md)"))
        out.append(r.fig(f"planted_attention.{d['stage']}.{subset}.genes", S,
                         f"planted genes among the top {d['k']} gene importances, mean over {who}",
                         p["planted_genes_in_top_k_mean"], "genes", f"{subset}.planted_genes_in_top_k_mean",
                         baseline=base("chance", p["chance_genes"], "genes"),
                         ))
    return out


def training_gpu(r: Results) -> list[dict]:
    S = "Training (group --train)"
    d = r.data
    setting = f"{d['shape']} shape, {d['finetune']}, batch {d['batch_size']}, {d['tokens_per_sample']} tokens/sample"
    lora7b = d["shape"] == "qwen2.5-7b" and d["finetune"] == "lora"
    return [
        r.fig(f"training_gpu.{d['shape']}.{d['finetune']}.samples_per_s", S, f"stage-2 samples/s ({setting})",
              d["samples_per_s"], "samples/s", "samples_per_s",
              baseline=base("paper: 48 h on 8xA100, 3 x 50,000 samples, per GPU", 0.11, "samples/s"),
              target=">= 2 samples/s on one H200 with LoRA" if lora7b else None,
              met=d["samples_per_s"] >= 2 if lora7b else None, machine=d["device"]),
        r.fig(f"training_gpu.{d['shape']}.{d['finetune']}.tokens_per_s", S, f"stage-2 tokens/s ({setting})",
              d["tokens_per_s"], "tokens/s", "tokens_per_s", machine=d["device"]),
        r.fig(f"training_gpu.{d['shape']}.{d['finetune']}.mfu", S, f"model-FLOPs utilisation ({setting})", d["mfu"],
              "fraction", "mfu", machine=d["device"]),
        r.fig(f"training_gpu.{d['shape']}.{d['finetune']}.peak_memory", S, f"peak GPU memory ({setting})",
              d["peak_memory_gib"], "GiB", "peak_memory_gib", machine=d["device"]),
    ]


def models_gpu(r: Results) -> list[dict]:
    S = "Models"
    out = []
    for i, run in enumerate(r.data["runs"]):
        what = f"Qwen2.5-7B-shaped step ({r.data.get('layers', 28)} layers, bf16), {run['format']} text"
        out += [r.fig(f"models_gpu.{run['format']}.step_s", S, f"{what}: step time", run["step_seconds"], "s",
                      f"runs[{i}].step_seconds"),
                r.fig(f"models_gpu.{run['format']}.peak", S, f"{what}: peak GPU memory", run["peak_memory_gib"], "GiB",
                      f"runs[{i}].peak_memory_gib"),
                r.fig(f"models_gpu.{run['format']}.tokens", S, f"{what}: tokens per sample", run["tokens_per_sample"],
                      "tokens", f"runs[{i}].tokens_per_sample")]
    return out


def models(r: Results) -> list[dict]:
    S = "Models"
    d = r.data
    out = [r.fig(f"models.patch_embedding_weights.{k}", S, f"conv patch-embedding weights, {k}", v, "parameters",
                 f"patch_embedding_weights.{k}") for k, v in d["patch_embedding_weights"].items()]
    times = next(v for k, v in d.items() if k.startswith("rit_forward_seconds"))
    out.append(r.fig("models.rit_forward.strided_over_conv", S, "RiT forward, strided / conv time",
                     d["rit_strided_over_conv_time"], "x", "rit_strided_over_conv_time",
                     baseline=base("conv patch embedding", times["conv"], "s"), ))
    runs = {k: v for k, v in d.items() if k.startswith("tiny_") and isinstance(v, dict)}
    for k, v in runs.items():
        out.append(r.fig(f"models.{k}.tokens", S, f"tokens per sample, {k}", v["tokens_per_sample"], "tokens",
                         f"{k}.tokens_per_sample"))
        out.append(r.fig(f"models.{k}.train_step", S, f"train step (fwd+bwd), {k}", v["train_step_seconds"], "s",
                         f"{k}.train_step_seconds"))
    return out


def token_cache(r: Results) -> list[dict]:
    S = "Training (group --train)"
    d = r.data
    st = d["settings"]
    out = []
    for i, run in enumerate(d["runs"]):
        setting = (f"tiny LLM, ROI {run['roi_size']}^3, batch {st['batch']}, {st['prompt_tokens']} prompt tokens, "
                   "CPU")
        rates = run["samples_per_s"]
        out += [
            r.fig(f"token_cache.S{run['roi_size']}.cached.samples_per_s", S,
                  f"stage-2 samples/s with cached RiT tokens ({setting})", rates["cached"], "samples/s",
                  f"runs[{i}].samples_per_s.cached",
                  baseline=base("RiT recomputed every step", rates["recomputed"], "samples/s")),
            r.fig(f"token_cache.S{run['roi_size']}.speedup", S, f"stage-2 speed-up of the RiT token cache ({setting})",
                  run["speedup_cached_over_recomputed"], "x", f"runs[{i}].speedup_cached_over_recomputed"),
        ]
    return out


def interpretability(r: Results) -> list[dict]:
    S = "Group analysis: truth-known interpretability"
    d = r.data
    key = r.name.removesuffix(".json")  # interpretability, interpretability_fit: one model each
    st = d["settings"]
    out = []
    target = {"recall": ">= 0.8", "precision": ">= 0.5"}
    for kind, group, what in (("rois", "AD", f"planted ROIs among the AD stage-specific ROIs (top {st['roi_top_k']})"),
                              ("genes", "all", f"planted genes among the stable genes (top {st['gene_top']})")):
        rollout, random, saliency = (d[k][kind].get(group) for k in ("attention_rollout", "random_attention",
                                                                       "gradient_saliency"))
        if rollout is None:
            continue
        for metric in ("recall", "precision"):
            value = rollout[metric]
            note = f"gradient saliency on the same model: {saliency[metric]}" if saliency else None
            model = d["run"].rsplit("/", 1)[-1]
            out.append(r.fig(f"{key}.{kind}.{group}.{metric}", S, f"{metric} of {what}, attention rollout, "
                             f"{d['participants']} participants, model of {model}", value, metric,
                             f"attention_rollout.{kind}.{group}",
                             baseline=base("random attention (mean)", random[metric]["mean"], metric),
                             target=f"{target[metric]}", met=None if value is None else
                             value >= float(target[metric].split()[-1]), note=note))
    seconds = d.get("seconds", {})
    if "participant_per_participant" in seconds:  # the participant level it ran is rgenima's inference, end to end
        out.append(r.fig(f"{key}.participant_end_to_end", "Inference", "participant --model end to end per "
                         f"participant (tiny model, CPU, FreeSurfer excluded: precomputed subjects, ROI patches from "
                         f"the training run's cache; QC'd SNP text, prediction, attention rollout, outputs; "
                         f"{d['participants']} participants in one process)", seconds["participant_per_participant"], "s",
                         "seconds.participant_per_participant"))
    return out


def interpretability_controls(r: Results) -> list[dict]:
    """The linear positive and label-permuted negative controls under each importance method."""
    S = "Group analysis: truth-known interpretability"
    d = r.data["controls"]
    out = []
    for control in ("positive", "negative"):
        target = "1.0 (the control's importance falls on the planted features)" if control == "positive" else \
            "<= random (about 0.09)"
        for method, result in d[control].items():
            if not isinstance(result, dict) or "rois" not in result:
                continue  # in_sample_accuracy, C, genes
            key = re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")  # "relative + contrast vs NC" -> relative_...
            for kind, group in (("rois", "AD"), ("genes", "all")):
                value = result[kind][group]["recall"]
                out.append(r.fig(f"interpretability_controls.{control}.{key}.{kind}.{group}.recall", S, f"{control} control (linear model, {d['participants']} participants), {method}: "
                                 f"recall of the planted {'ROIs in the AD stage' if kind == 'rois' else 'genes'}",
                                 value, "recall", f"controls.{control}.{method}.{kind}.{group}", target=target,
                                 met=value >= 1.0 if control == "positive" else value <= 0.09))
    return out


def attribution_methods(r: Results) -> list[dict]:
    """Every attribution method through one trained model (issue 20 item 4): planted-ROI recall and precision
    in the AD stage and the ROI deletion/insertion faithfulness score, and whether the app's default attribution
    is the most faithful of those measured."""
    from rgenima_app.inference.methods import DEFAULT_METHOD

    S = "Group analysis: truth-known interpretability"
    d, key = r.data, r.name.removesuffix(".json")
    model = d["run"].rsplit("/", 1)[-1]
    methods = d["attribution_methods"]
    random = methods["random"]
    out = []
    for method, v in methods.items():
        if method == "random":
            continue
        ad = v["default"]["rois"]["AD"]
        for metric, target in (("recall", 0.8), ("precision", 0.5)):
            out.append(r.fig(f"{key}.{method}.rois.AD.{metric}", S, f"{metric} of the planted ROIs among the AD "
                             f"stage-specific ROIs, {method}, {d['participants']} participants, model of {model}",
                             ad[metric], metric, f"attribution_methods.{method}.default.rois.AD.{metric}",
                             baseline=base("random importance (mean)", random["default"]["rois"]["AD"][metric]["mean"],
                                           metric), target=f">= {target}", met=ad[metric] >= target))
        score = v["faithfulness"]["roi"]["score"]
        out.append(r.fig(f"{key}.{method}.faithfulness.roi", S, f"ROI deletion + insertion gain over random "
                         f"orders, {method} ({v['faithfulness']['roi']['participants']} participants)", score,
                         "AUC gain", f"attribution_methods.{method}.faithfulness.roi.score",
                         baseline=base("random importance", random["faithfulness"]["roi"]["score"], "AUC gain")))
    scores = {m: v["faithfulness"]["roi"]["score"] for m, v in methods.items() if m != "random"}
    if DEFAULT_METHOD in scores and len(scores) > 2:
        best = max(scores, key=scores.get)
        out.append(r.fig(f"{key}.default_is_most_faithful", S, f"ROI faithfulness of the default attribution "
                         f"({DEFAULT_METHOD}) against the most faithful measured ({best})", scores[DEFAULT_METHOD],
                         "AUC gain", f"attribution_methods.*.faithfulness.roi.score",
                         baseline=base(best, scores[best], "AUC gain"),
                         target="the default is the most faithful method", met=best == DEFAULT_METHOD))
    return out


def roi_supervision(r: Results) -> list[dict]:
    """A bench_training.py run with or without the stage-1 ROI-token losses: R-GenIMA's held-out accuracy beside
    the classical reference, and the own-ROI probe of the frozen tokens."""
    S = "Training: ROI-token supervision"
    d, key = r.data, r.name.removesuffix(".json")
    label = d["data_configurations"]["image_gene"]
    weights = f"roi_volume_loss {d.get('roi_volume_loss', 0)}, roi_stage_loss {d.get('roi_stage_loss', 0)}"
    acc = {m: v["accuracy"]["value"] for m, v in d["models"].items()}
    out = [r.fig(f"{key}.accuracy", S, f"R-GenIMA test accuracy ({weights}; {d['n_test']} test participants)",
                 acc[label], "accuracy", f"models.{label}.accuracy.value",
                 baseline=base("sparse logistic regression, same participants", acc["sparse_logistic"], "accuracy"))]
    probe = d["runs"]["image_gene"].get("token_probe") or {}
    if "median_own_r2" in probe:
        out.append(r.fig(f"{key}.token_probe", S, f"median held-out R2 of each ROI token's own ROI volume ({weights})",
                         probe["median_own_r2"], "R2", "runs.image_gene.token_probe.median_own_r2",
                         baseline=base("the same probe on another ROI's volume", probe["median_other_r2"], "R2")))
    return out


def roi_modes(r: Results) -> list[dict]:
    S = "Training (group --train)"
    d = r.data
    out = []
    reference = next((v for v in d["variants"] if v["variant"] == "stretch+size"), None)
    for i, v in enumerate(d["variants"]):
        what = f"{v['mode']} ROI resampling, {'with' if v['size_feature'] else 'without'} the ROI size feature"
        kw = {}
        if reference is not None and v is not reference:
            kw["baseline"] = base("stretch with the size feature (rgenima's default)", reference["test_accuracy"],
                                  "accuracy")
        out.append(r.fig(f"roi_modes.{v['variant']}.test_accuracy", S, f"stage-1 RiT test accuracy, {what} "
                         f"(ROI {d['roi_size']}^3, {d['n'].get('test')} test participants)", v["test_accuracy"],
                         "accuracy", f"variants[{i}].test_accuracy", **kw))
        for field, metric, unit in (("best_val_loss", "best validation loss", "loss"),
                                    ("val_accuracy", "validation accuracy", "accuracy"),
                                    ("test_loss", "test loss", "loss")):
            out.append(r.fig(f"roi_modes.{v['variant']}.{field}", S, f"stage-1 RiT {metric}, {what}", v[field], unit,
                             f"variants[{i}].{field}"))
    return out


SCIENCE = "Science core: genotype input, classical reference, pretrained LLM"
PAPER_BASELINES = ("snp_mlp", "bert_rit_concat", "bert_rit_cross", "llm_wholebrain")


def science(r: Results) -> list[dict]:
    """One or more bench_training.py runs of issue 18 on one cohort and split (science_*.json): every model's
    held-out figures beside the Bayes-optimal ceiling and the classical reference, and the issue's targets."""
    d, key = r.data, r.name.removesuffix(".json")
    labels = d["data_configurations"]               # data configuration -> R-GenIMA's model label
    role = {label: f"R-GenIMA ({data})" for data, label in labels.items()}
    bayes = d["bayes_optimal_test_accuracy"]
    out = [r.fig(f"{key}.bayes_optimal.{k}", SCIENCE, f"Bayes-optimal accuracy ({k.replace('_', '-')}), same test "
                 "participants", v, "accuracy", f"bayes_optimal_test_accuracy.{k}") for k, v in bayes.items()]
    out.append(r.fig(f"{key}.majority_class", SCIENCE, "majority-class rate on the test participants",
                     d["chance_majority_class"], "accuracy", "chance_majority_class"))
    setting = f"{d['cohort']['participants']} participants, {d['n_test']} test, {d.get('llm', 'tiny')} LLM, " \
              f"screen_top {d.get('screen_top', 'n/a')}, {d['stage2_epochs']} stage-2 epochs"
    for model, metrics in d["models"].items():
        for metric in ("accuracy", "macro_f1", "balanced_accuracy"):
            m = metrics[metric]
            out.append(r.fig(f"{key}.{model}.{metric}", SCIENCE, f"{role.get(model, model)}: test "
                             f"{metric.replace('_', ' ')} ({setting})", m["value"], metric,
                             f"models.{model}.{metric}.value", note=f"95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f}"))
    acc = {m: v["accuracy"]["value"] for m, v in d["models"].items()}
    for data, label in labels.items():
        if label not in acc:
            continue
        # each run's own classical reference, on its own inputs (bench_training.reference_name)
        # (mixture reads the same inputs as image_gene)
        reference = acc.get(f"sparse_logistic_{data}") if data in ("gene", "image") else \
            acc.get(f"sparse_logistic_{data}", acc.get("sparse_logistic"))
        if data in ("gene", "image") and reference is not None:
            out.append(r.fig(f"{key}.{label}.vs_classical", SCIENCE, f"R-GenIMA ({data}) against the classical "
                             f"reference on the same inputs", acc[label], "accuracy",
                             f"models.{label} vs models.sparse_logistic_{data}",
                             baseline=base(f"sparse logistic regression ({data}), same participants", reference,
                                           "accuracy"),
                             target=">= classical reference - 2 points", met=acc[label] >= reference - 0.02))
        if data == "gene":
            out.append(r.fig(f"{key}.{label}.snp_only_target", SCIENCE, "SNP-only LLM (R-GenIMA, data = gene): test "
                             "accuracy", acc[label], "accuracy", f"models.{label}.accuracy.value",
                             baseline=base("Bayes-optimal, genotypes only", bayes["gene_only"], "accuracy"),
                             target=">= 0.55", met=acc[label] >= 0.55))
            continue
        if data == "image" or reference is None:
            continue
        out.append(r.fig(f"{key}.{label}.vs_classical", SCIENCE, f"R-GenIMA ({data}) against the classical reference",
                         acc[label], "accuracy", f"models.{label} vs models.sparse_logistic",
                         baseline=base("sparse logistic regression, same participants", reference, "accuracy"),
                         target=">= classical reference - 2 points", met=acc[label] >= reference - 0.02))
        out.append(r.fig(f"{key}.{label}.vs_bayes", SCIENCE, f"R-GenIMA ({data}) against the Bayes-optimal accuracy",
                         acc[label], "accuracy", f"models.{label}.accuracy.value",
                         baseline=base("Bayes-optimal classifier", bayes["image_gene"], "accuracy"),
                         target="within 5 points of Bayes-optimal", met=bayes["image_gene"] - acc[label] <= 0.05))
        paper = {m: acc[m] for m in PAPER_BASELINES if m in acc}
        if paper:
            best = max(paper, key=paper.get)
            out.append(r.fig(f"{key}.{label}.vs_paper_baselines", SCIENCE, f"R-GenIMA ({data}) against the best paper "
                             f"baseline measured ({', '.join(paper)})", acc[label], "accuracy",
                             f"models.{label} vs models.{best}", baseline=base(best, paper[best], "accuracy"),
                             target="above every paper baseline", met=acc[label] > paper[best],
                             note=f"not in this run: {', '.join(m for m in PAPER_BASELINES if m not in paper)}"
                             if len(paper) < len(PAPER_BASELINES) else None))
    if "snp_mlp" in acc:
        out.append(r.fig(f"{key}.snp_mlp.snp_only_target", SCIENCE, "SNP-only MLP: test accuracy", acc["snp_mlp"],
                         "accuracy", "models.snp_mlp.accuracy.value",
                         baseline=base("Bayes-optimal, genotypes only", bayes["gene_only"], "accuracy"),
                         target=">= 0.55", met=acc["snp_mlp"] >= 0.55))
    if {"image_gene", "image"} <= set(labels) and {labels["image_gene"], labels["image"]} <= set(acc):
        gain = acc[labels["image_gene"]] - acc[labels["image"]]
        out.append(r.fig(f"{key}.genetic_gain", SCIENCE, "R-GenIMA: image-gene minus image-only test accuracy", gain,
                         "accuracy points", f"models.{labels['image_gene']} - models.{labels['image']}",
                         target=">= 0.04", met=gain >= 0.04))
    out.append(r.fig(f"{key}.wall_seconds", SCIENCE, f"wall time of the runs ({', '.join(labels)})",
                     d["wall_seconds"], "s", "wall_seconds"))
    return out


def screening(r: Results) -> list[dict]:
    d = r.data
    out = [r.fig("screening.bayes_gene_only", SCIENCE, "Bayes-optimal accuracy from genotypes only, screening "
                 "benchmark's test participants", d["bayes_optimal_gene_only_test_accuracy"], "accuracy",
                 "bayes_optimal_gene_only_test_accuracy")]
    for top, row in d["sizes"].items():
        out.append(r.fig(f"screening.{top}.planted", SCIENCE, f"causal SNPs among the screened ({row['n_snps']} SNPs)",
                         row["planted_snps_selected"], "SNPs", f"sizes.{top}.planted_snps_selected",
                         note=f"of {len(d['planted_snps'])} planted"))
        for model in ("snp_mlp", "sparse_logistic"):
            m = row[model]["accuracy"]
            out.append(r.fig(f"screening.{top}.{model}", SCIENCE, f"{model} on the {row['n_snps']} screened SNPs: "
                             "test accuracy", m["value"], "accuracy", f"sizes.{top}.{model}.accuracy.value",
                             note=f"95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f}",
                             **({"target": ">= 0.55", "met": m["value"] >= 0.55} if model == "snp_mlp" else {})))
    return out


def participant_parallel(r: Results) -> list[dict]:
    d, section = r.data, "Participant level in parallel"
    runs = {run["configuration"]: run for run in d["runs"]}
    base_run = base("--nprocs 1 recon-all stage", runs["nprocs1"]["recon_all_stage_s"], "s")
    note = (f"{d['participants']} participants, recon-all stand-in of {d['seconds_per_recon_all']} s each "
            "(rgenima_app/synthetic/recon_all.py); nipype, MultiProc, ROI extraction and outputs real")
    out = [r.fig("participant_parallel.recon_all_stage_speedup", section, "recon-all stage, --nprocs 1 / --nprocs 2",
                 d["recon_all_stage_speedup_nprocs2"], "x", "recon_all_stage_speedup_nprocs2", note=note),
           r.fig("participant_parallel.whole_run_speedup", section, "whole participant-level command, --nprocs 1 / "
                 "--nprocs 2", d["whole_run_speedup_nprocs2"], "x", "whole_run_speedup_nprocs2", note=note)]
    for name, run in runs.items():
        out.append(r.fig(f"participant_parallel.{name}.most_at_once", section,
                         f"most recon-all runs at once, --nprocs {run['nprocs']} --mem {run['mem']}",
                         run["most_at_once"], "runs", f"runs[{name}].most_at_once"))
        out.append(r.fig(f"participant_parallel.{name}.recon_all_stage", section,
                         f"recon-all stage wall time, --nprocs {run['nprocs']} --mem {run['mem']}",
                         run["recon_all_stage_s"], "s", f"runs[{name}].recon_all_stage_s",
                         baseline=base_run if name != "nprocs1" else None))
    return out


def pretrained_llm(r: Results) -> list[dict]:
    """bench_pretrained_llm.py: SmolLM2 conversion, load, stage-2 step times and SNP-text tokens per tokenizer."""
    S = "Pretrained LLM"
    d = r.data
    threads = f"{d['threads']} thread{'s' if d['threads'] > 1 else ''}"
    prefix = r.name.removesuffix(".json")  # pretrained_llm (389 SNPs), pretrained_llm_screen8 (8 SNPs)
    out = [r.fig(f"{prefix}.conversion", S, "SmolLM2 GGUF -> safetensors conversion (once)", d["conversion_seconds"],
                 "s", "conversion_seconds"),
           r.fig(f"{prefix}.load", S, "SmolLM2 load from the converted cache", d["load_seconds"], "s", "load_seconds")]
    for i, row in enumerate(d["steps"]):
        key = f"{prefix}.step.{row['finetune']}.b{row['batch_size']}"
        what = (f"SmolLM2 stage-2 step ({row['finetune']}, batch {row['batch_size']}, {d['snps']} SNPs, "
                f"{row['prompt_tokens']} tokens, {threads})")
        out.append(r.fig(f"{key}.seconds", S, what, row["step_seconds"], "s", f"steps[{i}].step_seconds"))
        hours = row["hours_per_epoch_600"]
        out.append(r.fig(f"{key}.hours_per_epoch_600", S, f"{what}: hours per epoch of 600 participants", hours, "h",
                         f"steps[{i}].hours_per_epoch_600", target="<= 2 h for stage 2 on 600 participants (issue 18)",
                         met=hours <= 2, note=f"{row['samples_per_s']:.3f} samples/s; one epoch (the [stage2] default "
                                              f"is 3); {int(2 // hours)} epoch(s) fit in 2 h"))
    for name, t in d["tokens"].items():
        key = f"{prefix}.tokens.{name}"
        shipped = "merging" not in name  # the others are the pre-issue-18 tiny tokenizer, for comparison
        out += [r.fig(f"{key}.compact", S, f"{name} tokenizer: compact SNP text, {t['snps']} SNPs", t["compact_tokens"],
                      "tokens", f"tokens.{name}.compact_tokens",
                      baseline=base("verbose SNP text", t["verbose_tokens"], "tokens"),
                      note=f"dosage separator {t['dosage_separator']!r}"),
                r.fig(f"{key}.dosage_tokens_per_snp", S, f"{name} tokenizer: share of SNPs whose dosage is a token of its own (compact)",
                      t["share_of_snps_with_own_token"], "fraction", f"tokens.{name}.share_of_snps_with_own_token",
                      **({"target": "1.0 (one token per dosage)", "met": t["share_of_snps_with_own_token"] == 1}
                         if shipped else {}))]
    return out


def progression(r: Results) -> list[dict]:
    """bench_progression.py (issue 24 foundations): ΔCDR-SB RMSE and conversion AUC of the classical references,
    the Bayes-optimal predictions and the trivial references, on the same test participants."""
    S, d = "Progression (issue 24, foundations)", r.data
    setting = (f"{d['cohort']['participants']} participants, {d['cohort']['visits']} visits, horizon "
               f"{d['horizon_months']:g} ± {d['window_months']:g} months, {d['delta_cdr_sb']['n']['test']} test")
    names = {"bayes_optimal": "Bayes-optimal prediction", "sparse_linear": "classical reference (elastic-net)",
             "training_mean": "training mean", "sparse_logistic": "classical reference (sparse logistic)",
             "training_rate": "training converter rate"}
    delta = d["delta_cdr_sb"]["models"]
    bayes_rmse = delta["bayes_optimal"]["rmse"]["value"]
    out = []
    for model, m in delta.items():
        for metric, label in (("rmse", "RMSE"), ("rmse_delta_0_1", "RMSE where 0 < ΔCDR-SB ≤ 1")):
            value = m[metric]
            out.append(r.fig(f"progression.delta.{model}.{metric}", S, f"ΔCDR-SB {label}, {names[model]} ({setting})",
                             value["value"], "CDR-SB points", f"delta_cdr_sb.models.{model}.{metric}.value",
                             baseline=base("Bayes-optimal prediction", delta["bayes_optimal"][metric]["value"],
                                           "CDR-SB points") if model != "bayes_optimal" else None,
                             note=f"95% CI {value['ci_low']:.3f}-{value['ci_high']:.3f}, n = {value['n']}"))
    out.append(r.fig("progression.delta.bayes_optimal.rmse_expected", S, "expected Bayes-optimal ΔCDR-SB RMSE "
                     "(conditional SD, test participants)", d["delta_cdr_sb"]["bayes_optimal_rmse_expected_test"],
                     "CDR-SB points", "delta_cdr_sb.bayes_optimal_rmse_expected_test",
                     note=f"realised on the test participants: {bayes_rmse:.3f}"))
    conversion = d["conversion"]["models"]
    for model, m in conversion.items():
        auc = m["auc"]
        out.append(r.fig(f"progression.conversion.{model}.auc", S, f"MCI-to-AD conversion AUC, {names[model]} "
                         f"({d['conversion']['n']['test']} test MCI, {d['conversion']['converters']['test']} converters)",
                         auc["value"], "AUC", f"conversion.models.{model}.auc.value",
                         baseline=base("Bayes-optimal probability", conversion["bayes_optimal"]["auc"]["value"], "AUC")
                         if model != "bayes_optimal" else None,
                         note=f"95% CI {auc['ci_low']:.3f}-{auc['ci_high']:.3f}"))
    return out + progression_rgenima(r, names)


def progression_rgenima(r: Results, names: dict) -> list[dict]:
    """bench_progression.py --rgenima: R-GenIMA's heads beside the Bayes-optimal prediction, the run's classical
    reference and the trivial one, all on the test participants of R-GenIMA's own run (absent without it)."""
    S, d = "Progression (issue 24, foundations)", r.data
    if "rgenima" not in d:
        return []
    names = {**names, "rgenima": f"R-GenIMA ({d['rgenima']['settings']['llm']} LLM, head)"}
    out = []
    for kind, metric, unit, target in (
            ("progression", "rmse", "CDR-SB points", "within 10% of the Bayes-optimal RMSE and below the classical "
                                                     "reference's (issue 24)"),
            ("conversion", "auc", "AUC", "within 3 points of the Bayes-optimal AUC (issue 24)")):
        run = d["rgenima"][kind]
        what = "ΔCDR-SB RMSE" if kind == "progression" else "MCI-to-AD conversion AUC"
        bayes = run["models"]["bayes_optimal"][metric]["value"]
        for model, m in run["models"].items():
            value = m[metric]
            mine = model == "rgenima"
            out.append(r.fig(f"progression.rgenima.{kind}.{model}.{metric}", S,
                             f"{what}, {names[model]}, on the R-GenIMA run's {run['n']['test']} test participants",
                             value["value"], unit, f"rgenima.{kind}.models.{model}.{metric}.value",
                             baseline=None if model == "bayes_optimal" else base("Bayes-optimal prediction", bayes, unit),
                             target=target if mine else None, met=run["issue_target"]["met"] if mine else None,
                             note=f"95% CI {value['ci_low']:.3f}-{value['ci_high']:.3f}"))
    return out


READERS = [("roi_extraction.json", roi_extraction), ("bootstrap.json", bootstrap), ("bench_genetics.json", genetics),
           ("training.json", training), ("training_fit.json", training), ("training_1000*.json", training), ("training_gpu*.json", training_gpu), ("rollout*.json", rollout),
           ("planted_attention*.json", planted_attention), ("bench_models_gpu*.json", models_gpu),
           ("bench_models.json", models), ("token_cache.json", token_cache),
           ("interpretability.json", interpretability), ("interpretability_fit.json", interpretability),
           ("interpretability_1000.json", interpretability), ("interpretability_controls.json", interpretability_controls),
           ("roi_modes.json", roi_modes), ("science_*.json", science), ("screening.json", screening),
           ("pretrained_llm*.json", pretrained_llm), ("participant_parallel.json", participant_parallel),
           ("progression.json", progression), ("interpretability_methods_*.json", attribution_methods),
           ("roi_supervision_*.json", roi_supervision)]


# ----------------------------------------------------------------------------- hand-kept figures
DOC = "docs/benchmarks.md"
MODELS = dict(command="PYTHONPATH=. python benchmarks/bench_models.py", machine=DEV_MACHINE + ", torch 2.13, 2 threads",
              date="2026-11-22", commit="e14a04fae49888a65791365ff6445d757ce9092d",
              source=f"{DOC}, section Models (hand-kept: bench_models.json of that run was not kept)")
ROI = dict(command="python benchmarks/bench_roi_extraction.py", machine=DEV_MACHINE, date="2026-11-22",
           commit="32ef1f4b432600c8c26fed6b372c8553ddd8f50b",
           source=f"{DOC}, section Imaging: ROI extraction (hand-kept: not in roi_extraction.json)")
GEN = dict(command="PYTHONPATH=. python benchmarks/bench_genetics.py --shared ../shared/data", machine=DEV_MACHINE,
           date="2026-11-22", commit="0232e1b1664c1ade0c5f0e5ae985bd6444b2004e",
           source=f"{DOC}, section Genetics (hand-kept: not in bench_genetics.json)")
STAGE1 = dict(command="stage 1 alone on the training.json split (RiT dim 128, depth 2, 16^3 conv patches, early "
                      "stopping on validation loss); no script of its own", machine=DEV_MACHINE, date="2026-12-01",
              commit="b28f842d42f3afe72f224b7079d7140bc104c672",
              source=f"{DOC}, section Training (hand-kept: no results file)")
TRAIN_DOC = dict(machine=DEV_MACHINE, date="2026-12-01", commit="3fc3b5df52cc8c71fd998c06a75008783d8cc943",
                 source=f"{DOC}, section Training (hand-kept: no results file)")
MB = "Models"

HAND_KEPT = [  # (superseded_by results file or None, [figure(...)])
    ("bench_models.json", [
        figure("models.patch_embedding_weights.S96_D768", MB, "conv patch-embedding weights, S = 96, D = 768",
               679478016, "parameters", note="2.72 GB float32, 1.36 GB bfloat16", **MODELS),
        figure("models.patch_embedding_weights.S64_D768", MB, "conv patch-embedding weights, S = 64, D = 768",
               201327360, "parameters", **MODELS),
        figure("models.patch_embedding_weights.S32_D768", MB, "conv patch-embedding weights, S = 32, D = 768",
               25166592, "parameters", **MODELS),
        figure("models.patch_embedding_weights.S32_D256", MB, "conv patch-embedding weights, S = 32, D = 256",
               8388864, "parameters", **MODELS),
        figure("models.strided_S96_D768.encoder", MB, "strided patch encoder weights, S = 96, D = 768", 21.5e6,
               "parameters", **MODELS),
        figure("models.strided_S96_D768.total", MB, "whole RiT with the strided encoder, S = 96, D = 768, depth 4",
               50.0e6, "parameters", **MODELS),
        figure("models.rit_conv_S32_D256.total", MB, "conv RiT, S = 32, D = 256, depth 4", 11.6e6, "parameters",
               **MODELS),
        figure("models.rit_strided_S32_D256.total", MB, "strided RiT, S = 32, D = 256, depth 4", 4.3e6, "parameters",
               **MODELS),
        figure("models.rit_forward.conv", MB, "RiT forward, batch 1, S = 32, D = 256, conv embedding (CPU)", 0.059,
               "s", **MODELS),
        figure("models.rit_forward.strided", MB, "RiT forward, batch 1, S = 32, D = 256, strided encoder (CPU)", 0.448,
               "s", baseline=base("conv embedding", 0.059, "s"), **MODELS),
        figure("models.tiny_llm.params", MB, "tiny LLM parameters", 3.43e6, "parameters", **MODELS),
        figure("models.tiny_verbose_1000_snps.tokens", MB, "tokens per sample, 109 ROI tokens + 1,000 SNPs, verbose "
               "text", 10686, "tokens", note="10,504 of them SNP text", **MODELS),
        figure("models.tiny_compact_1000_snps.tokens", MB, "tokens per sample, 109 ROI tokens + 1,000 SNPs, compact "
               "text", 1202, "tokens", baseline=base("verbose text", 10686, "tokens"),
               target="<= 1/3 of the verbose text's tokens (at no loss of accuracy)", met=True,
               note="1,020 of them SNP text; token half of the target, the accuracy half is not measured", **MODELS),
        figure("models.tiny_compact_1000_snps.train_step", MB, "tiny LLM train step (fwd+bwd), compact text", 1.44, "s",
               **MODELS),
        figure("models.tiny_verbose_1000_snps.train_step", MB, "tiny LLM train step (fwd+bwd), verbose text", 29.2, "s",
               baseline=base("compact text", 1.44, "s"), **MODELS),
        figure("models.tiny_compact_1000_snps.scoring", MB, "scoring 4 answers, batch 2, compact text", 1.35, "s",
               **MODELS),
        figure("models.tiny_verbose_1000_snps.scoring", MB, "scoring 4 answers, batch 2, verbose text", 29.5, "s",
               **MODELS),
        figure("models.kv_cache_scoring_speedup", MB, "scoring with the prompt's KV cache reused vs one full forward "
               "per (sample, answer), compact text", 5.4, "x", baseline=base("one forward per (sample, answer)", None,
                                                                             "s"), **MODELS),
    ]),
    ("roi_modes.json", [  # the same stage-1 run as roi_modes.json's stretch+size variant
        figure("training.stage1.size_feature.val_loss", "Training (group --train)", "stage-1 RiT, size feature "
               "standardised per ROI: best validation loss", 0.822, "loss", **STAGE1),
        figure("training.stage1.size_feature.val_accuracy", "Training (group --train)", "stage-1 RiT, size feature: "
               "validation accuracy", 0.652, "accuracy", **STAGE1),
        figure("training.stage1.size_feature.test_loss", "Training (group --train)", "stage-1 RiT, size feature: "
               "test loss", 1.082, "loss", **STAGE1),
        figure("training.stage1.size_feature.test_accuracy", "Training (group --train)", "stage-1 RiT, size feature: "
               "test accuracy (75 test participants)", 0.520, "accuracy",
               baseline=base("Bayes-optimal from ROI volumes", 0.733, "accuracy"), **STAGE1),
    ]),
    ("bench_models_gpu.json", [
        figure("models_gpu.step", MB, "Qwen2.5-7B-shaped step (bf16, random init, gradient checkpointing), 109 ROI "
               "tokens + 1,000 SNPs", None, "s", command="PYTHONPATH=. python benchmarks/bench_models_gpu.py",
               source=f"{DOC}, section Models", note="pending a GPU run: no GPU was lent"),
    ]),
    (None, [
        figure("roi_extraction.loaded_run.rgenima", "Imaging: ROI extraction", "rgenima extract_rois, machine loaded "
               "(load average ~6)", 7.4, "s", baseline=base("naive per-label baseline, same run", 54, "s"),
               note="an earlier run while other jobs kept the load at ~6", **ROI),
        *[figure(f"roi_extraction.profile.{k}", "Imaging: ROI extraction", f"one extract_rois call, idle machine: {m}",
                 v, "s", note="approximate (~)", **ROI)
          for k, m, v in (("label_lookup", "label lookup", 0.06), ("find_objects", "find_objects, all 109 boxes", 0.06),
                          ("masks_stats", "per-box masks and statistics", 0.1), ("allocate", "allocating the output",
                                                                                  0.1),
                          ("resample", "separable matmul resampling", 0.2),
                          ("interpolate_alternative", "F.interpolate(trilinear) per box, resampling alone "
                                                      "(the alternative not used)", 1.1))],
        figure("genetics.tokens.tiny_llm_tokenizer.verbose", "Genetics", "tokens per participant, verbose SNP text, "
               "tiny LLM tokenizer (137 SNPs in 26 genes, 379 participants)", 1363, "tokens", **GEN),
        figure("genetics.tokens.tiny_llm_tokenizer.compact", "Genetics", "tokens per participant, compact SNP text, "
               "tiny LLM tokenizer", 145, "tokens", baseline=base("verbose text", 1363, "tokens"),
               target="<= 1/3 of the verbose text's tokens (at no loss of accuracy)", met=True,
               note="range 139-154; token half of the target, the accuracy half is not measured", **GEN),
        figure("genetics.dummy.count_genotypes", "Genetics", "counting genotypes from the packed bytes, 10,000 x "
               "100,000 set (part of the QC time)", 0.2, "s", note="about; the rest is the exact HWE test and the "
                                                                  "report", **GEN),
        figure("genetics.interpreter_rss", "Genetics", "RSS of the Python interpreter with numpy/pandas/scipy (part "
               "of the QC peak)", 110, "MiB", note="about", **GEN),
        figure("training.stage1.patches_only.val_loss", "Training (group --train)", "stage-1 RiT, no size feature: "
               "best validation loss", 1.363, "loss", note="chance 1.386", **STAGE1),
        figure("training.stage1.patches_only.val_accuracy", "Training (group --train)", "stage-1 RiT, no size feature: "
               "validation accuracy", 0.326, "accuracy", **STAGE1),
        figure("training.stage1.patches_only.test_loss", "Training (group --train)", "stage-1 RiT, no size feature: "
               "test loss", 1.364, "loss", **STAGE1),
        figure("training.stage1.patches_only.test_accuracy", "Training (group --train)", "stage-1 RiT, no size "
               "feature: test accuracy", 0.320, "accuracy", **STAGE1),
        figure("training.stage2.val_loss_first_run", "Training (group --train)", "stage-2 validation loss per answer "
               "token after 6 epochs, first run (before the standardised size feature; from 1.12)", 0.242, "loss",
               command="python benchmarks/bench_training.py --participants 300", **TRAIN_DOC),
        figure("training.stage2.val_loss_rerun", "Training (group --train)", "stage-2 validation loss per answer token "
               "after 6 epochs at lr 5e-4, rerun with the standardised size feature (from 1.12)", 0.230, "loss",
               command="python benchmarks/bench_training.py --participants 300 --baselines snp_mlp",
               **{**TRAIN_DOC, "commit": "1e77c2f59ae10ac556e109df99ace2fdeeede374",
                  "source": f"{DOC}, section Training (hand-kept: the run log, not training.json)"}),
        figure("training.deepspeed.zero3_epoch_losses", "Training (group --train)", "stage-2 epoch losses under "
               "--deepspeed zero3 (one process), 24-participant tiny cohort: equal to the plain loop's to 4 decimals",
               [6.6622, 6.0032], "loss", command="tests/training/test_train_cli.py (DeepSpeed tests)", **TRAIN_DOC),
        figure("training.deepspeed.first_start_compile", "Training (group --train)", "first DeepSpeed start on a "
               "machine: compiling its shared-memory communication op (cached afterwards)", 90, "s", note="about",
               **TRAIN_DOC),
    ]),
    ("training_gpu.json", [
        figure("training_gpu.qwen2.5-7b.lora.samples_per_s", "Training (group --train)", "stage-2 samples/s, "
               "Qwen2.5-7B-shaped, LoRA, bf16, compact prompt, one H200", None, "samples/s",
               baseline=base("paper: 48 h on 8xA100, 3 x 50,000 samples, per GPU", 0.11, "samples/s"),
               target=">= 2 samples/s on one H200 with LoRA", command=COMMANDS["training_gpu.json"],
               source=f"{DOC}, section Training", note="not measured: no GPU was lent"),
    ]),
    ("training_1000.json", [  # measured on the 1,000-participant cohort since
        figure("training.bert_rit", "Training (group --train)", "BERT+RiT dagger / double-dagger baselines accuracy",
               None, "accuracy", target="R-GenIMA above every baseline", command="python benchmarks/bench_training.py "
               "--participants 300", note="not measured: the run was stopped after 10 min in the BERT baselines",
               **{**TRAIN_DOC, "commit": "fcd7ec92f61336cf90888c269ab771081dda7cf0"}),
    ]),
    ("interpretability.json", [
        figure("interpretability.recall_precision", "Truth-known interpretability", "recall / precision of the "
               "planted ROIs among the stage-specific ROIs and of the planted genes among the stable genes, trained "
               "model on the synthetic cohort", None, "fraction", target="recall >= 0.8 for both, precision >= 0.5",
               source="issue 10", note="not measured end to end: bootstrap.json holds recovery from fabricated "
                                       "attention, planted_attention*.json per-participant top-k counts"),
        figure("inference.participant_end_to_end", "Inference", "participant inference end to end per participant, "
               "CPU, tiny model (FreeSurfer excluded)", None, "s", source="issue 10", note="not measured"),
    ]),
    ("token_cache.json", [
        figure("training.cached_rit_throughput", "Training (group --train)", "stage-2 throughput with cached RiT "
               "tokens vs recomputing RiT each step", None, "x", source="issue 10", note="not measured"),
    ]),
]


def build() -> dict:
    figures = []
    seen = set()
    for pattern, reader in READERS:
        for path in sorted(RESULTS.glob(pattern)):
            if path.name in seen:
                continue
            seen.add(path.name)
            figures += reader(Results(path))
    unread = sorted(p.name for p in RESULTS.glob("*.json") if p.name not in seen)
    if unread:
        raise SystemExit(f"no reader in benchmarks/summarize.py for {', '.join(unread)}: add one")
    figures += [f for names in CROSS_RUNS if (RESULTS / names[0]).exists()
                for f in bench_against_every_baseline([Results(RESULTS / n) for n in names if (RESULTS / n).exists()])]
    for superseded_by, group in HAND_KEPT:
        if superseded_by is None or not (RESULTS / superseded_by).exists():
            figures += group
    ids = [f["id"] for f in figures]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SystemExit(f"duplicate figure ids: {duplicates}")
    return {
        "generated_by": "benchmarks/summarize.py (from benchmarks/results/*.json and its hand-kept table)",
        "issue": 10,
        "fields": {"met": "true / false against the target; null when there is no target or no measurement",
                   "ratio": "value / baseline value; for figures that are ratios themselves (unit x), the value",
                   "commit": "the commit that recorded the figure (results file or docs/benchmarks.md)",
                   "source": "results file and key, or the document a hand-kept figure is from"},
        "figures": figures,
    }


def render() -> str:
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/benchmarks.json, write nothing")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    text = render()
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'differs from what benchmarks/summarize.py writes'}")
        return 0 if same else 1
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(json.loads(text)['figures'])} figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
