"""Attention rollout: time and peak memory of the row-propagation method against the direct method.

    PYTHONPATH=.:tests/inference python benchmarks/bench_rollout.py [--device cuda] [--layers 28 --heads 28
        --kv-heads 4 --head-dim 128] [--snps 1470 2000] [--direct-max-n 1500] [--out results/rollout.json]
    PYTHONPATH=. python benchmarks/bench_rollout.py --quick [--out /tmp/rollout.json]   # seconds, CI

The model is a randomly initialised Qwen2 of the given shape (default: Qwen2.5-7B's 28 layers, 28 query
heads, 4 KV heads; ``--head-dim 4`` keeps the attention maps of that shape at a fraction of the weights,
for CPUs — the maps, which are what the two methods differ in, depend on L, H and n only). The prompt is
the real one: 109 image tokens and a compact SNP text of ``--snps`` SNPs in blocks of 14.

* rollout: ``inference.rollout.rollout`` — head means computed over blocks of query rows (no per-head
  weights), their lower triangles kept (about L·n²/2 floats), 110 rows propagated.
* direct: ``output_attentions=True`` (L·H·n² floats kept) and the full n×n products (O(L·n³)).

Peak memory is the allocator's peak above what the model itself holds: ``torch.cuda.max_memory_allocated``
on a GPU, the profiler's allocation timeline on the CPU.

``--quick`` runs both methods on a 2-layer, 4-head (2 KV heads, head dim 4) float32 model with a 30-SNP
prompt on the CPU and writes ``$TMPDIR/rgenima-bench-quick/rollout.json`` unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from _common import REPO, output_path, provenance

for _path in (REPO, REPO / "tests" / "inference"):  # rgenima_app and the tests' tiny-model helpers
    if str(_path) not in sys.path:
        sys.path.insert(1, str(_path))


def genome(n_snps: int, seed: int = 0) -> str:
    from rgenima_app.genetics.panel import load_gene_panel

    rng = random.Random(seed)
    genes = list(load_gene_panel("GRCh37")["gene"])
    blocks, done, g = [], 0, 0
    while done < n_snps:
        k = min(14, n_snps - done)
        blocks.append(f"{genes[g % len(genes)]} " + "".join(str(rng.randint(0, 2)) for _ in range(k)))
        done, g = done + k, g + 1
    return "; ".join(blocks)


def peak(fn, device: torch.device) -> tuple[float, int]:
    """(seconds, peak bytes allocated above the starting point) of one call."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = top = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action.name == "CREATE":
            current += size
            top = max(top, current)
        elif action.name == "DESTROY":
            current -= size
    return seconds, top


def direct(model, sample) -> torch.Tensor:
    from rgenima_app.inference.rollout import direct_rollout_matrix

    batch = model.encode([sample], with_answers=False, padding_side="left")
    base = model._base()
    base.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            attentions = model._run(batch, use_cache=False, output_attentions=True).attentions
    finally:
        base.set_attn_implementation("sdpa")
    return direct_rollout_matrix([a[0] for a in attentions])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--heads", type=int, default=28)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--snps", type=int, nargs="+", default=[1470])
    parser.add_argument("--direct-max-n", type=int, default=100_000, help="skip the direct method above this n")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="2 layers, 4 heads, 30 SNPs, CPU (CI)")
    args = parser.parse_args()
    out = output_path(args.out, args.quick, "rollout.json", None)
    if args.quick:
        args.device, args.layers, args.heads, args.kv_heads, args.head_dim = "cpu", 2, 4, 2, 4
        args.dtype, args.snps, args.direct_max_n = "float32", [30], 100_000

    from inference_helpers import IMAGE_DIM, image_sample
    from rgenima_app.inference.rollout import rollout
    from rgenima_app.models.mllm import RGenIMA
    from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm, train_tiny_tokenizer

    device = torch.device(args.device)
    hidden = args.heads * args.head_dim
    cfg = TinyLLMConfig(hidden_size=hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
                        num_key_value_heads=args.kv_heads, intermediate_size=max(4 * hidden, 64), vocab_size=1024)
    llm, tok = build_tiny_llm(cfg, tokenizer=train_tiny_tokenizer(1024, 0))
    model = RGenIMA(llm, tok, image_dim=IMAGE_DIM, llm_description={"kind": "tiny"})
    model.to(device=device, dtype=getattr(torch, args.dtype)).eval()
    results = {"provenance": provenance(args.quick),
               "device": str(device), "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
               "hidden": hidden, "dtype": args.dtype, "runs": []}
    for n_snps in args.snps:
        sample = image_sample(0, genome(n_snps))
        n = model.prompt_tokens(sample)[1].prompt_length
        row = {"snps": n_snps, "n": n, "head_mean_maps_bytes": args.layers * n * n * 4,
               "per_head_maps_bytes": args.layers * args.heads * n * n * (2 if args.dtype == "bfloat16" else 4)}
        row["rollout_s"], row["rollout_peak_bytes"] = peak(
            lambda: rollout(model, [sample], with_probabilities=False), device)
        if n <= args.direct_max_n:
            row["direct_s"], row["direct_peak_bytes"] = peak(lambda: direct(model, sample), device)
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
