"""The paper's prompt, the answer text, and how a sample becomes prompt text.

The template is the paper's, verbatim (docs/models.md, "R-GenIMA"). ``<Genetic Content>`` is replaced by the
serialized SNP text; ``<Image Content>`` by one image placeholder token, which the multimodal model
later expands to one embedding slot per image token (109 for RiT).

Missing modalities (the paper's Gene-only and Mixture configurations):

* a sample without an image drops `` Brain Image: <Image Content>`` (its leading space included), so the
  prompt reads ``... Genome Information: <SNP text>. Your task ...``;
* a sample without genotypes drops ``Genome Information: <Genetic Content> `` (its trailing space
  included), so the prompt reads ``... polite answers. Brain Image: <image>. Your task ...``.

The task sentence ("based on their Brain Image and Genome Information") is kept unchanged in both
cases, as in the paper's Mixture configuration. A sample needs at least one modality.

Two layouts wrap the prompt (``chat_format``):

``"plain"`` (default)
    the prompt text verbatim, a newline, then the answer. Used by the tiny LLM and base models.
``"chat"``
    the tokenizer's own chat template, with the first two sentences of the template as the system
    message and the rest as the user message (for instruction-tuned models such as Qwen2.5-Instruct).
"""
from __future__ import annotations

from rgenima_app import STAGES
from rgenima_app.errors import UsageError

PROMPT_TEMPLATE = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
    "helpful, detailed, and polite answers. Genome Information: <Genetic Content> Brain Image: "
    "<Image Content>. Your task is to classify the disease of the subject based on their Brain Image "
    "and Genome Information. Choose one of the following labels: [NC, SMC, MCI, AD]."
)
#: The progression targets' prompts (docs/progression.md): the paper's template with the task sentence
#: replaced; ``{horizon}`` is the horizon in months. The answer is read by a head, not generated.
TARGET_TASKS = {
    "progression": "Your task is to predict the change in the CDR Sum of Boxes of the subject over the next "
                   "{horizon} months based on their Brain Image and Genome Information.",
    "conversion": "Your task is to predict whether the subject, who has mild cognitive impairment, converts to "
                  "Alzheimer's disease within {horizon} months based on their Brain Image and Genome Information.",
}
GENETIC_SLOT = "<Genetic Content>"
IMAGE_SLOT = "<Image Content>"
#: The one special token that stands for all image tokens of a sample in the tokenized prompt.
IMAGE_TOKEN = "<image>"
ANSWER_TEMPLATE = "This subject is {label}."
SYSTEM_MESSAGE = ("A chat between a curious user and an artificial intelligence assistant. The assistant "
                  "gives helpful, detailed, and polite answers.")
CHAT_FORMATS = ("plain", "chat")


def target_template(kind: str, horizon_months: float) -> str:
    """The prompt template of a progression target: PROMPT_TEMPLATE with the task sentence replaced."""
    stage_task = PROMPT_TEMPLATE[PROMPT_TEMPLATE.index("Your task"):]
    return PROMPT_TEMPLATE.replace(stage_task, TARGET_TASKS[kind].format(horizon=f"{horizon_months:g}"))


def answer_text(label: str) -> str:
    """The target text for one stage label, e.g. ``This subject is MCI.``"""
    if label not in STAGES:
        raise UsageError(f"unknown stage label {label!r}; labels are {', '.join(STAGES)}")
    return ANSWER_TEMPLATE.format(label=label)


def user_prompt(genome_text: str | None, with_image: bool, template: str = PROMPT_TEMPLATE) -> str:
    """The prompt text of one sample, with the image placeholder token when it has an image."""
    if genome_text is None and not with_image:
        raise UsageError("a sample needs genotypes, an image, or both; this one has neither")
    text = template
    if with_image:
        text = text.replace(IMAGE_SLOT, IMAGE_TOKEN)
    else:
        text = text.replace(f" Brain Image: {IMAGE_SLOT}", "")
    if genome_text is None:
        text = text.replace(f"Genome Information: {GENETIC_SLOT} ", "")
    else:
        if IMAGE_TOKEN in genome_text:
            raise UsageError(f"the genome text contains the reserved image token {IMAGE_TOKEN!r}")
        text = text.replace(GENETIC_SLOT, genome_text.strip())
    return text


def render_prompt(genome_text: str | None, with_image: bool, chat_format: str = "plain",
                  tokenizer=None, template: str = PROMPT_TEMPLATE) -> str:
    """The full text that precedes the answer, in the given layout (see the module docstring)."""
    text = user_prompt(genome_text, with_image, template)
    if chat_format == "plain":
        return text + "\n"
    if chat_format == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UsageError("chat_format 'chat' needs a tokenizer with a chat template",
                             "use chat_format 'plain' for base models and the tiny LLM")
        system = SYSTEM_MESSAGE if text.startswith(SYSTEM_MESSAGE) else None
        user = text[len(SYSTEM_MESSAGE):].lstrip() if system else text
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise UsageError(f"chat_format must be one of {CHAT_FORMATS}, not {chat_format!r}")


def parse_answer(text: str) -> str | None:
    """The stage named by a generated answer (``This subject is AD.`` -> ``AD``), or None."""
    head = text.strip()
    prefix = ANSWER_TEMPLATE.split("{label}")[0]
    if head.startswith(prefix):
        head = head[len(prefix):]
    word = head.split(".")[0].strip().split()[:1]
    return word[0] if word and word[0] in STAGES else None
