"""docs/benchmarks.json is what benchmarks/summarize.py writes from benchmarks/results/*.json now (so the
machine-readable summary cannot drift from the recorded results), and every figure has the issue-10 fields."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIELDS = {"id", "section", "metric", "value", "unit", "baseline", "ratio", "target", "met", "command", "machine",
          "date", "commit", "source"}


def test_committed_summary_is_what_the_script_writes_now():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "summarize.py"), "--check"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, (done.stdout + done.stderr +
                                  "\nrun `python benchmarks/summarize.py` and commit docs/benchmarks.json")


def test_every_figure_has_the_fields_and_a_consistent_verdict():
    figures = json.loads((REPO / "docs" / "benchmarks.json").read_text())["figures"]
    assert figures
    for f in figures:
        assert FIELDS <= set(f), f["id"]
        assert f["met"] in (True, False, None), f["id"]
        if f["met"] is not None:  # a verdict needs a target and a measurement
            assert f["target"] and f["value"] is not None, f["id"]
        if f["value"] is None:
            assert f["met"] is None, f["id"]
        if f["source"].startswith("benchmarks/results/"):
            assert (REPO / f["source"].split(":")[0]).is_file(), f["id"]
