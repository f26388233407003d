"""CPU figures for rgenima's models: RiT patch encoders, parameter counts, tiny-LLM steps and scoring.

    PYTHONPATH=. python benchmarks/bench_models.py [--out bench_models.json]

Timings are noisy on a shared machine; compare the ratios measured within one run.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

import torch


def timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def snp_text(n: int, fmt: str, seed: int = 0) -> str:
    rng = random.Random(seed)
    blocks = []
    for g in range(0, n, 10):
        k = min(10, n - g)
        body = ("".join(str(rng.randint(0, 2)) for _ in range(k)) if fmt == "compact" else
                ", ".join(f"rs{rng.randint(1, 10**9)} A/G {rng.randint(0, 2)}" for _ in range(k)))
        blocks.append(f"GENE{g // 10}: {body};")
    return " ".join(blocks)


def bench_rit(out: dict) -> None:
    from rgenima_app.imaging.roi_table import N_ROIS
    from rgenima_app.models.rit import RiT, RiTConfig, parameter_report, patch_embedding_weights

    out["patch_embedding_weights"] = {f"S={s},D={d}": patch_embedding_weights(s, d)
                                      for s, d in [(96, 768), (64, 768), (32, 768), (32, 256)]}
    light96 = RiT(RiTConfig(roi_size=96, dim=768, depth=4, heads=8, patch_encoder="strided"))
    out["strided_S96_D768_params"] = parameter_report(light96)
    S, D = 32, 256
    patches = torch.randn(1, N_ROIS, S, S, S)
    times = {}
    for enc in ("conv", "strided"):
        rit = RiT(RiTConfig(roi_size=S, dim=D, depth=4, heads=8, patch_encoder=enc)).eval()
        with torch.no_grad():
            times[enc] = timed(lambda: rit(patches))
        out[f"rit_{enc}_S{S}_D{D}_params"] = parameter_report(rit)["total"]
    out[f"rit_forward_seconds_S{S}_D{D}_batch1"] = times
    out["rit_strided_over_conv_time"] = times["strided"] / times["conv"]


def bench_mllm(out: dict) -> None:
    from rgenima_app.imaging.roi_table import N_ROIS
    from rgenima_app.models.llm import build_llm
    from rgenima_app.models.mllm import MLLMSample, RGenIMA
    from rgenima_app import STAGES

    llm, tok, desc = build_llm("tiny")
    out["tiny_llm_params"] = sum(p.numel() for p in llm.parameters())
    model = RGenIMA(llm, tok, image_dim=768, llm_description=desc)
    for fmt in ("compact", "verbose"):
        sample = MLLMSample(snp_text(1000, fmt), torch.randn(N_ROIS, 768), "AD")
        batch = model.encode([sample])
        lay = batch.layouts[0]
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            model(batch).backward()

        model.eval()
        samples = [sample] * 2
        cached = timed(lambda: model.answer_probabilities(samples), repeat=2)

        def naive():  # one full forward per (sample, answer): what the KV-cache path avoids
            with torch.no_grad():
                for s in samples:
                    for label in STAGES:
                        one = model.encode([MLLMSample(s.genome_text, s.image_tokens, label)])
                        model(one)

        out[f"tiny_{fmt}_1000_snps"] = {
            "tokens_per_sample": int(batch.input_ids.shape[1]),
            "genome_tokens": lay.genome_span[1] - lay.genome_span[0],
            "train_step_seconds": timed(step, repeat=2),
            "score_4_answers_seconds_batch2": cached,
        }
        if fmt == "compact":  # the naive path is long at 10 k verbose tokens; the ratio is the point
            out[f"tiny_{fmt}_1000_snps"]["naive_over_cached_scoring_time"] = timed(naive, repeat=1) / cached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_models.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    out = {"torch_threads": torch.get_num_threads()}
    bench_rit(out)
    bench_mllm(out)
    print(json.dumps(out, indent=2))
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
