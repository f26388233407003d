"""Benchmark: the participant level over several participants, ``--nprocs 1`` against ``--nprocs 2``.

The participant level puts recon-all of every sample that needs it into one nipype graph, so MultiProc
runs ``--nprocs`` of them at once within ``--mem`` (recon-all reserves 4 GB each). FreeSurfer is not on
these machines: recon-all is the stand-in of ``rgenima_app.synthetic.recon_all`` (waits ``--seconds``,
then copies the synthetic cohort's finished subject); everything else is the real ``rgenima`` command
(nipype graph and plugin, ROI extraction, derivatives). Each configuration runs in a fresh output folder
of the same cohort, in the same invocation of this script:

- ``nprocs1``: ``--nprocs 1 --mem 16G``   (the baseline: one recon-all after another)
- ``nprocs2``: ``--nprocs 2 --mem 16G``   (two at once)
- ``nprocs2_mem5G``: ``--nprocs 2 --mem 5G`` (the memory budget admits one 4 GB recon-all at a time)

Recorded: wall time of the whole command and of the recon-all stage (first start to last end, from the
stand-in's log), and the most recon-all runs seen at once.

    python benchmarks/bench_participant_parallel.py [--participants 8] [--seconds 10]
        [--json benchmarks/results/participant_parallel.json]
    python benchmarks/bench_participant_parallel.py --quick   # 4 participants, 1 s each
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import RESULTS, output_path, provenance, quick_dir  # noqa: E402

from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS,  # noqa: E402
                                   GeneratorParameters, generate_cohort)
from rgenima_app.synthetic.recon_all import install_recon_all_standin, most_at_once, read_standin_log  # noqa: E402

CONFIGURATIONS = {"nprocs1": ("1", "16G"), "nprocs2": ("2", "16G"), "nprocs2_mem5G": ("2", "5G")}


def cohort(folder: Path, n: int) -> Path:
    if not (folder / "bids" / "participants.tsv").is_file():
        spec = PRESETS["tiny"]
        generate_cohort(folder, GeneratorParameters(
            preset="tiny", seed=0, n_participants=n, sessions=1, grid=spec["grid"], voxel_mm=spec["voxel_mm"],
            snps_per_gene=spec["snps_per_gene"], planted_rois=list(DEFAULT_PLANTED_ROIS),
            planted_genes=list(DEFAULT_PLANTED_GENES)), progress=False)
    return folder


def run_configuration(name: str, data: Path, scratch: Path, seconds: float) -> dict:
    nprocs, mem = CONFIGURATIONS[name]
    root = scratch / name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    log = root / "recon-all-calls.jsonl"
    env = install_recon_all_standin(root / "freesurfer-home", data / "freesurfer", log, seconds=seconds)
    env = {**os.environ, **env, "PATH": f"{env['PATH']}{os.pathsep}{os.environ['PATH']}"}
    (root / "license.txt").write_text("stand-in\n")
    command = [sys.executable, "-m", "rgenima_app", str(data / "bids"), str(root / "out"), "participant",
               "--nprocs", nprocs, "--omp-nthreads", "1", "--mem", mem, "--fs-license-file", str(root / "license.txt"),
               "--skip-bids-validation", "--roi-size", "16"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name}: rgenima failed ({done.returncode}):\n{done.stderr[-3000:]}")
    calls = read_standin_log(log)
    return {"configuration": name, "nprocs": int(nprocs), "mem": mem, "recon_all_runs": len(calls),
            "wall_s": round(wall, 2),
            "recon_all_stage_s": round(max(c["end"] for c in calls) - min(c["start"] for c in calls), 2),
            "most_at_once": most_at_once(calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each stand-in recon-all takes")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="4 participants, 1 s per recon-all")
    args = parser.parse_args()
    if args.quick:
        args.participants, args.seconds = 4, 1.0
    scratch = quick_dir() / "participant-parallel" if args.quick else Path(os.environ.get(
        "RGENIMA_BENCH_DIR", quick_dir().parent / "rgenima-bench")) / "participant-parallel"
    data = cohort(scratch / f"cohort-{args.participants}", args.participants)
    runs = {name: run_configuration(name, data, scratch, args.seconds) for name in CONFIGURATIONS}
    base, two = runs["nprocs1"], runs["nprocs2"]
    result = {
        "benchmark": "participant_parallel", "participants": args.participants,
        "seconds_per_recon_all": args.seconds, "runs": list(runs.values()),
        "recon_all_stage_speedup_nprocs2": round(base["recon_all_stage_s"] / two["recon_all_stage_s"], 3),
        "whole_run_speedup_nprocs2": round(base["wall_s"] / two["wall_s"], 3),
        "provenance": provenance(args.quick),
    }
    path = output_path(args.json, args.quick, "participant_parallel.json", RESULTS / "participant_parallel.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
