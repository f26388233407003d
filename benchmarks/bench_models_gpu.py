"""R-GenIMA step on a Qwen2.5-7B-shaped LLM (random init, bf16, from config only) on one CUDA GPU.

One training step (forward + backward, connector + full LLM) with 109 ROI tokens and a ~1,000-SNP
genome text in the compact and verbose formats; reports tokens per sample, step time and peak GPU
memory. The tokenizer is the tiny byte-level BPE (Qwen's own cannot be downloaded here), so token
counts are those of rgenima's tiny tokenizer. Exits 0 with a message where there is no CUDA.

    PYTHONPATH=. python benchmarks/bench_models_gpu.py [--out bench_models_gpu.json] [--snps 1000]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time


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


def run_step(snps: int = 1000, fmts=("compact", "verbose"), rit_dim: int = 768) -> dict:
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
    with device:
        llm = Qwen2ForCausalLM(config).to(torch.bfloat16)
    llm.gradient_checkpointing_enable()
    model = RGenIMA(llm, tokenizer, image_dim=rit_dim, llm_description={"kind": "qwen2.5-7b-shaped"})
    model.connector.to(device, torch.bfloat16)
    model.train()
    results = {"params": sum(p.numel() for p in llm.parameters()), "runs": []}
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_models_gpu.json")
    parser.add_argument("--snps", type=int, default=1000)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the Qwen2.5-7B-shaped step needs a GPU; nothing measured")
        return 0
    results = run_step(args.snps)
    print(json.dumps(results, indent=2))
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
