"""R-GenIMA: a causal LM that reads the SNP text and the image tokens in one prompt (LLaVA-style).

A sample is the SNP text of a participant (or None), its frozen image tokens (109 × D RiT tokens, or
1 × D whole-brain token; or None) and, for training, its stage label. The prompt (``prompt.py``) holds
one image placeholder token; ``encode`` expands it to ``n_image_tokens`` copies, and ``embed`` puts the
connector's projections of the image tokens into ``inputs_embeds`` at exactly those positions.

* ``loss``: mean negative log-likelihood of the answer tokens (``This subject is <label>.`` + EOS)
  only; logits are computed only where an answer token is predicted, never over the whole prompt.
* ``answer_probabilities``: the log-likelihood of each of the four answers, normalised over the four
  (softmax) — one probability per stage. The prompt runs once; its key/value cache is repeated for
  the four answers.
* ``generate``: greedy decoding, for parity with the paper.
* a progression target (``set_target``): a linear head on the LLM's last hidden state at the query
  position (the last prompt token, whose output would predict the answer's first token) reads the
  answer as a number: ΔCDR-SB (trained by mean squared error) or the logit of MCI-to-AD conversion
  (binary cross-entropy); ``predict_targets`` returns the change or the probability.
* ``PromptLayout`` tells the interpretation code where the image tokens, the SNP-text tokens and the
  label-predicting position are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rgenima_app import STAGES
from rgenima_app.errors import ProcessingError, UsageError
from rgenima_app.genetics.serialize import dosage_separator as probe_separator
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.connector import build_connector
from rgenima_app.models.prompt import (
    IMAGE_TOKEN,
    PROMPT_TEMPLATE,
    answer_text,
    parse_answer,
    render_prompt,
)


@dataclass
class MLLMSample:
    """One participant (or session): SNP text and/or image tokens (n_image_tokens, D), optional label."""

    genome_text: str | None = None
    image_tokens: torch.Tensor | None = None
    label: str | None = None
    target: float | None = None     # ΔCDR-SB or converted (0/1): the progression head's training target


@dataclass
class PromptLayout:
    """Where things are in one sample's token sequence (positions before any batch padding).

    ``image_span`` and ``genome_span`` are [start, stop) token ranges (None when absent);
    ``genome_offsets`` gives, for each SNP-text token, its [start, stop) character range within the
    genome text (so tokens can be assigned to gene blocks); ``query_position`` is the position whose
    output predicts the first answer token (the rollout's query row, docs/inference.md).
    """

    prompt_length: int
    image_span: tuple[int, int] | None
    genome_span: tuple[int, int] | None
    genome_offsets: list[tuple[int, int]] = field(default_factory=list)

    @property
    def query_position(self) -> int:
        return self.prompt_length - 1


@dataclass
class PromptBatch:
    """A padded batch. ``answer_mask`` marks answer positions; ``pad_offsets`` is each row's left padding."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    labels: torch.Tensor | None
    answer_mask: torch.Tensor | None
    image_features: torch.Tensor | None
    layouts: list[PromptLayout]
    pad_offsets: list[int]
    targets: torch.Tensor | None = None   # (B,) progression targets (a model with a target head)


@dataclass
class AnswerScores:
    """``RGenIMA.score_answers``: (B, 4) log-likelihoods over ``STAGES``; ``answer_mask`` (B·4, M) marks the
    real tokens of the answers' continuation (row 4b + s: sample b, stage s); with ``output_attentions``, per
    layer the prompt pass's (B, H, n, n) and the continuation's (B·4, H, M, n + M) attention weights."""

    log_likelihoods: torch.Tensor
    answer_mask: torch.Tensor
    prompt_attentions: tuple[torch.Tensor, ...] | None = None
    answer_attentions: tuple[torch.Tensor, ...] | None = None


class RGenIMA(nn.Module):
    """Connector + causal LM (+ optionally the frozen image encoder, kept for the bundle).

    ``llm`` is any Hugging Face causal LM (possibly a peft model); ``tokenizer`` a fast tokenizer that
    knows ``IMAGE_TOKEN`` (see ``llm.prepare_tokenizer``).
    """

    def __init__(self, llm, tokenizer, *, image_dim: int, n_image_tokens: int = N_ROIS,
                 connector: str = "linear", chat_format: str = "plain", image_encoder: nn.Module | None = None,
                 llm_description: dict | None = None, prompt_template: str = PROMPT_TEMPLATE,
                 dosage_separator: str | None = None):
        super().__init__()
        if not getattr(tokenizer, "is_fast", False):
            raise UsageError("R-GenIMA needs a fast (tokenizer.json) tokenizer to locate SNP-text tokens")
        self.llm = llm
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise UsageError(f"the tokenizer does not know the image token {IMAGE_TOKEN!r}")
        self.hidden_size = int(self._base().config.hidden_size)
        self.connector_kind = connector
        self.connector = build_connector(connector, image_dim, self.hidden_size)
        self.image_dim = image_dim
        self.n_image_tokens = n_image_tokens
        self.chat_format = chat_format
        self.prompt_template = prompt_template
        self.image_encoder = image_encoder
        self.llm_description = dict(llm_description or {})
        self.finetune_mode = "full"  # set_finetune_mode() changes it
        self.target_kind = "stage"   # set_target() changes it
        self.target_head: nn.Module | None = None
        self.lora_settings = None
        self._answer_ids = [self._answer_token_ids(s) for s in STAGES]
        #: between the dosages of the compact SNP text: one token per dosage with this tokenizer
        #: (probed when not given; a loaded bundle gives the one it was trained with)
        self.dosage_separator = probe_separator(tokenizer) if dosage_separator is None else dosage_separator

    # ----------------------------------------------------------------- plumbing
    def _base(self):
        """The underlying transformers model (unwrapping peft)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    @property
    def decoder(self):
        return self._base().get_decoder()

    @property
    def lm_head(self):
        return self._base().get_output_embeddings()

    def freeze_image_encoder(self) -> None:
        """Stage 2: the image encoder gets no gradient and stays in eval mode."""
        if self.image_encoder is not None:
            self.image_encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.image_encoder is not None and not any(p.requires_grad for p in self.image_encoder.parameters()):
            self.image_encoder.eval()
        return self

    def _answer_token_ids(self, label: str) -> list[int]:
        ids = self.tokenizer(answer_text(label), add_special_tokens=False)["input_ids"]
        return list(ids) + [self.tokenizer.eos_token_id]

    def set_target(self, kind: str, initial: float = 0.0) -> None:
        """Answer a progression target (``progression``: ΔCDR-SB; ``conversion``: P(MCI to AD)) with a
        linear head on the query position's last hidden state; ``initial`` is its starting output (the
        training mean change, or the logit of the training converter rate), so training starts from the
        trivial reference rather than from zero."""
        if kind not in ("progression", "conversion"):
            raise UsageError(f"unknown progression target {kind!r}", hint="progression or conversion")
        self.target_kind = kind
        self.target_head = nn.Linear(self.hidden_size, 1)
        with torch.no_grad():
            self.target_head.weight.zero_()
            self.target_head.bias.fill_(float(initial))
        self.target_head.to(self.lm_head.weight.device)

    # --------------------------------------------------------------- tokenizing
    def prompt_tokens(self, sample: MLLMSample) -> tuple[list[int], PromptLayout]:
        """Token ids of one sample's prompt with the image token expanded, and its layout."""
        has_image = sample.image_tokens is not None
        if has_image and tuple(sample.image_tokens.shape) != (self.n_image_tokens, self.image_dim):
            raise ProcessingError(f"image tokens of shape {tuple(sample.image_tokens.shape)} do not match this "
                                  f"model's ({self.n_image_tokens}, {self.image_dim})")
        text = render_prompt(sample.genome_text, has_image, self.chat_format, self.tokenizer, self.prompt_template)
        enc = self.tokenizer(text, add_special_tokens=self.chat_format == "plain", return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        slots = [i for i, t in enumerate(ids) if t == self.image_token_id]
        if len(slots) != int(has_image):
            raise ProcessingError(f"the prompt has {len(slots)} image placeholder token(s), expected "
                                  f"{int(has_image)}; the text must not contain {IMAGE_TOKEN!r}")
        genome_span, genome_offsets = None, []
        if sample.genome_text is not None:
            genome = sample.genome_text.strip()
            start = text.index(genome)
            inside = [i for i, (a, b) in enumerate(offsets) if b > start and a < start + len(genome) and b > a]
            genome_span = (inside[0], inside[-1] + 1)
            genome_offsets = [(max(offsets[i][0] - start, 0), min(offsets[i][1] - start, len(genome)))
                              for i in range(*genome_span)]
        image_span = None
        if has_image:
            p = slots[0]
            ids = ids[:p] + [self.image_token_id] * self.n_image_tokens + ids[p + 1:]
            image_span = (p, p + self.n_image_tokens)
            if genome_span is not None and genome_span[0] > p:
                shift = self.n_image_tokens - 1
                genome_span = (genome_span[0] + shift, genome_span[1] + shift)
        return ids, PromptLayout(len(ids), image_span, genome_span, genome_offsets)

    def encode(self, samples: list[MLLMSample], with_answers: bool = True, padding_side: str = "right") -> PromptBatch:
        """Tokenize and pad a batch; with answers, build labels masked to the answer tokens."""
        if not samples:
            raise UsageError("an empty batch")
        rows, layouts, answer_masks = [], [], []
        for s in samples:
            ids, layout = self.prompt_tokens(s)
            mask = [False] * len(ids)
            if with_answers and self.target_head is None:
                if s.label is None:
                    raise UsageError("training samples need a stage label")
                answer_text(s.label)  # validates the label
                answer = self._answer_ids[STAGES.index(s.label)]
                ids, mask = ids + answer, mask + [True] * len(answer)
            rows.append(ids)
            layouts.append(layout)
            answer_masks.append(mask)
        ids, attn, pad = _pad(rows, self.tokenizer.pad_token_id, padding_side)
        targets = None
        if with_answers and self.target_head is not None:  # the head reads the prompt: no answer tokens
            if any(s.target is None for s in samples):
                raise UsageError("training samples of a progression target need their target value")
            targets, with_answers = torch.tensor([float(s.target) for s in samples]), False
        answer_mask = _pad(answer_masks, False, padding_side)[0].bool() if with_answers else None
        labels = ids.masked_fill(~answer_mask, -100) if with_answers else None
        images = [s.image_tokens for s in samples if s.image_tokens is not None]
        return PromptBatch(
            input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(-1) - 1).clamp_min(0),
            labels=labels, answer_mask=answer_mask,
            image_features=torch.stack(images) if images else None, layouts=layouts, pad_offsets=pad,
            targets=targets,
        )

    # ---------------------------------------------------------------- embedding
    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the connector's output at the image placeholder positions."""
        device = self.lm_head.weight.device
        input_ids = input_ids.to(device)
        slots = input_ids == self.image_token_id
        table = self.decoder.get_input_embeddings()
        # the placeholder's own embedding is never used: look up a valid id there (it may lie past
        # the embedding table when the tokenizer was extended without resizing the model)
        embeds = table(input_ids.masked_fill(slots, 0))
        n_slots = int(slots.sum())
        n_feats = 0 if image_features is None else image_features.shape[0] * image_features.shape[1]
        if n_slots != n_feats:
            raise ProcessingError(f"{n_slots} image placeholder positions but {n_feats} image token embeddings; "
                                  f"each image needs exactly {self.n_image_tokens}")
        if n_feats:
            conn = next(self.connector.parameters())
            projected = self.connector(image_features.to(device=conn.device, dtype=conn.dtype))
            embeds = embeds.masked_scatter(slots.unsqueeze(-1), projected.to(embeds.dtype))
        return embeds

    def _run(self, batch: PromptBatch, **kwargs):
        device = self.lm_head.weight.device
        return self.decoder(
            inputs_embeds=self.embed(batch.input_ids, batch.image_features),
            attention_mask=batch.attention_mask.to(device), position_ids=batch.position_ids.to(device), **kwargs,
        )

    # -------------------------------------------------------------- objectives
    def forward(self, batch: PromptBatch) -> torch.Tensor:
        """Mean NLL of the answer tokens (per token), from a batch made by ``encode(..., with_answers=True)``;
        with a target head, its loss (squared error of ΔCDR-SB, or binary cross-entropy of conversion)."""
        if self.target_head is not None:
            if batch.targets is None:
                raise UsageError("the progression loss needs a batch encoded with targets")
            output = self.target_outputs(batch)
            targets = batch.targets.to(output.device)
            if self.target_kind == "conversion":
                return nn.functional.binary_cross_entropy_with_logits(output, targets)
            return nn.functional.mse_loss(output, targets)
        if batch.answer_mask is None or batch.labels is None:
            raise UsageError("the loss needs a batch encoded with answers")
        hidden = self._run(batch, use_cache=False).last_hidden_state
        device = hidden.device
        # the output at t predicts the token at t + 1: select outputs whose next token is an answer token
        predicts_answer = batch.answer_mask[:, 1:].to(device)
        logits = self.lm_head(hidden[:, :-1][predicts_answer]).float()
        targets = batch.labels[:, 1:].to(device)[predicts_answer]
        return nn.functional.cross_entropy(logits, targets)

    def target_outputs(self, batch: PromptBatch) -> torch.Tensor:
        """(B,) the target head's outputs (ΔCDR-SB, or the conversion logit) at each row's query position."""
        hidden = self._run(batch, use_cache=False).last_hidden_state
        # the query position of each row: its last prompt token (after any left padding)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        query = torch.tensor([layout.query_position + offset for layout, offset in zip(batch.layouts, batch.pad_offsets)],
                             device=hidden.device)
        head = self.target_head
        return head(hidden[rows, query].to(head.weight.dtype)).squeeze(-1).float()

    @torch.no_grad()
    def predict_targets(self, samples: list[MLLMSample]) -> torch.Tensor:
        """(B,) the predicted ΔCDR-SB, or the probability of converting (a model with a target head)."""
        if self.target_head is None:
            raise UsageError("this model answers the stage; it has no progression head")
        output = self.target_outputs(self.encode(samples, with_answers=False, padding_side="left"))
        return torch.sigmoid(output) if self.target_kind == "conversion" else output

    def loss(self, samples: list[MLLMSample]) -> torch.Tensor:
        """Convenience: ``forward(encode(samples))``."""
        return self.forward(self.encode(samples, with_answers=True))

    @torch.no_grad()
    def run_prompt(self, samples: list[MLLMSample]) -> tuple[PromptBatch, torch.Tensor]:
        """One forward pass over the left-padded prompts only (e.g. inside ``record_attention``).

        Returns the batch (layouts, ``pad_offsets``) and the log-probabilities (B, V) of the first
        answer token at the query position.
        """
        prompt = self.encode(samples, with_answers=False, padding_side="left")
        hidden = self._run(prompt, use_cache=False).last_hidden_state[:, -1]
        return prompt, torch.log_softmax(self.lm_head(hidden).float(), dim=-1)

    @torch.no_grad()
    def answer_probabilities(self, samples: list[MLLMSample]) -> torch.Tensor:
        """(B, 4) probabilities of NC, SMC, MCI, AD: softmax over the four answers' log-likelihoods."""
        return torch.softmax(self.answer_log_likelihoods(samples), dim=-1)

    @torch.no_grad()
    def answer_log_likelihoods(self, samples: list[MLLMSample]) -> torch.Tensor:
        """(B, 4) summed log-probability of each complete answer (``This subject is X.`` + EOS)."""
        prompt = self.encode(samples, with_answers=False, padding_side="left")
        return self.score_answers(prompt, self.embed(prompt.input_ids, prompt.image_features)).log_likelihoods

    def score_answers(self, prompt: PromptBatch, embeds: torch.Tensor, output_attentions: bool = False) -> AnswerScores:
        """The four answers' log-likelihoods of a left-padded prompt batch given its embeddings ``embeds``
        (B, n, H) — differentiable (no ``no_grad``), so attributions differentiate exactly this scoring.

        The prompt runs once; its key/value cache is repeated for the four answers. ``output_attentions``
        also returns each layer's per-head attention of both passes (eager attention must be set).
        """
        device = self.lm_head.weight.device
        out = self.decoder(inputs_embeds=embeds.to(device), attention_mask=prompt.attention_mask.to(device),
                           position_ids=prompt.position_ids.to(device), use_cache=True,
                           output_attentions=output_attentions)
        first = torch.log_softmax(_at_least_float32(self.lm_head(out.last_hidden_state[:, -1])), dim=-1)  # (B, V)
        n_ans, batch = len(STAGES), embeds.shape[0]
        cache = getattr(out, _CACHE_ARGUMENT)  # the output field has the argument's name
        cache.batch_repeat_interleave(n_ans)
        answers, answer_attn, _ = _pad(self._answer_ids, self.tokenizer.pad_token_id, "right")
        answers, answer_attn = answers.to(device), answer_attn.to(device)
        cont_ids = answers.repeat(batch, 1)                                  # (B*4, M)
        cont_attn = answer_attn.repeat(batch, 1)
        prompt_attn = prompt.attention_mask.to(device).repeat_interleave(n_ans, 0)
        start = prompt_attn.sum(-1, keepdim=True)                            # first answer position
        positions = start + torch.arange(cont_ids.shape[1], device=device)
        cont = self.decoder(
            inputs_embeds=self.embed(cont_ids, None), attention_mask=torch.cat([prompt_attn, cont_attn], 1),
            position_ids=positions, use_cache=True, output_attentions=output_attentions, **{_CACHE_ARGUMENT: cache},
        )
        rest = torch.log_softmax(_at_least_float32(self.lm_head(cont.last_hidden_state[:, :-1])), dim=-1)
        rest = rest.gather(-1, cont_ids[:, 1:].unsqueeze(-1)).squeeze(-1) * cont_attn[:, 1:]
        first = first.repeat_interleave(n_ans, 0).gather(-1, cont_ids[:, :1]).squeeze(-1)
        return AnswerScores((first + rest.sum(-1)).reshape(batch, n_ans), cont_attn,
                            out.attentions if output_attentions else None,
                            cont.attentions if output_attentions else None)

    @torch.no_grad()
    def generate(self, samples: list[MLLMSample], max_new_tokens: int = 12) -> list[str]:
        """Greedy answers as text (use ``parse_answer`` to read the stage)."""
        prompt = self.encode(samples, with_answers=False, padding_side="left")
        device = self.lm_head.weight.device
        out = self._base().generate(
            inputs_embeds=self.embed(prompt.input_ids, prompt.image_features),
            attention_mask=prompt.attention_mask.to(device), max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
        )
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)

    def predict_labels(self, samples: list[MLLMSample]) -> list[str | None]:
        """Greedy-decoded stage per sample (None when the generated text names no stage)."""
        return [parse_answer(t) for t in self.generate(samples)]


def _at_least_float32(logits: torch.Tensor) -> torch.Tensor:
    """Logits in float32 for the log-softmax, or kept in float64 (a float64 model's derivatives are checked
    by finite differences)."""
    return logits if logits.dtype == torch.float64 else logits.float()


def _cache_argument() -> str:
    """The name under which decoder forwards take a key/value cache (``cache`` since transformers 5.2x)."""
    import inspect

    from transformers import Qwen2Model

    return "cache" if "cache" in inspect.signature(Qwen2Model.forward).parameters else "past_key_values"


_CACHE_ARGUMENT = _cache_argument()


def _pad(rows: list[list], value, side: str):
    """(tensor, attention mask, left-pad count per row) for ragged rows."""
    width = max(len(r) for r in rows)
    out, mask, offsets = [], [], []
    for r in rows:
        fill = [value] * (width - len(r))
        out.append(fill + list(r) if side == "left" else list(r) + fill)
        ones, zeros = [1] * len(r), [0] * (width - len(r))
        mask.append(zeros + ones if side == "left" else ones + zeros)
        offsets.append(width - len(r) if side == "left" else 0)
    return torch.tensor(out), torch.tensor(mask), offsets
