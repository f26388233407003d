"""R-GenIMA: image-token insertion, answer-only loss, answer probabilities, generation, attention hooks."""
from __future__ import annotations

import pytest
import torch

from rgenima_app import STAGES
from rgenima_app.errors import ProcessingError
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.attention import record_attention
from rgenima_app.models.finetune import set_finetune_mode, trainable_parameters
from rgenima_app.models.mllm import MLLMSample, RGenIMA
from rgenima_app.models.rit import RiT, RiTConfig

D = 16
GENOME = "APOE: rs429358 C/T 1, rs7412 C/T 0; BIN1: rs744373 A/G 2; CLU: rs11136000 C/T 1;"


@pytest.fixture
def model(tiny_llm):
    llm, tok, desc = tiny_llm
    return RGenIMA(llm, tok, image_dim=D, llm_description=desc).eval()


def samples():
    return [MLLMSample(GENOME, torch.randn(N_ROIS, D), "AD"),
            MLLMSample(None, torch.randn(N_ROIS, D), "NC"),
            MLLMSample("CLU: rs1 A/G 0;", None, "SMC")]


def test_placeholder_expands_to_109_connector_embeddings(model):
    batch = model.encode(samples())
    embeds = model.embed(batch.input_ids, batch.image_features)
    table = model.decoder.get_input_embeddings()
    projected = model.connector(batch.image_features)
    image_rows = [0, 1]
    for row, layout in enumerate(batch.layouts):
        ids = batch.input_ids[row]
        slots = (ids == model.image_token_id).nonzero().flatten().tolist()
        if layout.image_span is None:
            assert slots == []
            assert torch.equal(embeds[row], table(ids))
            continue
        start, stop = layout.image_span
        assert stop - start == N_ROIS and slots == list(range(start, stop))
        assert torch.equal(embeds[row, start:stop], projected[image_rows.index(row)])
        others = torch.ones(len(ids), dtype=torch.bool)
        others[start:stop] = False
        assert torch.equal(embeds[row, others], table(ids[others]))
    # the image sits after the genome text, which sits where the layout says
    lay = batch.layouts[0]
    assert lay.genome_span[1] <= lay.image_span[0]
    text = model.tokenizer.decode(batch.input_ids[0, lay.genome_span[0]:lay.genome_span[1]])
    assert text.strip() == GENOME
    assert len(lay.genome_offsets) == lay.genome_span[1] - lay.genome_span[0]
    assert lay.genome_offsets[-1][1] == len(GENOME)


def test_count_mismatch_is_an_error(model):
    batch = model.encode(samples())
    with pytest.raises(ProcessingError, match="image placeholder positions"):
        model.embed(batch.input_ids, batch.image_features[:1])
    with pytest.raises(ProcessingError, match="do not match"):
        model.encode([MLLMSample(GENOME, torch.randn(N_ROIS - 1, D), "AD")])


def test_loss_only_on_answer_tokens(model):
    batch = model.encode(samples())
    loss = model(batch)
    # labels are the answer's tokens (+ EOS) and nothing else
    for row, s in enumerate(samples()):
        kept = batch.labels[row][batch.labels[row] != -100].tolist()
        assert kept == model._answer_ids[STAGES.index(s.label)]
    # perturbing the labels at prompt positions changes nothing
    noisy = batch.labels.clone()
    prompt_positions = ~batch.answer_mask
    noisy[prompt_positions] = torch.randint(0, len(model.tokenizer), (int(prompt_positions.sum()),))
    batch.labels = noisy
    assert torch.equal(model(batch), loss)
    # and it is the mean NLL of the answer tokens under the full causal LM
    logits = model.llm(inputs_embeds=model.embed(batch.input_ids, batch.image_features),
                       attention_mask=batch.attention_mask).logits
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    target = batch.input_ids[:, 1:]
    sel = batch.answer_mask[:, 1:]
    manual = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)[sel].mean()
    assert torch.allclose(loss, manual, atol=1e-5)
    # a different answer changes the loss
    other = samples()
    other[0].label = "NC"
    assert not torch.allclose(model.loss(other), loss)


def test_answer_probabilities(model):
    batch_samples = samples()
    probs = model.answer_probabilities(batch_samples)
    assert probs.shape == (3, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(3), atol=1e-6)
    # equals scoring each complete answer with a plain full-sequence forward, one sample at a time
    for row, s in enumerate(batch_samples):
        scores = []
        for label in STAGES:
            one = model.encode([MLLMSample(s.genome_text, s.image_tokens, label)])
            logits = model.llm(inputs_embeds=model.embed(one.input_ids, one.image_features)).logits
            logp = torch.log_softmax(logits[0, :-1].float(), -1)
            tgt = one.input_ids[0, 1:]
            scores.append(logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)[one.answer_mask[0, 1:]].sum())
        assert torch.allclose(torch.softmax(torch.stack(scores), 0), probs[row], atol=1e-5)


def test_generation_is_greedy_and_consistent(model):
    batch_samples = samples()
    _, first_logp = model.run_prompt(batch_samples)
    texts = model.generate(batch_samples, max_new_tokens=3)
    assert len(texts) == 3
    prompt = model.encode(batch_samples, with_answers=False, padding_side="left")
    out = model._base().generate(inputs_embeds=model.embed(prompt.input_ids, prompt.image_features),
                                 attention_mask=prompt.attention_mask, max_new_tokens=1, do_sample=False,
                                 pad_token_id=model.tokenizer.pad_token_id)
    assert out[:, -1].tolist() == first_logp.argmax(-1).tolist()
    assert len(model.predict_labels(batch_samples)) == 3


