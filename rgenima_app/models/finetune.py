"""Stage-2 fine-tune modes: which parameters of R-GenIMA train (``--finetune``; docs/models.md, "Fine-tune modes").

``full``   connector + every LLM weight (the paper's setting);
``lora``   connector + LoRA adapters on the LLM's attention and MLP projections (peft);
``frozen`` connector only.
The image encoder is frozen in every mode (stage 1 trained it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from rgenima_app.errors import UsageError

FINETUNE_MODES = ("full", "lora", "frozen")


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])

    def to_dict(self) -> dict:
        return asdict(self)


def set_finetune_mode(model, mode: str, lora: LoraSettings | None = None):
    """Set ``requires_grad`` for ``mode`` (wrapping the LLM with LoRA adapters for ``lora``); returns model."""
    if mode not in FINETUNE_MODES:
        raise UsageError(f"--finetune must be one of {', '.join(FINETUNE_MODES)}, not {mode!r}")
    model.freeze_image_encoder()
    model.connector.requires_grad_(True)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        if hasattr(model.llm, "peft_config"):
            raise UsageError("the LLM already carries LoRA adapters")
        settings = lora or LoraSettings()
        config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                            target_modules=list(settings.target_modules), task_type="CAUSAL_LM")
        model.llm = get_peft_model(model.llm, config)
        model.lora_settings = settings
    else:
        model.llm.requires_grad_(mode == "full")
    model.finetune_mode = mode
    return model


def trainable_parameters(model) -> dict[str, int]:
    """Counts of trainable and total parameters (for logs and the model card)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}
