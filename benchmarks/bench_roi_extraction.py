"""Benchmark: rgenima's ROI extraction vs the naive per-label baseline, on one real FreeSurfer subject.

Naive baseline (what per-label scripts do): for each of the 109 labels, a full-volume mask, an
``np.where`` bounding box, the masked crop zoomed to S^3 with ``scipy.ndimage.zoom(order=1)``.
rgenima: ``extract_rois`` (one label lookup + one ``find_objects`` pass, per-box masks, separable
matmul resampling in torch). Both start from the same in-memory volumes (file decoding is timed
separately) and produce the same 109 x S^3 float32 stack; peak memory is the growth of the
process's peak RSS (``ru_maxrss``) during each method, measured in a fresh subprocess per method.

    python benchmarks/bench_roi_extraction.py [--subject DIR] [--size 96] [--repeats 3] [--device auto]
        [--json benchmarks/results/roi_extraction.json]
    python benchmarks/bench_roi_extraction.py --quick [--json /tmp/roi_extraction.json]   # seconds, CI

``--quick`` runs the same comparison (rgenima and the naive baseline, each in its own subprocess) on one
subject of a 4-participant synthetic cohort (``rgenima_app.synthetic``, 48^3 grid) at S = 8 with one
repeat, so it needs no real data, and writes ``$TMPDIR/rgenima-bench-quick/roi_extraction.json`` unless
``--json`` is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import output_path, provenance, quick_dir  # noqa: E402


def default_subject() -> Path:
    shared = Path(os.environ.get("RGENIMA_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "freesurfer" / "fs6" / "sub-01"


def synthetic_subject() -> Path:
    """sub-001 of a 4-participant ``tiny`` synthetic cohort (made once in the quick-run scratch folder)."""
    from rgenima_app.synthetic import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                       generate_cohort)

    cohort = quick_dir() / "roi-cohort"
    subject = cohort / "freesurfer" / "sub-001"
    if not (subject / "mri" / "aparc+aseg.mgz").is_file():
        spec = PRESETS["tiny"]
        generate_cohort(cohort, GeneratorParameters(
            preset="tiny", seed=0, n_participants=4, sessions=1, grid=spec["grid"], voxel_mm=spec["voxel_mm"],
            snps_per_gene=spec["snps_per_gene"], planted_rois=list(DEFAULT_PLANTED_ROIS),
            planted_genes=list(DEFAULT_PLANTED_GENES)), progress=False)
    return subject


def load(subject: Path):
    import nibabel as nib
    import numpy as np

    mri = subject / "mri"
    intensity_path = mri / "T1.mgz" if (mri / "T1.mgz").is_file() else mri / "norm.mgz"
    start = time.perf_counter()
    seg = nib.load(str(mri / "aparc+aseg.mgz"))
    t1 = nib.load(str(intensity_path))
    seg = nib.MGHImage(np.asarray(seg.dataobj), seg.affine, seg.header)
    t1 = nib.MGHImage(np.asarray(t1.dataobj), t1.affine, t1.header)
    return t1, seg, time.perf_counter() - start


def naive(t1, seg, size: int):
    import numpy as np
    import scipy.ndimage as ndi

    from rgenima_app.imaging.roi_table import roi_labels

    labels = np.asarray(seg.dataobj)
    intensity = np.asarray(t1.dataobj).astype(np.float32)
    out = np.zeros((len(roi_labels()), size, size, size), dtype=np.float32)
    for i, label in enumerate(roi_labels()):
        mask = labels == label
        where = np.where(mask)
        if len(where[0]) == 0:
            continue
        box = tuple(slice(w.min(), w.max() + 1) for w in where)
        crop = (intensity * mask)[box]
        out[i] = ndi.zoom(crop, [size / n for n in crop.shape], order=1)
    return out


def measure(method: str, subject: Path, size: int, repeats: int, device: str) -> dict:
    """Run one method in this process; returns times and peak-RSS growth."""
    import numpy as np
    import torch

    from rgenima_app.imaging.rois import extract_rois

    t1, seg, load_s = load(subject)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, buffer, patches = [], None, None
    for _ in range(repeats):
        patches = None  # the previous result is not held while the next is computed
        start = time.perf_counter()
        if method == "naive":
            patches = naive(t1, seg, size)
        elif method == "rgenima":
            patches = extract_rois(t1, seg, roi_size=size, device=device).patches
        elif method == "rgenima_fit":
            patches = extract_rois(t1, seg, roi_size=size, device=device, mode="fit").patches
        else:  # rgenima writing into one reused buffer, as a loop over many subjects does
            buffer = buffer if buffer is not None else np.empty((109, size, size, size), dtype=np.float32)
            patches = extract_rois(t1, seg, roi_size=size, device="cpu", out=buffer).patches
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    return {"method": method, "times_s": times, "best_s": min(times), "median_s": float(np.median(times)),
            "peak_rss_growth_mb": peak_mb, "load_s": load_s, "checksum": float(np.abs(patches).sum()),
            "torch_threads": torch.get_num_threads(),
            "gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subject", type=Path,
                        help="FreeSurfer subject (default ../shared/data/freesurfer/fs6/sub-01)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto for the rgenima method")
    parser.add_argument("--json", type=Path, help="JSON to write (default benchmarks/results/roi_extraction.json)")
    parser.add_argument("--quick", action="store_true", help="synthetic subject, S = 8, one repeat (CI)")
    parser.add_argument("--_one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick and not args._one:
        args.size, args.repeats, args.naive_repeats = 8, 1, 1
        args.subject = args.subject or synthetic_subject()
    args.subject = args.subject or default_subject()
    if args._one:  # child process: one method
        repeats = args.naive_repeats if args._one == "naive" else args.repeats
        print(json.dumps(measure(args._one, args.subject, args.size, repeats, args.device)))
        return
    if not (args.subject / "mri" / "aparc+aseg.mgz").is_file():
        raise SystemExit(f"no FreeSurfer subject at {args.subject} (give --subject or set RGENIMA_SHARED_DATA)")
    results = {}
    methods = ("rgenima", "naive") if args.quick else ("rgenima", "rgenima_fit", "rgenima_reused_buffer", "naive")
    for method in methods:
        if method == "rgenima_reused_buffer" and args.device not in ("cpu",):
            continue
        child = subprocess.run([sys.executable, __file__, "--_one", method, "--subject", str(args.subject),
                                "--size", str(args.size), "--repeats", str(args.repeats),
                                "--naive-repeats", str(args.naive_repeats), "--device", args.device],
                               capture_output=True, text=True, check=True)
        results[method] = json.loads(child.stdout.strip().splitlines()[-1])
        r = results[method]
        print(f"{method:>22}: best {r['best_s']:.3f} s, median {r['median_s']:.3f} s over {len(r['times_s'])}; "
              f"peak RSS +{r['peak_rss_growth_mb']:.0f} MB")
    speedup = results["naive"]["best_s"] / results["rgenima"]["best_s"]
    out_json = output_path(args.json, args.quick, "roi_extraction.json",
                           REPO / "benchmarks" / "results" / "roi_extraction.json")
    summary = {"provenance": provenance(args.quick),
        "subject": str(args.subject), "roi_size": args.size, "device": args.device,
        "cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "speedup_best": speedup, "results": results,
        "note": "rgenima patches are white-matter normalised, the naive ones raw; both are 109 x S^3 float32",
    }
    print(f"speed-up (best of each): {speedup:.1f}x")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