def test_gradients_reach_connector_not_frozen_rit(fresh_tiny_llm):
    llm, tok, desc = fresh_tiny_llm
    rit = RiT(RiTConfig(roi_size=8, dim=D, depth=1, heads=2))
    model = RGenIMA(llm, tok, image_dim=D, image_encoder=rit, llm_description=desc)
    set_finetune_mode(model, "full")
    model.train()
    assert not rit.training
    tokens = rit(torch.randn(2, N_ROIS, 8, 8, 8)).tokens
    loss = model.loss([MLLMSample(GENOME, tokens[0], "MCI"), MLLMSample(GENOME, tokens[1], "AD")])
    loss.backward()
    assert model.connector.weight.grad is not None and model.connector.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in rit.parameters())
    assert model.llm.model.layers[0].self_attn.q_proj.weight.grad is not None


@pytest.mark.parametrize("fmt", ["verbose", "compact"])
def test_full_length_step(fresh_tiny_llm, snp_text, fmt):
    """Forward + backward with 109 ROI tokens and a ~1,000-SNP genome text."""
    llm, tok, desc = fresh_tiny_llm
    model = RGenIMA(llm, tok, image_dim=D, llm_description=desc).train()
    text = snp_text(1000, fmt)
    batch = model.encode([MLLMSample(text, torch.randn(N_ROIS, D), "AD")])
    lay = batch.layouts[0]
    assert lay.image_span[1] - lay.image_span[0] == N_ROIS
    assert lay.genome_span[1] - lay.genome_span[0] > (2000 if fmt == "verbose" else 100)
    loss = model(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.connector.weight.grad.abs().sum() > 0


def test_finetune_modes(fresh_tiny_llm):
    llm, tok, desc = fresh_tiny_llm
    model = RGenIMA(llm, tok, image_dim=D, llm_description=desc)
    set_finetune_mode(model, "frozen")
    assert not any(p.requires_grad for p in model.llm.parameters())
    assert trainable_parameters(model)["trainable"] == sum(p.numel() for p in model.connector.parameters())
    set_finetune_mode(model, "lora")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or n.startswith("connector.") for n in names)
    loss = model.loss(samples()[:1])
    loss.backward()
    assert model.connector.weight.grad is not None


def test_attention_record_matches_output_attentions(model):
    batch_samples = samples()[:2]
    with record_attention(model.llm) as rec:
        prompt, _ = model.run_prompt(batch_samples)
    assert model.llm.config._attn_implementation == "sdpa"  # restored
    n = prompt.input_ids.shape[1]
    assert len(rec.maps) == model.llm.config.num_hidden_layers
    assert all(m.shape == (2, n, n) for m in rec.maps)
    real = prompt.attention_mask.bool()
    rows = rec.maps[0][0][real[0]]
    assert torch.allclose(rows.sum(-1), torch.ones(rows.shape[0]), atol=1e-5)
    # the same head means as transformers' own output_attentions=True
    model.llm.set_attn_implementation("eager")
    try:
        out = model.llm(inputs_embeds=model.embed(prompt.input_ids, prompt.image_features),
                        attention_mask=prompt.attention_mask, position_ids=prompt.position_ids,
                        output_attentions=True)
    finally:
        model.llm.set_attn_implementation("sdpa")
    for mine, theirs in zip(rec.maps, out.attentions):
        assert torch.allclose(mine[real], theirs.mean(1)[real], atol=1e-6)
    # streaming: a callback sees each layer in order and nothing is stored
    seen = []
    with record_attention(model.llm, store=False, on_layer=lambda i, m: seen.append((i, tuple(m.shape)))) as rec:
        model.run_prompt(batch_samples[:1])
    assert [i for i, _ in seen] == list(range(model.llm.config.num_hidden_layers))
    assert all(m is None for m in rec.maps)


@pytest.mark.parametrize("kind", ["progression", "conversion"])
def test_target_head_reads_the_query_position_and_learns_its_target(fresh_tiny_llm, kind):
    """The progression head: its output at the query position does not depend on padding (left or right,
    batch mates of other lengths), starts at its initial value, and a few steps fit two participants'
    targets (squared error for ΔCDR-SB, cross-entropy for conversion) through the LLM and the connector."""
    from rgenima_app.models.prompt import target_template

    llm, tok, desc = fresh_tiny_llm
    n = 4  # image tokens: few, to keep the steps cheap
    model = RGenIMA(llm, tok, image_dim=D, n_image_tokens=n, llm_description=desc,
                    prompt_template=target_template(kind, 24))
    set_finetune_mode(model, "full")
    model.set_target(kind, initial=0.5)
    a = MLLMSample(GENOME, torch.randn(n, D), target=2.0 if kind == "progression" else 1.0)
    b = MLLMSample("CLU: rs1 A/G 0;", torch.randn(n, D), target=0.0)
    start = model.predict_targets([a, b])
    expected = 0.5 if kind == "progression" else torch.sigmoid(torch.tensor(0.5)).item()
    assert torch.allclose(start, torch.full((2,), expected), atol=1e-6)
    with pytest.raises(Exception, match="target value"):
        model.loss([MLLMSample(GENOME, torch.randn(n, D))])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = model.loss([a, b])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.connector.weight.grad.abs().sum() > 0 and model.target_head.weight.grad.abs().sum() > 0
    assert losses[-1] < 0.2 * losses[0]
    model.eval()
    together = model.predict_targets([a, b])
    alone = torch.cat([model.predict_targets([a]), model.predict_targets([b])])
    assert torch.allclose(together, alone, atol=1e-4)               # left padding does not move the query
    right = model.target_outputs(model.encode([a, b], with_answers=True))  # right-padded training batch
    left = model.target_outputs(model.encode([a, b], with_answers=False, padding_side="left"))
    assert torch.allclose(right, left, atol=1e-4)
    assert together[0] > together[1]                                 # it learned which one progresses
