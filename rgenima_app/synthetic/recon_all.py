"""A stand-in for FreeSurfer's ``recon-all``, for tests and benchmarks on machines without FreeSurfer.

``install_recon_all_standin`` writes an executable ``recon-all`` (and a FreeSurfer home around it) that
takes recon-all's command line as rgenima's nipype node gives it, waits ``seconds`` (standing in for the
hours of a real run), then "finishes" the subject by copying a precomputed FreeSurfer subject of the same
name from ``source`` (e.g. a synthetic cohort's ``freesurfer/``). Each call appends one JSON line to
``log``: the arguments, ``FS_LICENSE`` and its start and end times, so that a test can check which
options reached recon-all and whether runs overlapped. Everything around it (nipype, the plugin, the
scheduling, ROI extraction from the finished subject) is rgenima's real code path.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = '''#!{python}
import json, os, shutil, sys, time
args = sys.argv[1:]
subject, subjects_dir = args[args.index("-subjid") + 1], args[args.index("-sd") + 1]
start = time.time()
time.sleep({seconds!r})
shutil.copytree(os.path.join({source!r}, subject), os.path.join(subjects_dir, subject), dirs_exist_ok=True)
with open({log!r}, "a") as fh:
    fh.write(json.dumps({{"subject": subject, "argv": args, "license": os.environ.get("FS_LICENSE"),
                         "start": start, "end": time.time()}}) + "\\n")
'''


def install_recon_all_standin(home: Path, source: Path, log: Path, seconds: float = 0.0) -> dict[str, str]:
    """Write ``home/bin/recon-all``; returns the environment entries (``PATH`` prefix, ``FREESURFER_HOME``)."""
    home, source, log = Path(home).resolve(), Path(source).resolve(), Path(log).resolve()
    (home / "bin").mkdir(parents=True, exist_ok=True)
    script = home / "bin" / "recon-all"
    script.write_text(SCRIPT.format(python=sys.executable, seconds=float(seconds), source=str(source), log=str(log)))
    script.chmod(0o755)
    return {"PATH": str(home / "bin"), "FREESURFER_HOME": str(home)}


def read_standin_log(log: Path) -> list[dict]:
    """The recorded recon-all calls, in the order they finished."""
    if not Path(log).is_file():
        return []
    return [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]


def most_at_once(calls: list[dict]) -> int:
    """The largest number of recorded recon-all runs that were running at the same moment."""
    events = sorted([(c["start"], 1) for c in calls] + [(c["end"], -1) for c in calls])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak
