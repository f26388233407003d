"""Stage-2 training throughput with cached RiT tokens against recomputing the RiT every step.

    PYTHONPATH=. python benchmarks/bench_token_cache.py [--roi-size 32 64 --batch 8 --steps 6 --snps 387]
        [--json benchmarks/results/token_cache.json]

Stage 2 freezes the RiT, so ``group --train`` computes each sample's 109 tokens once
(``training.tokens``) and every stage-2 step reads them from the cache. The baseline is what a
trainer without the cache does: the frozen RiT's forward pass on the 109 ROI patches of every sample
of every step (no gradient), then the same connector + LLM step. Both run the real trainer's loss
(``Stage2Trainer._loss``, AdamW step) on the tiny LLM with the prompt of the training benchmark
(compact SNP text of ``--snps`` SNPs), interleaved step by step so that machine noise hits both alike.
Reports samples/s of each and the ratio; ``--quick`` runs 2 steps at 8^3.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from _common import RESULTS, output_path, provenance


def genome(n_snps: int, per_gene: int = 4, seed: int = 0) -> str:
    import random

    from rgenima_app.genetics.panel import load_gene_panel

    rng = random.Random(seed)
    genes = list(load_gene_panel("GRCh37")["gene"])
    blocks = [f"{genes[g % len(genes)]} " + "".join(str(rng.randint(0, 2)) for _ in range(per_gene))
              for g in range(-(-n_snps // per_gene))]
    return "; ".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roi-size", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--snps", type=int, default=387, help="SNPs in the prompt (the training benchmark's panel)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.roi_size, args.steps, args.batch = [8], 2, 2
    json_path = output_path(args.json, args.quick, "token_cache.json", RESULTS / "token_cache.json")

    from rgenima_app import STAGES
    from rgenima_app.models.mllm import MLLMSample, RGenIMA
    from rgenima_app.models.rit import RiT, RiTConfig
    from rgenima_app.models.tiny_llm import build_tiny_llm
    from rgenima_app.training.settings import Stage2Settings
    from rgenima_app.training.stage2 import Stage2Trainer

    llm, tokenizer = build_tiny_llm()
    text = genome(args.snps)  # compact text, 4 SNPs per gene as in the synthetic cohorts
    runs = []
    for size in args.roi_size:
        torch.manual_seed(0)
        rit = RiT(RiTConfig(roi_size=size, dim=128, depth=2, heads=4, patch_encoder="conv",
                            use_size_feature=True)).eval().requires_grad_(False)
        model = RGenIMA(llm, tokenizer, image_dim=128, image_encoder=rit)
        trainer = Stage2Trainer(model, Stage2Settings(lr=1e-3, checkpoint_every=0), data="image_gene",
                                fmt="compact", seed=0, device=torch.device("cpu"))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        patches = torch.randn(args.batch, 109, size, size, size)
        volumes = torch.log1p(torch.rand(args.batch, 109) * 5000)
        with torch.no_grad():
            cached = rit(patches, volumes).tokens

        def step(tokens: torch.Tensor) -> None:
            samples = [MLLMSample(text, tokens[i], STAGES[i % 4]) for i in range(args.batch)]
            trainer._loss(samples).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def recomputed() -> None:
            with torch.no_grad():  # the RiT is frozen: its forward pass needs no graph
                tokens = rit(patches, volumes).tokens
            step(tokens)

        step(cached)  # warm-up of both paths
        recomputed()
        times = {"cached": 0.0, "recomputed": 0.0}
        for _ in range(args.steps):
            for name, fn in (("cached", lambda: step(cached)), ("recomputed", recomputed)):
                begin = time.perf_counter()
                fn()
                times[name] += time.perf_counter() - begin
        samples = args.steps * args.batch
        runs.append({"roi_size": size, "samples_per_s": {k: samples / v for k, v in times.items()},
                     "speedup_cached_over_recomputed": times["recomputed"] / times["cached"]})
        print(json.dumps(runs[-1]), flush=True)
    result = {
        "benchmark": "token_cache", "provenance": provenance(args.quick),
        "settings": {"batch": args.batch, "steps": args.steps, "snps": args.snps,
                     "prompt_tokens": model.prompt_tokens(MLLMSample(text, cached[0]))[1].prompt_length,
                     "threads": torch.get_num_threads()},
        "runs": runs,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
