"""Whole-brain 3D ResNet, genetic encoders and the fusion baselines (†, ‡)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from rgenima_app.errors import MissingInputError, UsageError
from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.fusion import FusionClassifier
from rgenima_app.models.genetic import DosageMLP, SnpBert, SnpBertConfig
from rgenima_app.models.rit import RiT, RiTConfig
from rgenima_app.models.wholebrain import WholeBrainConfig, WholeBrainResNet, load_medicalnet_weights

VOL = (1, 1, 24, 24, 24)


@pytest.mark.parametrize("depth,shortcut", [(10, "A"), (10, "B"), (50, "B")])
def test_wholebrain_shapes(depth, shortcut):
    net = WholeBrainResNet(WholeBrainConfig(depth=depth, shortcut=shortcut, width=4, out_dim=16)).eval()
    tokens, pooled = net.features(torch.randn(2, *VOL[1:]))
    assert tokens.shape == (2, 1, 16) and pooled.shape == (2, 16)
    assert net(torch.randn(2, *VOL[1:])).shape == (2, 4)


def test_medicalnet_weights_round_trip(tmp_path):
    """A MedicalNet-style checkpoint (DataParallel prefix, segmentation head) loads into the backbone."""
    source = WholeBrainResNet(WholeBrainConfig(depth=10, width=4, out_dim=16))
    state = {f"module.{k}": v for k, v in source.state_dict().items() if not k.startswith(("proj.", "head."))}
    state["module.conv_seg.0.weight"] = torch.zeros(3)
    file = tmp_path / "resnet_10.safetensors"
    save_file(state, str(file))
    target = WholeBrainResNet(WholeBrainConfig(depth=10, width=4, out_dim=16))
    untouched = load_medicalnet_weights(target, file)
    assert set(untouched) == {"proj.weight", "proj.bias", "head.weight", "head.bias"}
    assert torch.equal(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)

    with pytest.raises(MissingInputError, match="resnet18"):
        load_medicalnet_weights(WholeBrainResNet(WholeBrainConfig(depth=18, width=4)), file)
    pickled = tmp_path / "resnet_10.pth"
    pickled.write_bytes(b"not read")
    with pytest.raises(MissingInputError, match="never unpickles"):
        load_medicalnet_weights(target, pickled)
    with pytest.raises(MissingInputError, match="not found"):
        load_medicalnet_weights(target, tmp_path / "absent.safetensors")


def test_dosage_mlp():
    mlp = DosageMLP(n_snps=50, hidden=(16, 8))
    assert mlp(torch.randint(0, 3, (4, 50))).shape == (4, 4)
    tokens, mask, pooled = mlp.features(torch.rand(4, 50) * 2)
    assert tokens.shape == (4, 1, 8) and mask.all() and pooled.shape == (4, 8)
    with pytest.raises(ValueError, match="dosages"):
        mlp(torch.zeros(4, 49))


def small_bert(tokenizer, max_len=512):
    return SnpBert(tokenizer, SnpBertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=64, max_position_embeddings=max_len, dropout=0.0))


def test_snp_bert(tiny_llm, snp_text):
    _, tokenizer, _ = tiny_llm
    bert = small_bert(tokenizer).eval()
    ids, attn = bert.tokenize([snp_text(10), snp_text(3, seed=1)])
    tokens, mask, pooled = bert.features(ids, attn)
    assert tokens.shape == (2, ids.shape[1] + 1, 32) and mask.shape == (2, ids.shape[1] + 1)
    assert mask[1].sum() == attn[1].sum() + 1  # CLS + real tokens
    assert bert(ids, attn).shape == (2, 4)
    # padding does not change a sample's result
    alone = bert(*bert.tokenize([snp_text(3, seed=1)]))
    assert torch.allclose(alone, bert(ids, attn)[1:], atol=1e-5)
    with pytest.raises(UsageError, match="compact"):
        small_bert(tokenizer, max_len=16).tokenize([snp_text(30)])


@pytest.mark.parametrize("mode", ["concat", "cross"])
@pytest.mark.parametrize("image", ["rit", "wholebrain"])
def test_fusion(tiny_llm, snp_text, mode, image):
    _, tokenizer, _ = tiny_llm
    if image == "rit":
        encoder = RiT(RiTConfig(roi_size=8, dim=16, depth=1, heads=2))
        x, dim = torch.randn(2, N_ROIS, 8, 8, 8), 16
    else:
        encoder = WholeBrainResNet(WholeBrainConfig(width=4, out_dim=16))
        x, dim = torch.randn(2, *VOL[1:]), 16
    bert = small_bert(tokenizer)
    model = FusionClassifier(encoder, bert, image_dim=dim, genetic_dim=32, mode=mode, dim=32, heads=2)
    logits = model(x, bert.tokenize([snp_text(5), snp_text(8, seed=2)]))
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert encoder.patch_embed.proj.weight.grad is not None if image == "rit" else encoder.conv1.weight.grad is not None
    assert bert.cls.grad is not None and model.head.weight.grad is not None


def test_fusion_with_dosage_mlp():
    encoder = RiT(RiTConfig(roi_size=8, dim=16, depth=1, heads=2))
    mlp = DosageMLP(20, hidden=(8,))
    model = FusionClassifier(encoder, mlp, image_dim=16, genetic_dim=8, mode="cross", dim=16, heads=2)
    assert model(torch.randn(3, N_ROIS, 8, 8, 8), (torch.rand(3, 20),)).shape == (3, 4)
