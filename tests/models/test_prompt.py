"""The paper's prompt, verbatim, and the documented variants for missing modalities."""
from __future__ import annotations

import pytest

from rgenima_app.errors import UsageError
from rgenima_app.models.prompt import (
    IMAGE_TOKEN, PROMPT_TEMPLATE, answer_text, parse_answer, render_prompt, user_prompt,
)

PAPER = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
         "detailed, and polite answers. Genome Information: <Genetic Content> Brain Image: <Image Content>. "
         "Your task is to classify the disease of the subject based on their Brain Image and Genome "
         "Information. Choose one of the following labels: [NC, SMC, MCI, AD].")


def test_template_is_the_papers():
    assert PROMPT_TEMPLATE == PAPER


def test_both_modalities():
    text = user_prompt("APOE: rs1 A/G 1;", with_image=True)
    assert text == PAPER.replace("<Genetic Content>", "APOE: rs1 A/G 1;").replace("<Image Content>", IMAGE_TOKEN)


def test_without_image_drops_the_brain_image_part():
    text = user_prompt("APOE: rs1 A/G 1;", with_image=False)
    assert "Brain Image: " not in text.split("Your task")[0]
    assert "Genome Information: APOE: rs1 A/G 1;. Your task is" in text
    assert IMAGE_TOKEN not in text


def test_without_genotypes_drops_the_genome_part():
    text = user_prompt(None, with_image=True)
    assert "polite answers. Brain Image: <image>. Your task is" in text
    assert "Genome Information:" not in text.split("Your task")[0]


def test_refusals():
    with pytest.raises(UsageError, match="neither"):
        user_prompt(None, with_image=False)
    with pytest.raises(UsageError, match="reserved image token"):
        user_prompt("APOE <image>", with_image=True)
    with pytest.raises(UsageError, match="chat_format"):
        render_prompt("x", True, chat_format="vicuna")
    with pytest.raises(UsageError, match="chat template"):
        render_prompt("x", True, chat_format="chat", tokenizer=object())
    with pytest.raises(UsageError, match="unknown stage"):
        answer_text("CN")


def test_answers_and_parsing():
    assert answer_text("MCI") == "This subject is MCI."
    assert parse_answer(" This subject is AD.\n") == "AD"
    assert parse_answer("SMC.") == "SMC"
    assert parse_answer("This subject is healthy.") is None


def test_chat_layout(tiny_llm):
    _, tokenizer, _ = tiny_llm
    import copy
    chat_tok = copy.deepcopy(tokenizer)
    chat_tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                              "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    text = render_prompt("APOE: rs1 A/G 1;", True, chat_format="chat", tokenizer=chat_tok)
    assert text.startswith("<|system|>A chat between a curious user")
    assert "<|user|>Genome Information: APOE: rs1 A/G 1; Brain Image: <image>." in text
    assert text.endswith("<|assistant|>")
