"""RiT: the ROI-wise vision transformer (docs/models.md, "RiT"; paper section 4.2.1).

Each of the 109 canonical ROIs arrives as an S×S×S patch. A patch encoder shared across ROIs maps
every patch to one D-dimensional token, a learned embedding marks the ROI's identity (the canonical
order never changes), a CLS token is prepended, and a light transformer encoder models the
dependencies between ROIs. The CLS state feeds a 4-way stage head (stage-1 training); the 109 ROI
states are the image tokens handed, frozen, to the multimodal LLM.

Two patch encoders are offered:

``"conv"`` (the paper's)
    ``Conv3d(1, D, kernel_size=S, stride=S)``: one weight per voxel and channel, S³·D weights
    (96³·768 ≈ 679 M at the paper's size). ``patch_dtype`` can keep this one layer in bfloat16.
``"strided"``
    A stack of stride-2 3×3×3 convolutions down to a few voxels, then a linear layer to D:
    a few hundred thousand weights whatever S is.

An optional per-ROI size feature (log of the ROI volume in mm³, from the morph table) is projected to
D and added to each token, so that resampling every ROI to the same S³ does not hide atrophy.

Two optional heads on the ROI output tokens (not in the paper, whose stage-1 loss reads only the CLS
state, so nothing asks the 109 tokens the LLM reads to carry their own ROI; docs/models.md, "ROI-token
supervision"):

``roi_volume_head``
    One linear probe shared by every ROI token (plus a bias per ROI) predicts the token's own ROI's
    standardised log volume. Shared, so that "this ROI's size" lies along one direction in every token.
``roi_stage_head``
    One stage head shared by every ROI token; its logits averaged over the 109 tokens are a second stage
    prediction, so each token carries stage evidence along the same directions.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rgenima_app import STAGES
from rgenima_app.imaging.roi_table import N_ROIS

PATCH_ENCODERS = ("conv", "strided")


@dataclass
class RiTConfig:
    """Hyper-parameters of a RiT; stored verbatim in the model bundle."""

    roi_size: int = 96
    n_rois: int = N_ROIS
    dim: int = 768
    depth: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    n_classes: int = len(STAGES)
    patch_encoder: str = "conv"
    #: Channels of the strided encoder's stages (ignored by ``"conv"``).
    strided_channels: tuple[int, ...] = field(default=(16, 32, 64, 128))
    use_size_feature: bool = False
    #: dtype of the "conv" patch-embedding weight ("float32" or "bfloat16"); the rest stays float32.
    patch_dtype: str = "float32"
    #: heads on the ROI output tokens (stage-1 supervision of the tokens; see the module docstring)
    roi_volume_head: bool = False
    roi_stage_head: bool = False

    def __post_init__(self):
        self.strided_channels = tuple(int(c) for c in self.strided_channels)
        if self.patch_encoder not in PATCH_ENCODERS:
            raise ValueError(f"patch_encoder must be one of {PATCH_ENCODERS}, not {self.patch_encoder!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.patch_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"patch_dtype must be float32 or bfloat16, not {self.patch_dtype!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["strided_channels"] = list(self.strided_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RiTConfig":
        return cls(**d)


@dataclass
class RiTOutput:
    """``tokens`` (B, n_rois, D): ROI states; ``cls`` (B, D); ``logits`` (B, n_classes).

    With the token heads: ``roi_logits`` (B, n_classes), the stage logits of the ROI tokens averaged;
    ``volume_error`` (B, n_rois), each token's predicted minus actual standardised log volume of its ROI.
    """

    tokens: torch.Tensor
    cls: torch.Tensor
    logits: torch.Tensor
    roi_logits: torch.Tensor | None = None
    volume_error: torch.Tensor | None = None


class ConvPatchEmbed(nn.Module):
    """The paper's patch embedding: a Conv3d whose kernel spans the whole ROI (kernel = stride = S)."""

    def __init__(self, roi_size: int, dim: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.proj = nn.Conv3d(1, dim, kernel_size=roi_size, stride=roi_size, dtype=dtype)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # (N, S, S, S) -> (N, D)
        weight = self.proj.weight
        # kernel = stride = S makes the convolution one matrix product over the flattened patch;
        # computing it that way is the same function, faster on CPU, and keeps a bf16 weight usable.
        flat = patches.reshape(patches.shape[0], -1).to(weight.dtype)
        out = nn.functional.linear(flat, weight.reshape(weight.shape[0], -1), self.proj.bias)
        return out.float()


class StridedPatchEmbed(nn.Module):
    """A light patch encoder: stride-2 convolutions until ≤ 4 voxels a side, then a linear layer."""

    def __init__(self, roi_size: int, dim: int, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = roi_size, 1
        for c_out in channels:
            if size <= 4:
                break
            layers += [nn.Conv3d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(1, c_out), nn.GELU()]
            size, c_in = math.ceil(size / 2), c_out
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in * size**3, dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:  # (N, S, S, S) -> (N, D)
        x = self.convs(patches.unsqueeze(1).float())
        return self.proj(x.flatten(1))


class RiT(nn.Module):
    """ROI-wise vision transformer: (B, n_rois, S, S, S) patches -> ROI tokens, CLS state, stage logits."""

    def __init__(self, config: RiTConfig | None = None):
        super().__init__()
        self.config = config = config or RiTConfig()
        if config.patch_encoder == "conv":
            dtype = torch.bfloat16 if config.patch_dtype == "bfloat16" else torch.float32
            self.patch_embed: nn.Module = ConvPatchEmbed(config.roi_size, config.dim, dtype)
        else:
            self.patch_embed = StridedPatchEmbed(config.roi_size, config.dim, config.strided_channels)
        self.roi_embed = nn.Parameter(torch.zeros(1, config.n_rois, config.dim))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim))
        self.size_proj = nn.Linear(1, config.dim) if config.use_size_feature else None
        if config.use_size_feature or config.roi_volume_head:
            # per-ROI standardisation of the log volumes, fitted on training participants (stage 1) and
            # saved with the weights; a 10% atrophy is a 0.1 change of a log volume near 8 otherwise
            self.register_buffer("size_mean", torch.zeros(config.n_rois))
            self.register_buffer("size_std", torch.ones(config.n_rois))
        self.volume_head = nn.Linear(config.dim, 1) if config.roi_volume_head else None
        self.volume_bias = nn.Parameter(torch.zeros(config.n_rois)) if config.roi_volume_head else None
        self.roi_stage_head = nn.Linear(config.dim, config.n_classes) if config.roi_stage_head else None
        layer = nn.TransformerEncoderLayer(
            config.dim, config.heads, int(config.dim * config.mlp_ratio), config.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.n_classes)
        nn.init.trunc_normal_(self.roi_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, patches: torch.Tensor, log_volumes: torch.Tensor | None = None) -> RiTOutput:
        """``patches`` (B, n_rois, S, S, S); ``log_volumes`` (B, n_rois), needed iff the size feature is on."""
        cfg = self.config
        expected = (cfg.n_rois, cfg.roi_size, cfg.roi_size, cfg.roi_size)
        if patches.dim() != 5 or tuple(patches.shape[1:]) != expected:
            raise ValueError(f"RiT expects patches of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(patches.shape)}")
        batch = patches.shape[0]
        tokens = self.patch_embed(patches.reshape(batch * cfg.n_rois, *expected[1:]))
        tokens = tokens.reshape(batch, cfg.n_rois, cfg.dim) + self.roi_embed
        z = None
        if self.size_proj is not None or self.volume_head is not None:
            if log_volumes is None or tuple(log_volumes.shape) != (batch, cfg.n_rois):
                raise ValueError(f"this RiT uses the ROI volumes (size feature or volume head): pass log_volumes "
                                 f"of shape ({batch}, {cfg.n_rois})")
            z = (log_volumes.float() - self.size_mean) / self.size_std
        if self.size_proj is not None:
            tokens = tokens + self.size_proj(z.unsqueeze(-1))
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        x = self.norm(self.encoder(x))
        cls, roi_states = x[:, 0], x[:, 1:]
        out = RiTOutput(tokens=roi_states, cls=cls, logits=self.head(cls))
        if self.roi_stage_head is not None:
            out.roi_logits = self.roi_stage_head(roi_states).mean(dim=1)
        if self.volume_head is not None:
            out.volume_error = self.volume_head(roi_states).squeeze(-1) + self.volume_bias - z
        return out

    def fit_size_standardization(self, log_volumes: torch.Tensor) -> None:
        """Set the per-ROI mean and standard deviation of the log volumes from training samples (N, n_rois)."""
        if not hasattr(self, "size_mean"):
            return
        values = log_volumes.float().to(self.size_mean.device)
        self.size_mean.copy_(values.mean(dim=0))
        self.size_std.copy_(values.std(dim=0, unbiased=False).clamp_min(1e-3))

    def features(self, patches: torch.Tensor, log_volumes: torch.Tensor | None = None):
        """(tokens, pooled) for the fusion baselines: the ROI tokens and the CLS state."""
        out = self.forward(patches, log_volumes)
        return out.tokens, out.cls


def log_volumes(volume_mm3: torch.Tensor) -> torch.Tensor:
    """The size feature: log(1 + volume in mm³); an absent ROI (volume 0) maps to 0."""
    return torch.log1p(volume_mm3.clamp_min(0).float())


def parameter_report(model: nn.Module) -> dict[str, int]:
    """Parameter count per top-level child plus ``total`` (and bytes, at each parameter's dtype)."""
    report: dict[str, int] = {}
    for name, child in model.named_children():
        report[name] = sum(p.numel() for p in child.parameters())
    direct = sum(p.numel() for n, p in model.named_parameters(recurse=False))
    if direct:
        report["(own parameters)"] = direct
    report["total"] = sum(p.numel() for p in model.parameters())
    report["bytes"] = sum(p.numel() * p.element_size() for p in model.parameters())
    return report


def patch_embedding_weights(roi_size: int, dim: int) -> int:
    """Weights of the paper's conv patch embedding, without building it: S³·D + D."""
    return roi_size**3 * dim + dim
