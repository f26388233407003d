"""Fixtures of the inference tests (the model builders and inputs are plain helpers in inference_helpers.py)."""
from __future__ import annotations

import pytest

from inference_helpers import VOCAB
from rgenima_app.models.tiny_llm import train_tiny_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny LLM's tokenizer (VOCAB tokens), trained once per test session."""
    return train_tiny_tokenizer(VOCAB, 0)
