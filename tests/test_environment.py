"""``resolve_device``: the one translation of ``--device`` (and a library caller's ``device``) to a torch device."""
from __future__ import annotations

import pytest
import torch

from rgenima_app.environment import resolve_device
from rgenima_app.errors import UsageError


@pytest.fixture(params=[True, False], ids=["with-cuda", "without-cuda"])
def cuda(request, monkeypatch):
    """Pretend that a CUDA GPU is (or is not) visible."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    return request.param


@pytest.mark.parametrize("choice", ["auto", None])
def test_auto_and_none_pick_the_gpu_when_there_is_one(cuda, choice):
    assert resolve_device(choice) == torch.device("cuda" if cuda else "cpu")


def test_cpu_is_always_the_cpu(cuda):
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("choice", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_a_usage_error(monkeypatch, choice):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match=f"--device {choice}: no CUDA GPU is visible") as raised:
        resolve_device(choice)
    assert "--device cpu or auto" in str(raised.value)


def test_cuda_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_a_torch_device_passes_through(cuda):
    for device in (torch.device("cpu"), torch.device("cuda", 0)):
        assert resolve_device(device) is device


def test_every_caller_uses_the_same_function():
    from rgenima_app.imaging import wholebrain
    from rgenima_app.workflows import apply, train

    assert wholebrain.resolve_device is apply.resolve_device is train.resolve_device is resolve_device


def test_the_command_line_does_not_load_torch_through_the_environment_module():
    import subprocess
    import sys

    code = "import sys, rgenima_app.environment, rgenima_app.config; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
