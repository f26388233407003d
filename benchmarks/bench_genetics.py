"""Benchmark rgenima's genotype QC against PLINK 1.9, and tokens per participant of the SNP text formats.

    PYTHONPATH=. python benchmarks/bench_genetics.py [--shared ../shared/data] [--json out.json]
    PYTHONPATH=. python benchmarks/bench_genetics.py --quick [--json /tmp/bench_genetics.json]   # seconds, CI

- QC (geno 0.05, maf 0.05, hwe 1e-6, label-free) on the real 379 x 54,051 set and on a 10,000 x 100,000
  ``plink1.9 --dummy`` set made in a temporary directory: best wall time of 3 runs each, PLINK in the
  same run, peak memory (max RSS of a child process running only that QC), and whether the kept sets agree.
- Tokens per participant of the serialized panel genotypes (verbose and compact formats) of the real set,
  with a byte-level BPE trained here on rgenima's prompt texts, and with a real LLM tokenizer when
  ``--llm-tokenizer DIR`` (a local transformers tokenizer directory) is given.

``--quick`` runs the same code with one repeat, a 200 x 2,000 ``--dummy`` set instead of the large one and
the tokens of the first 20 participants; it writes ``$TMPDIR/rgenima-bench-quick/bench_genetics.json``
unless ``--json`` is given (never benchmarks/results/). It still needs the real set in ``--shared``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _common import output_path, provenance  # noqa: E402

QC_SNIPPET = """
import sys, time
from rgenima_app.genetics.qc import run_qc
t = time.perf_counter()
report = run_qc(sys.argv[1], geno=0.05, maf=0.05, hwe=1e-6)
elapsed = time.perf_counter() - t
open(sys.argv[2], "w").write("\\n".join(report.loc[report["kept"], "snp"]))
print(elapsed)
"""


def _child(cmd: list[str]) -> tuple[float, float, str]:
    """Run a child process; (wall seconds, peak RSS MiB of that child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(out.stdout + out.stderr)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: report it only when it grew
    return wall, max(peak, before) / 1024, out.stdout


def bench_qc(name: str, prefix: Path, plink: str | None, work: Path, repeats: int = 3) -> dict:
    ours_file = work / f"{name}.ours.snplist"
    inner, walls, peaks = [], [], []
    for _ in range(repeats):
        wall, peak, stdout = _child([sys.executable, "-c", QC_SNIPPET, str(prefix), str(ours_file)])
        inner.append(float(stdout.strip().splitlines()[-1]))
        walls.append(wall)
        peaks.append(peak)
    result = {"set": name, "rgenima_qc_s": min(inner), "rgenima_process_s": min(walls),
              "rgenima_peak_rss_mib_upper_bound": max(peaks)}
    if plink:
        pwalls = []
        for _ in range(repeats):
            wall, _, _ = _child([plink, "--bfile", str(prefix), "--geno", "0.05", "--maf", "0.05", "--hwe", "1e-6",
                                 "include-nonctrl", "--write-snplist", "--out", str(work / f"{name}.plink")])
            pwalls.append(wall)
        # PLINK's own peak, measured alone with GNU time when present
        if shutil.which("time") or Path("/usr/bin/time").exists():
            out = subprocess.run(["/usr/bin/time", "-f", "%M", plink, "--bfile", str(prefix), "--geno", "0.05",
                                  "--maf", "0.05", "--hwe", "1e-6", "include-nonctrl", "--write-snplist", "--out",
                                  str(work / f"{name}.plink")], capture_output=True, text=True)
            result["plink_peak_rss_mib"] = int(out.stderr.strip().splitlines()[-1]) / 1024
        ours = set(ours_file.read_text().split())
        theirs = set((work / f"{name}.plink.snplist").read_text().split())
        result.update(plink_s=min(pwalls), ratio_qc_vs_plink=min(inner) / min(pwalls),
                      ratio_process_vs_plink=min(walls) / min(pwalls), kept=len(ours), kept_equal_plink=ours == theirs)
    return result


def peak_of_qc_alone(prefix: Path, work: Path) -> float:
    """Peak RSS (MiB) of a fresh process that only runs the QC (GNU time), or -1 without /usr/bin/time."""
    if not Path("/usr/bin/time").exists():
        return -1.0
    out = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", QC_SNIPPET, str(prefix),
                          str(work / "peak.snplist")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def bench_tokens(prefix: Path, llm_tokenizer: str | None, max_participants: int | None = None) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders

    from rgenima_app.genetics.extract import panel_genotypes, select_panel_snps
    from rgenima_app.genetics.panel import load_gene_panel
    from rgenima_app.genetics.readers import open_genotypes
    from rgenima_app.genetics.serialize import serialize_genotypes, tokens_per_participant

    reader = open_genotypes(prefix)
    snp_panel, _ = select_panel_snps(reader, load_gene_panel("GRCh37"))
    samples = reader.samples[:max_participants] if max_participants else reader.samples
    tables = list(panel_genotypes(reader, snp_panel, samples).values())
    corpus = [serialize_genotypes(t, fmt, seed=i) for i, t in enumerate(tables) for fmt in ("verbose", "compact")]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=4000, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    result = {"panel_snps": len(snp_panel), "panel_genes": int(snp_panel["gene"].nunique()),
              "participants": len(tables), "byte_level_bpe_4k": {}}
    for fmt in ("verbose", "compact"):
        result["byte_level_bpe_4k"][fmt] = tokens_per_participant(tables, bpe, fmt)
    try:  # the tiny LLM's tokenizer (rgenima_app.models), where that module is present
        from rgenima_app.models.tiny_llm import train_tiny_tokenizer
    except ImportError:
        train_tiny_tokenizer = None
    if train_tiny_tokenizer is not None:
        tiny = train_tiny_tokenizer()
        result["tiny_llm_tokenizer"] = {fmt: tokens_per_participant(tables, tiny, fmt) for fmt in ("verbose", "compact")}
    if llm_tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(llm_tokenizer, local_files_only=True)
        result["llm_tokenizer"] = {"path": llm_tokenizer}
        for fmt in ("verbose", "compact"):
            result["llm_tokenizer"][fmt] = tokens_per_participant(tables, tok, fmt)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("RGENIMA_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--json", type=Path, help="JSON to write (default benchmarks/results/bench_genetics.json)")
    parser.add_argument("--llm-tokenizer", default=None, help="local transformers tokenizer directory")
    parser.add_argument("--skip-large", action="store_true", help="skip the 10,000 x 100,000 set")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI); not the recorded figures")
    args = parser.parse_args()
    out_json = output_path(args.json, args.quick, "bench_genetics.json",
                           REPO / "benchmarks" / "results" / "bench_genetics.json")
    repeats = 1 if args.quick else 3
    dummy_n, dummy_m = ("200", "2000") if args.quick else ("10000", "100000")
    plink = shutil.which("plink1.9")
    eur = args.shared / "genotypes" / "boltlmm_EUR_subset" / "EUR_subset"
    if not (eur.with_suffix(".bed")).is_file():
        raise SystemExit(f"no genotypes at {eur}.bed (give --shared or set RGENIMA_SHARED_DATA)")
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "plink": plink},
               "provenance": provenance(args.quick), "qc": []}
    with tempfile.TemporaryDirectory(prefix="rgenima-bench-") as tmp:
        work = Path(tmp)
        results["qc"].append(bench_qc("real_379x54051", eur, plink, work, repeats))
        results["qc"][-1]["rgenima_peak_rss_mib"] = peak_of_qc_alone(eur, work)
        if not args.skip_large and plink:
            subprocess.run([plink, "--dummy", dummy_n, dummy_m, "0.02", "--make-bed", "--out", str(work / "dummy")],
                           check=True, capture_output=True)
            results["qc"].append(bench_qc(f"dummy_{dummy_n}x{dummy_m}", work / "dummy", plink, work, repeats))
            results["qc"][-1]["rgenima_peak_rss_mib"] = peak_of_qc_alone(work / "dummy", work)
            results["qc"][-1]["bed_mib"] = (work / "dummy.bed").stat().st_size / 2**20
    results["tokens"] = bench_tokens(eur, args.llm_tokenizer, 20 if args.quick else None)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main()
