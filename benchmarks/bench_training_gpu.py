"""Stage-2 training throughput of R-GenIMA with the real trainer (docs/benchmarks.md, section "Training").

    PYTHONPATH=. python benchmarks/bench_training_gpu.py [--shape qwen2.5-7b|tiny] [--finetune lora|full|frozen]
        [--steps 200] [--batch-size 4] [--snps 1000] [--json benchmarks/results/training_gpu.json]
    PYTHONPATH=. python benchmarks/bench_training_gpu.py --quick [--json /tmp/training_gpu.json]   # CI

Builds R-GenIMA around a randomly initialised LLM of the given shape (``qwen2.5-7b``: the public
Qwen2.5-7B config, bf16 autocast on a GPU; ``tiny``: the CPU demo model), with 109 image tokens per
sample and a compact genome text of ``--snps`` SNPs in gene blocks, and runs ``Stage2Trainer.fit``
(AdamW, warm-up + cosine, the chosen fine-tune mode) for ``--steps`` optimizer steps. Reports
samples/s, tokens/s, peak memory and model-FLOPs utilisation (MFU = 6 · trainable-path parameters ·
tokens/s over the device's peak bf16 dense FLOP/s; for LoRA the backward through the frozen base
still costs ~2/3 of that, so the same 6N convention is used and stated). Without CUDA the
``qwen2.5-7b`` shape is refused with exit 0 and a message; ``tiny`` runs anywhere.

``--quick`` runs the same trainer with the ``tiny`` shape for 2 steps of batch 2 with 40 SNPs (seconds, on
the CPU or a GPU) and writes ``$TMPDIR/rgenima-bench-quick/training_gpu.json`` unless ``--json`` is given.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import output_path, provenance
from rgenima_app import STAGES
from rgenima_app.models.finetune import LoraSettings, set_finetune_mode
from rgenima_app.models.llm import qwen2_5_7b_config
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm, train_tiny_tokenizer
from rgenima_app.training.settings import Stage2Settings
from rgenima_app.training.stage2 import Stage2Item, Stage2Trainer, evaluation_sample

PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}  # dense, from the vendors' data sheets


def synthetic_items(n: int, snps: int, image_dim: int, seed: int = 0) -> list[Stage2Item]:
    """Items with random 109 x D image tokens and random genotypes of ``snps`` SNPs in 10-SNP genes."""
    rng = np.random.default_rng(seed)
    genes = [f"GENE{i // 10}" for i in range(snps)]
    base = pd.DataFrame({"snp": [f"rs{i}" for i in range(snps)], "gene": genes, "a1": "A", "a2": "G"})
    items = []
    for i in range(n):
        table = base.assign(dosage=rng.integers(0, 3, snps).astype(float))
        tokens = torch.from_numpy(rng.standard_normal((109, image_dim)).astype(np.float32))
        items.append(Stage2Item(f"sub-{i}", str(i), STAGES[i % 4], table, tokens))
    return items


def build(shape: str, finetune: str, device: torch.device) -> RGenIMA:
    tokenizer = train_tiny_tokenizer()
    if shape == "tiny":
        llm, tokenizer = build_tiny_llm(TinyLLMConfig(), tokenizer)
    else:
        from transformers import Qwen2ForCausalLM

        config = qwen2_5_7b_config(vocab_size=len(tokenizer))
        config._attn_implementation = "sdpa"
        with torch.device(device):
            llm = Qwen2ForCausalLM(config)
        llm.gradient_checkpointing_enable()
    model = RGenIMA(llm, tokenizer, image_dim=768, llm_description={"kind": shape})
    set_finetune_mode(model, finetune, LoraSettings())
    return model.to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("qwen2.5-7b", "tiny"), default="qwen2.5-7b")
    parser.add_argument("--finetune", choices=("lora", "full", "frozen"), default="lora")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--snps", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="JSON to write (default benchmarks/results/training_gpu.json)")
    parser.add_argument("--quick", action="store_true", help="tiny shape, 2 steps, 40 SNPs (CI)")
    args = parser.parse_args()
    out = output_path(args.json, args.quick, "training_gpu.json",
                      Path(__file__).parent / "results" / "training_gpu.json")
    if args.quick:
        args.shape, args.steps, args.batch_size, args.snps = "tiny", 2, 2, 40
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.shape != "tiny" and device.type != "cuda":
        print("bench_training_gpu: no CUDA GPU here; the qwen2.5-7b shape needs one (try --shape tiny)")
        sys.exit(0)

    model = build(args.shape, args.finetune, device)
    items = synthetic_items(args.steps * args.batch_size, args.snps, 768)
    settings = Stage2Settings(epochs=1, batch_size=args.batch_size, lr=1e-4, warmup_ratio=0.03,
                              checkpoint_every=0, permute_genes=True)
    trainer = Stage2Trainer(model, settings, data="image_gene", fmt="compact", seed=0, device=device)
    tokens_per_sample = len(model.prompt_tokens(evaluation_sample(items[0], "image_gene", "compact"))[0])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    curve = trainer.fit(items, [])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.llm.parameters()) + sum(p.numel() for p in model.connector.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tokens_per_s = len(items) * tokens_per_sample / seconds
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)
    result = {
        "benchmark": "stage-2 training throughput", "device": name, "shape": args.shape, "finetune": args.finetune,
        "autocast": str(trainer.autocast), "steps": args.steps, "batch_size": args.batch_size,
        "tokens_per_sample": tokens_per_sample, "parameters": n_params, "trainable": trainable,
        "seconds": round(seconds, 2), "samples_per_s": round(len(items) / seconds, 3),
        "tokens_per_s": round(tokens_per_s, 1),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
        "mfu": round(6 * n_params * tokens_per_s / peak, 4) if peak else None,
        "loss_first_last": [curve.train_loss[0], curve.train_loss[-1]],
        "provenance": provenance(args.quick),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
