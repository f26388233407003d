"""Fixtures of the inference tests (the model builders and inputs are plain helpers in inference_helpers.py)."""
from __future__ import annotations

import pytest

from inference_helpers import VOCAB
from rgenima_app.models.tiny_llm import train_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny LLM's tokenizer (VOCAB tokens), trained once per test session."""
    return train_tiny_tokenizer(VOCAB, 0)


@pytest.fixture(scope="session")
def decisive(tiny_tokenizer):
    """A tiny model trained so that only ROI ``DECISIVE_ROI`` decides NC vs AD (inference_helpers.decisive_model)."""
    from inference_helpers import decisive_model

    return decisive_model(tiny_tokenizer)
