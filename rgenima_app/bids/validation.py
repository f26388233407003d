"""BIDS validation of the input dataset with the official validator (bids-validator-deno)."""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

from rgenima_app.errors import InvalidBidsError

log = logging.getLogger("rgenima")
VALIDATOR = "bids-validator-deno"


def validate_bids(bids_dir: Path, timeout: float = 600) -> list[dict]:
    """Validate ``bids_dir``; raise InvalidBidsError (exit 16) listing the errors; return the warnings.

    A missing validator is a warning, not an error: rgenima goes on without validation.
    """
    exe = shutil.which(VALIDATOR)
    if exe is None:
        log.warning("%s is not installed: the input is not validated (pip install bids-validator-deno)", VALIDATOR)
        return []
    try:
        run = subprocess.run([exe, "--format", "json", str(bids_dir)], capture_output=True, text=True, timeout=timeout)
        report = json.loads(run.stdout)
    except subprocess.TimeoutExpired:
        log.warning("BIDS validation of %s took longer than %.0f s and was skipped", bids_dir, timeout)
        return []
    except ValueError:
        log.warning("the BIDS validator gave no readable report (exit %s): %s", run.returncode, run.stderr[-500:])
        return []
    issues = report.get("issues", {}).get("issues", [])
    errors = [i for i in issues if i.get("severity") == "error"]
    warnings = [i for i in issues if i.get("severity") == "warning"]
    if errors:
        lines = [f"{i.get('code')}: {i.get('location') or ''} {i.get('issueMessage') or ''}".strip() for i in errors[:10]]
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise InvalidBidsError(
            f"{bids_dir} fails BIDS validation with {len(errors)} error(s):\n  " + "\n  ".join(lines) + more,
            hint=f"fix the dataset (run '{VALIDATOR} {bids_dir}' for details) or pass --skip-bids-validation",
        )
    if warnings:
        log.info("BIDS validation: %d warning(s), no errors", len(warnings))
    return warnings
