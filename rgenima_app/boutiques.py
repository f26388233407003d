"""Export the ``rgenima`` command line as a Boutiques descriptor (schema 0.5).

The descriptor in ``bids_spec/rgenima.boutiques.json`` is generated from the click command itself,
so that it cannot drift from the CLI (a test regenerates it and compares):

    python -m rgenima_app.boutiques > bids_spec/rgenima.boutiques.json
"""
from __future__ import annotations

import json

import click

from rgenima_app import __version__
from rgenima_app.cli import EXIT_CODE_MEANINGS, rgenima

POSITIONAL_DESCRIPTIONS = {
    "bids_dir": "The input BIDS dataset (T1w images, participants.tsv).",
    "output_dir": "Where the BIDS-Derivatives dataset is written (not inside BIDS_DIR).",
    "analysis_level": "participant: FreeSurfer, ROIs, genotypes and (with --model) prediction per participant; "
                      "group: training (--train) or cohort analysis (--model).",
}
FILE_OPTIONS = {"bids_filter_file", "work_dir", "fs_subjects_dir", "fs_license_file", "use_plugin", "genotypes",
                "gene_panel", "model", "train_config"}


def _input(param: click.Parameter) -> dict:
    name = param.name
    entry = {"id": name, "name": name.replace("_", " "), "value-key": f"[{name.upper()}]"}
    if isinstance(param, click.Argument):
        entry.update(description=POSITIONAL_DESCRIPTIONS[name], optional=False,
                     type="File" if name == "bids_dir" else "String")
        if isinstance(param.type, click.Choice):
            entry["value-choices"] = list(param.type.choices)
        return entry
    flag = max(param.opts, key=len) if param.opts else f"--{name}"
    entry.update(description=(param.help or "").strip() or name, optional=True, **{"command-line-flag": flag})
    if param.is_flag or param.count:  # a count option (-v) is given once here
        entry["type"] = "Flag"
    elif isinstance(param.type, (click.IntRange,)) or param.type is click.INT:
        entry.update(type="Number", integer=True)
        if isinstance(param.type, click.IntRange) and param.type.min is not None:
            entry["minimum"] = param.type.min
    elif isinstance(param.type, click.FloatRange) or param.type is click.FLOAT:
        entry.update(type="Number", integer=False)
        for bound in ("min", "max"):
            if getattr(param.type, bound, None) is not None:
                entry["minimum" if bound == "min" else "maximum"] = getattr(param.type, bound)
    elif name in FILE_OPTIONS:
        entry["type"] = "File"
    else:
        entry["type"] = "String"
    if isinstance(param.type, click.Choice):
        entry["value-choices"] = list(param.type.choices)
    if param.multiple:
        entry["list"] = True
    default = param.default  # click marks "no default" with a sentinel object
    if isinstance(default, (str, int, float)) and not isinstance(default, bool) and not param.count:
        entry["default-value"] = default
    return entry


def descriptor() -> dict:
    """The Boutiques descriptor of the current CLI."""
    params = [p for p in rgenima.params if p.name not in ("version", "help")]
    inputs = [_input(p) for p in params]
    command = "rgenima " + " ".join(f"[{p.name.upper()}]" for p in params)
    return {
        "name": "rgenima",
        "tool-version": __version__,
        "schema-version": "0.5",
        "description": "R-GenIMA as a BIDS-App: interpretable multimodal AI of T1w MRI ROIs and SNP genotypes "
                       "for Alzheimer's disease stage (NC, SMC, MCI, AD).",
        "author": "The rgenima developers",
        "command-line": command,
        "container-image": {"type": "docker", "image": f"rgenima:{__version__}", "entrypoint": True,
                            "container-opts": ["--gpus", "all"]},
        "inputs": inputs,
        "output-files": [{"id": "derivatives", "name": "BIDS-Derivatives dataset", "path-template": "[OUTPUT_DIR]",
                          "description": "rgenima's outputs (see bids_spec/derivatives.yaml)"}],
        "error-codes": [{"code": code, "description": text} for code, text in sorted(EXIT_CODE_MEANINGS.items())],
        "suggested-resources": {"cpu-cores": 8, "ram": 32, "walltime-estimate": 86400},
        "tags": {"domain": ["neuroimaging", "genetics", "bids-app", "alzheimers-disease"]},
    }


def main() -> None:
    print(json.dumps(descriptor(), indent=2))


if __name__ == "__main__":
    main()
