"""CPU figures for rgenima's models: RiT patch encoders, parameter counts, tiny-LLM steps and scoring.

    PYTHONPATH=. python benchmarks/bench_models.py [--out bench_models.json]
    PYTHONPATH=. python benchmarks/bench_models.py --quick [--out /tmp/bench_models.json]   # seconds, CI

Timings are noisy on a shared machine; compare the ratios measured within one run. ``--quick`` runs the
same code on tiny sizes (RiT S = 8, D = 32; a 2-layer, hidden-64 tiny LLM; 40 SNPs; image dim 64) and
writes ``$TMPDIR/rgenima-bench-quick/bench_models.json`` unless ``--out`` is given.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from _common import output_path, provenance


MAX_REPEAT = None  # --quick: 1


def timed(fn, repeat: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(min(repeat, MAX_REPEAT or repeat)):
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


def bench_rit(out: dict, S: int = 32, D: int = 256, large: tuple[int, int] = (96, 768)) -> None:
    from rgenima_app.imaging.roi_table import N_ROIS
    from rgenima_app.models.rit import RiT, RiTConfig, parameter_report, patch_embedding_weights

    out["patch_embedding_weights"] = {f"S={s},D={d}": patch_embedding_weights(s, d)
                                      for s, d in [(96, 768), (64, 768), (32, 768), (32, 256)]}
    light = RiT(RiTConfig(roi_size=large[0], dim=large[1], depth=4, heads=8, patch_encoder="strided"))
    out[f"strided_S{large[0]}_D{large[1]}_params"] = parameter_report(light)
    patches = torch.randn(1, N_ROIS, S, S, S)
    times = {}
    for enc in ("conv", "strided"):
        rit = RiT(RiTConfig(roi_size=S, dim=D, depth=4, heads=8, patch_encoder=enc)).eval()
        with torch.no_grad():
            times[enc] = timed(lambda: rit(patches))
        out[f"rit_{enc}_S{S}_D{D}_params"] = parameter_report(rit)["total"]
    out[f"rit_forward_seconds_S{S}_D{D}_batch1"] = times
    out["rit_strided_over_conv_time"] = times["strided"] / times["conv"]


def bench_mllm(out: dict, snps: int = 1000, image_dim: int = 768, tiny=None) -> None:
    from rgenima_app.imaging.roi_table import N_ROIS
    from rgenima_app.models.llm import build_llm
    from rgenima_app.models.mllm import MLLMSample, RGenIMA
    from rgenima_app import STAGES

    llm, tok, desc = build_llm("tiny", tiny=tiny)
    out["tiny_llm_params"] = sum(p.numel() for p in llm.parameters())
    model = RGenIMA(llm, tok, image_dim=image_dim, llm_description=desc)
    for fmt in ("compact", "verbose"):
        sample = MLLMSample(snp_text(snps, fmt), torch.randn(N_ROIS, image_dim), "AD")
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

        out[f"tiny_{fmt}_{snps}_snps"] = {
            "tokens_per_sample": int(batch.input_ids.shape[1]),
            "genome_tokens": lay.genome_span[1] - lay.genome_span[0],
            "train_step_seconds": timed(step, repeat=2),
            "score_4_answers_seconds_batch2": cached,
        }
        if fmt == "compact":  # the naive path is long at 10 k verbose tokens; the ratio is the point
            out[f"tiny_{fmt}_{snps}_snps"]["naive_over_cached_scoring_time"] = timed(naive, repeat=1) / cached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON to write (default bench_models.json in the current folder)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds (CI); not the recorded figures")
    args = parser.parse_args()
    path = output_path(args.out, args.quick, "bench_models.json", Path("bench_models.json"))
    torch.manual_seed(0)
    out = {"torch_threads": torch.get_num_threads(), "provenance": provenance(args.quick)}
    if args.quick:
        from rgenima_app.models.tiny_llm import TinyLLMConfig

        global MAX_REPEAT
        MAX_REPEAT = 1
        bench_rit(out, S=8, D=32, large=(16, 64))
        bench_mllm(out, snps=40, image_dim=64, tiny=TinyLLMConfig(
            hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=1024))
    else:
        bench_rit(out)
        bench_mllm(out)
    print(json.dumps(out, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(out, fh, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
