"""Stage-2 LoRA training of a Qwen2.5-7B-shaped R-GenIMA in bf16 on a GPU (skipped without CUDA)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_qwen2_5_7b_shaped_lora_training_steps(tmp_path):
    out = tmp_path / "training_gpu.json"
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_training_gpu.py"), "--steps", "4",
                             "--batch-size", "2", "--json", str(out)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), **__import__("os").environ})
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(out.read_text())
    assert measured["parameters"] > 7e9 and measured["trainable"] < measured["parameters"] / 50
    assert measured["autocast"] == "torch.bfloat16" and measured["tokens_per_s"] > 0
    assert all(map(lambda x: x == x, measured["loss_first_last"]))  # finite, not NaN
