"""The derivatives specification ``bids_spec/derivatives.yaml``: which paths rgenima may write."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

SPEC_PATH = Path(__file__).resolve().parents[1] / "bids_spec" / "derivatives.yaml"


def load_patterns(spec_path: Path = SPEC_PATH) -> list[re.Pattern]:
    """Compiled, anchored path patterns with the ``<sub>``-style placeholders filled in."""
    spec = yaml.safe_load(Path(spec_path).read_text())
    out = []
    for entry in spec["files"]:
        pattern = entry["pattern"]
        for name, regex in spec["labels"].items():
            pattern = pattern.replace(f"<{name}>", regex)
        out.append(re.compile(pattern + r"\Z"))
    return out


def unlisted_files(output_dir: Path, spec_path: Path = SPEC_PATH, skip: tuple[str, ...] = (".work",)) -> list[str]:
    """Files under ``output_dir`` that match no pattern of the specification (work dir excluded)."""
    patterns = load_patterns(spec_path)
    bad = []
    for path in sorted(Path(output_dir).rglob("*")):
        rel = path.relative_to(output_dir).as_posix()
        if path.is_dir() or rel.split("/")[0] in skip:
            continue
        if not any(p.match(rel) for p in patterns):
            bad.append(rel)
    return bad
