"""RiT: token shapes, the conv patch embedding's meaning, options and parameter counts."""
from __future__ import annotations

import pytest
import torch

from rgenima_app.imaging.roi_table import N_ROIS
from rgenima_app.models.rit import RiT, RiTConfig, log_volumes, parameter_report, patch_embedding_weights

S, D = 8, 32


def small(**kw) -> RiT:
    return RiT(RiTConfig(roi_size=S, dim=D, depth=2, heads=4, dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("encoder", ["conv", "strided"])
def test_shapes(encoder):
    rit = small(patch_encoder=encoder, strided_channels=(4, 8))
    out = rit(torch.randn(3, N_ROIS, S, S, S))
    assert out.tokens.shape == (3, N_ROIS, D)
    assert out.cls.shape == (3, D)
    assert out.logits.shape == (3, 4)
    tokens, pooled = rit.features(torch.randn(2, N_ROIS, S, S, S))
    assert tokens.shape == (2, N_ROIS, D) and pooled.shape == (2, D)


def test_conv_patch_embedding_is_the_papers_conv3d():
    """The flattened matmul equals Conv3d(kernel = stride = S) on each ROI patch."""
    rit = small()
    patches = torch.randn(5, S, S, S)
    conv = rit.patch_embed.proj
    reference = conv(patches.unsqueeze(1)).flatten(1)  # (5, D, 1, 1, 1) -> (5, D)
    assert torch.allclose(rit.patch_embed(patches), reference, atol=1e-5)
    assert tuple(conv.weight.shape) == (D, 1, S, S, S) and conv.stride == (S, S, S)


def test_roi_identity_matters():
    """Identical patches in every ROI still give different tokens (the ROI embedding marks identity)."""
    rit = small()
    out = rit(torch.ones(1, N_ROIS, S, S, S))
    assert not torch.allclose(out.tokens[0, 0], out.tokens[0, 1])


def test_size_feature():
    rit = small(use_size_feature=True)
    patches = torch.randn(1, N_ROIS, S, S, S)
    vol = log_volumes(torch.full((1, N_ROIS), 1000.0))
    a = rit(patches, vol).tokens
    b = rit(patches, vol * 0.5).tokens
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="log_volumes"):
        rit(patches)
    assert log_volumes(torch.tensor([0.0, -3.0]))[1] == 0  # absent ROI


def test_wrong_patch_shape():
    with pytest.raises(ValueError, match="RiT expects patches"):
        small()(torch.randn(1, N_ROIS - 1, S, S, S))


def test_bfloat16_patch_weight():
    rit = small(patch_dtype="bfloat16")
    assert rit.patch_embed.proj.weight.dtype == torch.bfloat16
    out = rit(torch.randn(1, N_ROIS, S, S, S))
    assert out.tokens.dtype == torch.float32 and torch.isfinite(out.tokens).all()


def test_parameter_report():
    rit = small()
    report = parameter_report(rit)
    assert report["patch_embed"] == patch_embedding_weights(S, D)
    assert report["total"] == sum(p.numel() for p in rit.parameters())
    # the paper's size: 96^3 * 768 weights (+ bias) in the patch embedding alone
    assert patch_embedding_weights(96, 768) == 96**3 * 768 + 768
    big = {enc: parameter_report(RiT(RiTConfig(roi_size=32, dim=64, depth=1, heads=4, patch_encoder=enc)))
           for enc in ("conv", "strided")}
    assert big["conv"]["patch_embed"] == 32**3 * 64 + 64
    assert big["strided"]["patch_embed"] < big["conv"]["patch_embed"] / 5


def test_invalid_config():
    with pytest.raises(ValueError, match="patch_encoder"):
        RiTConfig(patch_encoder="nope")
    with pytest.raises(ValueError, match="divisible"):
        RiTConfig(dim=30, heads=4)


def test_size_feature_is_standardised_per_roi_and_saved_with_the_weights():
    import torch

    from rgenima_app.models.rit import RiT, RiTConfig, log_volumes

    cfg = RiTConfig(roi_size=4, dim=16, depth=1, heads=4, patch_encoder="strided", use_size_feature=True, dropout=0.0)
    model = RiT(cfg).eval()
    volumes = torch.rand(10, cfg.n_rois) * 1000 + 3000
    model.fit_size_standardization(log_volumes(volumes))
    z = (log_volumes(volumes) - model.size_mean) / model.size_std
    assert torch.allclose(z.mean(0), torch.zeros(cfg.n_rois), atol=1e-4)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(cfg.n_rois), atol=1e-3)
    clone = RiT(cfg).eval()
    clone.load_state_dict(model.state_dict())
    patches = torch.rand(2, cfg.n_rois, 4, 4, 4)
    assert torch.equal(clone(patches, log_volumes(volumes[:2])).logits, model(patches, log_volumes(volumes[:2])).logits)


def test_roi_token_heads():
    """The volume head predicts each token's own ROI's standardised log volume; the stage head pools the tokens."""
    rit = small(roi_volume_head=True, roi_stage_head=True)
    volumes = torch.rand(6, N_ROIS) * 1000 + 3000
    rit.fit_size_standardization(log_volumes(volumes))
    patches = torch.randn(2, N_ROIS, S, S, S)
    out = rit(patches, log_volumes(volumes[:2]))
    assert out.roi_logits.shape == (2, 4) and out.volume_error.shape == (2, N_ROIS)
    z = (log_volumes(volumes[:2]) - rit.size_mean) / rit.size_std
    with torch.no_grad():  # a probe that predicts the bias alone: the error is bias - z
        rit.volume_head.weight.zero_()
        rit.volume_head.bias.zero_()
        rit.volume_bias.copy_(torch.arange(N_ROIS, dtype=torch.float32))
    assert torch.allclose(rit(patches, log_volumes(volumes[:2])).volume_error,
                          torch.arange(N_ROIS, dtype=torch.float32) - z, atol=1e-5)
    with torch.no_grad():  # the pooled stage logits are the mean of one shared head over the ROI tokens
        expected = rit.roi_stage_head(out.tokens).mean(dim=1)
    assert torch.allclose(out.roi_logits, expected, atol=1e-6)
    with pytest.raises(ValueError, match="volume head"):
        rit(patches)
    plain = small()(patches)
    assert plain.roi_logits is None and plain.volume_error is None
