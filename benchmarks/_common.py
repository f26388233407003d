"""Helpers shared by the benchmark scripts: where a run writes its JSON, and what it records about itself.

The scripts are run as ``PYTHONPATH=. python benchmarks/bench_X.py``; this module sits beside them, so
``from _common import ...`` finds it (the script's folder is first on ``sys.path``).
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"


def quick_dir() -> Path:
    """Scratch folder of ``--quick`` runs (``$TMPDIR/rgenima-bench-quick``)."""
    path = Path(tempfile.gettempdir()) / "rgenima-bench-quick"
    path.mkdir(parents=True, exist_ok=True)
    return path


def output_path(given: Path | str | None, quick: bool, name: str, full_default: Path | None) -> Path | None:
    """The JSON path of a run.

    A full run writes ``given`` or ``full_default``. A ``--quick`` run never writes into
    ``benchmarks/results/`` (those files are the recorded figures): without a path it writes
    ``$TMPDIR/rgenima-bench-quick/NAME``, and a path inside ``benchmarks/results/`` is refused.
    """
    if not quick:
        return Path(given) if given is not None else full_default
    if given is None:
        return quick_dir() / name
    path = Path(given).resolve()
    if path == RESULTS or RESULTS in path.parents:
        raise SystemExit(f"--quick does not write into {RESULTS} (the recorded results); give another path")
    return path


def provenance(quick: bool = False) -> dict:
    """Date, commit and machine of this run, recorded in each benchmark's JSON (docs/benchmarks.json reads it)."""
    commit = None
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            commit = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            if dirty:
                commit += "+dirty"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"date": datetime.now().isoformat(timespec="seconds"), "commit": commit, "quick": quick,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}}
