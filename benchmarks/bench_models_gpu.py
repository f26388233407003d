"""R-GenIMA step on a Qwen2.5-7B-shaped LLM (random init, bf16, from config only) on one CUDA GPU.

One training step (forward + backward, connector + full LLM) with 109 ROI tokens and a ~1,000-SNP
genome text in the compact and verbose formats; reports tokens per sample, step time and peak GPU
memory. The tokenizer is the tiny byte-level BPE (Qwen's own cannot be downloaded here), so token
counts are those of rgenima's tiny tokenizer. Exits 0 with a message where there is no CUDA.

    PYTHONPATH=. python benchmarks/bench_models_gpu.py [--out bench_models_gpu.json] [--snps 1000]
    PYTHONPATH=. python benchmarks/bench_models_gpu.py --quick [--out /tmp/bench_models_gpu.json]   # CI

``--quick`` runs the same step with 2 of the 28 layers and 40 SNPs (seconds on a GPU) and writes
``$TMPDIR/rgenima-bench-quick/bench_models_gpu.json`` unless ``--out`` is given; without CUDA it also
exits 0 with the message and writes nothing.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def snp_text(n: int, fmt: str, seed: int = 0) -> str:
    rng = random.Random(seed)
    blocks = []
    for g in range(0, n, 10):
        if fmt == "compact":
            body = "".join(str(rng.randint(0, 2)) for _ in range(min(10, n - g)))
        else:
            body = ", ".join(f"rs{rng.randint(1, 10**9)} A/G {rng.randint(0, 2)}" for _ in range(min(10, n - g)))
        blocks.append(f"GENE{g // 10}: {body};")
    return " ".join(blocks)


def run_step(snps: int = 1000, fmts=("compact", "verbose"), rit_dim: int = 768, layers: int | None = None) -> dict:
    import torch

    from rgenima_app.imaging.roi_table import N_ROIS
    from rgenima_app.models.llm import prepare_tokenizer, qwen2_5_7b_config
    from rgenima_app.models.mllm import MLLMSample, RGenIMA
    from rgenima_app.models.tiny_llm import train_tiny_tokenizer
    from transformers import Qwen2ForCausalLM

    device = torch.device("cuda")
    tokenizer = prepare_tokenizer(train_tiny_tokenizer())
    config = qwen2_5_7b_config()
    config._attn_implementation = "sdpa"
    if layers:
        config.num_hidden_layers = layers
    with device:
        llm = Qwen2ForCausalLM(config).to(torch.bfloat16)
    llm.gradient_checkpointing_enable()
    model = RGenIMA(llm, tokenizer, image_dim=rit_dim, llm_description={"kind": "qwen2.5-7b-shaped"})
    model.connector.to(device, torch.bfloat16)
    model.train()
    results = {"params": sum(p.numel() for p in llm.parameters()), "layers": config.num_hidden_layers,
               "device": torch.cuda.get_device_name(), "runs": []}
    for fmt in fmts:
        sample = MLLMSample(snp_text(snps, fmt), torch.randn(N_ROIS, rit_dim), "AD")
        batch = model.encode([sample])
        for i in range(2):  # the first step warms up kernels; report the second
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
            start = time.perf_counter()
            loss = model(batch)
            loss.backward()
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            llm.zero_grad(set_to_none=True)
            model.connector.zero_grad(set_to_none=True)
        results["runs"].append({
            "format": fmt, "snps": snps, "tokens_per_sample": int(batch.input_ids.shape[1]),
            "step_seconds": round(elapsed, 3), "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
            "loss": float(loss), "gradient_checkpointing": True, "dtype": "bfloat16",
        })
    return results


def main() -> int:
    from _common import output_path, provenance  # here: tests/models/test_gpu.py loads this file as a module

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON to write (default bench_models_gpu.json in the current folder)")
    parser.add_argument("--snps", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="2 layers, 40 SNPs, seconds (CI); not the figures")
    args = parser.parse_args()
    path = output_path(args.out, args.quick, "bench_models_gpu.json", Path("bench_models_gpu.json"))
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the Qwen2.5-7B-shaped step needs a GPU; nothing measured")
        return 0
    results = run_step(40, layers=2) if args.quick else run_step(args.snps)
    results["provenance"] = provenance(args.quick)
    print(json.dumps(results, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
