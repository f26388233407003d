"""rgenima's own check of its outputs against ``bids_spec/derivatives.yaml`` (docs/outputs.md, "Self-validation").

The BIDS validator checks only the files that have a BIDS convention; the others are named in ``.bidsignore``
(predictions, attention tables and maps, genotype and morphometry tables, group tables). This module checks
every file of OUTPUT_DIR against the specification instead: its path matches a pattern; a TSV has exactly
its declared columns (``optional: true`` ones may be absent), a JSON sidecar, a ``Description`` for each
column, and only declared ``Levels`` values; a JSON has the keys the pattern's ``sidecar`` lists. The same
specification gives the ``DerivativesWriter`` the column entries of each TSV's sidecar (``column_entries``),
so a column is described in one place.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rgenima_app.bids.tsv import read_tsv

#: Packaged link to ``bids_spec/derivatives.yaml`` (so installed wheels carry it).
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "derivatives.yaml"

#: Cells a BIDS TSV may hold where a value is missing; never checked against ``Levels``.
_MISSING = {"n/a", ""}


@dataclass(frozen=True)
class FileSpec:
    pattern: re.Pattern
    description: str
    sidecar: tuple[str, ...] = ()
    columns: dict = field(default_factory=dict)  # name -> BIDS column entry (+ "optional")

    def required_columns(self) -> list[str]:
        return [c for c, e in self.columns.items() if not e.get("optional")]


@dataclass(frozen=True)
class Spec:
    files: tuple[FileSpec, ...]
    opaque: tuple[str, ...]

    def match(self, relative: str) -> FileSpec | None:
        """The first entry whose pattern matches the whole relative path (POSIX)."""
        return next((f for f in self.files if f.pattern.fullmatch(relative)), None)


@functools.lru_cache(maxsize=4)
def load_spec(path: Path | str = SPEC_PATH) -> Spec:
    raw = yaml.safe_load(Path(path).read_text())
    files = []
    for entry in raw["files"]:
        pattern = entry["pattern"]
        for name, regex in raw["labels"].items():
            pattern = pattern.replace(f"<{name}>", regex)
        files.append(FileSpec(re.compile(pattern), entry.get("description", ""), tuple(entry.get("sidecar", ())),
                              dict(entry.get("columns") or {})))
    return Spec(tuple(files), tuple(raw.get("opaque", ())))


def column_entries(relative: str, columns, given: dict | None = None, spec: Spec | None = None) -> dict:
    """The sidecar of the TSV at ``relative`` (path in OUTPUT_DIR) with ``columns``: ``given`` (the writer's
    own keys and column entries win) completed with the specification's entry of every column it lacks."""
    sidecar = dict(given or {})
    entry = (spec or load_spec()).match(relative)
    if entry is None:
        return sidecar
    for column in columns:
        if column not in sidecar and column in entry.columns:
            sidecar[column] = {k: v for k, v in entry.columns[column].items() if k != "optional"}
    return sidecar


@dataclass(frozen=True)
class Problem:
    path: str  # relative to OUTPUT_DIR
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def check_outputs(root: Path | str, subjects: set[str] | None = None, spec: Spec | None = None) -> list[Problem]:
    """Every file of the output dataset at ``root`` checked against the specification; the problems found.

    Hidden files and folders (the work dir, temporary files of atomic writes) are not part of the dataset.
    ``subjects`` (labels without ``sub-``) limits the check of ``sub-*`` folders and reports to those
    participants, so that each job of a participant-level array checks its own outputs only.
    """
    root, spec = Path(root), spec or load_spec()
    problems: list[Problem] = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in path.relative_to(root).parts) and relative != ".bidsignore":
            continue
        if path.is_dir() or not _selected(relative, subjects):
            continue
        entry = spec.match(relative)
        if entry is None:
            problems.append(Problem(relative, "matches no pattern of bids_spec/derivatives.yaml"))
            continue
        if any(relative.startswith(folder) for folder in spec.opaque):
            continue
        if relative.endswith(".tsv"):
            problems += _check_tsv(path, relative, entry)
        elif relative.endswith(".json") and entry.sidecar:
            problems += _check_keys(path, relative, entry)
    return problems


def _selected(relative: str, subjects: set[str] | None) -> bool:
    if subjects is None:
        return True
    first = relative.split("/")[0]
    if first.startswith("sub-"):
        return first.removesuffix(".html") in {f"sub-{s}" for s in subjects}
    return True


def _read_json(path: Path, relative: str) -> tuple[dict | None, list[Problem]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return None, [Problem(relative, f"is not readable JSON ({exc})")]
    if not isinstance(data, dict):
        return None, [Problem(relative, "is not a JSON object")]
    return data, []


def _check_keys(path: Path, relative: str, entry: FileSpec) -> list[Problem]:
    data, problems = _read_json(path, relative)
    if data is None:
        return problems
    missing = [k for k in entry.sidecar if k not in data]
    return [Problem(relative, f"lacks the sidecar key(s) {', '.join(missing)}")] if missing else []


def _check_tsv(path: Path, relative: str, entry: FileSpec) -> list[Problem]:
    if not entry.columns:
        return [Problem(relative, "is a TSV whose pattern declares no columns in bids_spec/derivatives.yaml")]
    try:
        table = read_tsv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        return [Problem(relative, f"is not a readable TSV ({exc})")]
    columns = list(table.columns)
    problems = []
    missing = [c for c in entry.required_columns() if c not in columns]
    if missing:
        problems.append(Problem(relative, f"lacks the column(s) {', '.join(missing)}"))
    undeclared = [c for c in columns if c not in entry.columns]
    if undeclared:
        problems.append(Problem(relative, f"has column(s) not declared in bids_spec/derivatives.yaml: "
                                          f"{', '.join(undeclared)}"))
    for column in columns:
        levels = entry.columns.get(column, {}).get("Levels")
        if levels:
            bad = sorted(set(table[column]) - set(map(str, levels)) - _MISSING)
            if bad:
                problems.append(Problem(relative, f"column {column} has value(s) outside its Levels "
                                                  f"({', '.join(map(str, levels))}): {', '.join(bad[:5])}"))
    sidecar = path.with_name(path.name[:-len(".tsv")] + ".json")
    relative_sidecar = relative[:-len(".tsv")] + ".json"
    if not sidecar.is_file():
        return problems + [Problem(relative, f"has no JSON sidecar ({relative_sidecar})")]
    data, unreadable = _read_json(sidecar, relative_sidecar)
    if data is None:
        return problems + unreadable
    undescribed = [c for c in columns if not (isinstance(data.get(c), dict) and data[c].get("Description"))]
    if undescribed:
        problems.append(Problem(relative_sidecar, f"has no Description of the column(s) {', '.join(undescribed)}"))
    return problems
