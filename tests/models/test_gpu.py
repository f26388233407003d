"""A Qwen2.5-7B-shaped R-GenIMA step in bf16 on a GPU (skipped without CUDA)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qwen2_5_7b_shaped_step():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_models_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_models_gpu", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.run_step(snps=1000, fmts=("compact",))
    run = result["runs"][0]
    assert result["params"] > 7e9
    assert run["tokens_per_sample"] > 109 and torch.isfinite(torch.tensor(run["loss"]))
