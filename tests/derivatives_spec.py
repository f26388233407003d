"""The derivatives specification ``bids_spec/derivatives.yaml``: which paths rgenima may write (the patterns
are the app's own, ``rgenima_app.bids.spec.load_spec``)."""
from __future__ import annotations

from pathlib import Path

from rgenima_app.bids.spec import SPEC_PATH, load_spec


def unlisted_files(output_dir: Path, spec_path: Path = SPEC_PATH, skip: tuple[str, ...] = (".work",)) -> list[str]:
    """Files under ``output_dir`` that match no pattern of the specification (work dir excluded)."""
    spec = load_spec(spec_path)
    bad = []
    for path in sorted(Path(output_dir).rglob("*")):
        rel = path.relative_to(output_dir).as_posix()
        if path.is_dir() or rel.split("/")[0] in skip:
            continue
        if spec.match(rel) is None:
            bad.append(rel)
    return bad
