"""The Boutiques descriptor is generated from the CLI and stays in step with it."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from rgenima_app.boutiques import descriptor
from rgenima_app.cli import EXIT_CODES, EXIT_CODE_MEANINGS, rgenima

DESCRIPTOR = Path(__file__).resolve().parents[1] / "bids_spec" / "rgenima.boutiques.json"


def test_descriptor_file_matches_the_cli():
    assert json.loads(DESCRIPTOR.read_text()) == json.loads(json.dumps(descriptor())), \
        "regenerate it: python -m rgenima_app.boutiques > bids_spec/rgenima.boutiques.json"


def test_every_option_and_exit_code_is_described():
    described = {i["id"] for i in descriptor()["inputs"]}
    assert described == {p.name for p in rgenima.params} - {"version", "help"}
    assert {e["code"] for e in descriptor()["error-codes"]} == set(EXIT_CODES.values()) == set(EXIT_CODE_MEANINGS)


@pytest.mark.skipif(shutil.which("bosh") is None, reason="boutiques (bosh) is not installed")
def test_descriptor_validates_and_its_command_lines_parse(tmp_path):
    assert subprocess.run(["bosh", "validate", str(DESCRIPTOR)], capture_output=True, text=True).returncode == 0
    invocation = tmp_path / "invocation.json"
    invocation.write_text(json.dumps({
        "bids_dir": "/data", "output_dir": "/out", "analysis_level": "participant",
        "participant_label": ["01", "sub-02"], "skip_bids_validation": True, "roi_size": 32, "verbose": True,
        "genotypes": "/geno/cohort.bed"}))
    simulated = subprocess.run(["bosh", "exec", "simulate", "-i", str(invocation), str(DESCRIPTOR)],
                               capture_output=True, text=True)
    assert simulated.returncode == 0, simulated.stderr
    line = next(x for x in simulated.stdout.splitlines() if x.startswith("rgenima "))
    context = rgenima.make_context("rgenima", shlex.split(line)[1:], resilient_parsing=True)
    assert context.params["participant_label"] == ("01", "sub-02")
    assert context.params["roi_size"] == 32 and context.params["verbose"] == 1
    assert context.params["genotypes"] == Path("/geno/cohort.bed")
