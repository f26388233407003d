"""Whole-brain baseline: a 3D ResNet on the conformed T1w volume giving one token (the paper's Med3D role).

The architecture and parameter names follow MedicalNet (Chen et al. 2019, "Med3D"): a 7³ stride-2 stem,
four residual stages (the last two dilated instead of strided), shortcut type A (parameter-free,
zero-padded) or B (1×1×1 convolution + batch norm). MedicalNet's segmentation head (``conv_seg``) is
replaced by global average pooling and a linear projection to one ``out_dim`` token (256 in the paper).

Pretrained weights cannot be downloaded here: ``load_medicalnet_weights`` reads a MedicalNet checkpoint
that the user converted to safetensors (keys as in MedicalNet's ``state_dict``, an optional
``module.`` prefix from DataParallel is stripped, ``conv_seg.*`` is ignored). Without a file the
network trains from scratch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from rgenima_app import STAGES
from rgenima_app.errors import MissingInputError

#: Blocks per stage for each MedicalNet depth, and whether it uses bottleneck blocks.
DEPTHS = {10: ((1, 1, 1, 1), False), 18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False),
          50: ((3, 4, 6, 3), True)}


@dataclass
class WholeBrainConfig:
    depth: int = 10
    shortcut: str = "B"
    width: int = 64          # channels of the first stage (MedicalNet: 64)
    out_dim: int = 256
    n_classes: int = len(STAGES)

    def __post_init__(self):
        if self.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, not {self.depth}")
        if self.shortcut not in ("A", "B"):
            raise ValueError("shortcut must be 'A' (zero-padded identity) or 'B' (projection)")

    def to_dict(self) -> dict:
        return asdict(self)


def _conv3(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class _ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample, then zero-pad the new channels."""

    def __init__(self, c_out: int, stride: int):
        super().__init__()
        self.c_out, self.stride = c_out, stride

    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride, :: self.stride]
        pad = x.new_zeros(x.shape[0], self.c_out - x.shape[1], *x.shape[2:])
        return torch.cat([x, pad], dim=1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = _conv3(c_in, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class WholeBrainResNet(nn.Module):
    """(B, 1, X, Y, Z) volume -> one token (B, 1, out_dim), its pooled form and 4-way stage logits."""

    def __init__(self, config: WholeBrainConfig | None = None):
        super().__init__()
        self.config = cfg = config or WholeBrainConfig()
        blocks, bottleneck = DEPTHS[cfg.depth]
        block = Bottleneck if bottleneck else BasicBlock
        w = cfg.width
        self.conv1 = nn.Conv3d(1, w, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(w)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self._c = w
        self.layer1 = self._stage(block, w, blocks[0])
        self.layer2 = self._stage(block, 2 * w, blocks[1], stride=2)
        self.layer3 = self._stage(block, 4 * w, blocks[2], dilation=2)
        self.layer4 = self._stage(block, 8 * w, blocks[3], dilation=4)
        self.proj = nn.Linear(self._c, cfg.out_dim)
        self.head = nn.Linear(cfg.out_dim, cfg.n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def _stage(self, block, planes, n, stride=1, dilation=1):
        downsample = None
        if stride != 1 or self._c != planes * block.expansion:
            if self.config.shortcut == "A":
                downsample = _ShortcutA(planes * block.expansion, stride)
            else:
                downsample = nn.Sequential(nn.Conv3d(self._c, planes * block.expansion, 1, stride=stride,
                                                     bias=False), nn.BatchNorm3d(planes * block.expansion))
        layers = [block(self._c, planes, stride, dilation, downsample)]
        self._c = planes * block.expansion
        layers += [block(self._c, planes, dilation=dilation) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def features(self, volume: torch.Tensor):
        """(tokens (B, 1, out_dim), pooled (B, out_dim)) of a (B, 1, X, Y, Z) volume."""
        if volume.dim() != 5 or volume.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, X, Y, Z) volume, got {tuple(volume.shape)}")
        x = self.maxpool(torch.relu(self.bn1(self.conv1(volume.float()))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        pooled = self.proj(x.mean(dim=(2, 3, 4)))
        return pooled.unsqueeze(1), pooled

    def forward(self, volume: torch.Tensor):
        """Stage logits (B, n_classes)."""
        return self.head(self.features(volume)[1])


def load_medicalnet_weights(model: WholeBrainResNet, path: str | Path) -> list[str]:
    """Load a MedicalNet-format backbone from a safetensors file into ``model``.

    Returns the names of the parameters left at their initial values (the projection and the head,
    which MedicalNet does not have). Raises MissingInputError when the file is missing, is not
    safetensors, or lacks backbone tensors / has tensors of the wrong shape (wrong depth or shortcut).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"MedicalNet weights not found: {path}",
                                "give a safetensors file converted from a MedicalNet checkpoint")
    if path.suffix != ".safetensors":
        raise MissingInputError(f"{path} is not a .safetensors file; rgenima never unpickles weights",
                                "convert it once with safetensors.torch.save_file(state_dict, 'x.safetensors')")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise MissingInputError(f"cannot read MedicalNet weights {path}: {exc}") from exc
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("conv_seg.")}
    own = model.state_dict()
    backbone = {k for k in own if not k.startswith(("proj.", "head."))}
    missing = sorted(backbone - state.keys())
    wrong = sorted(k for k in backbone & state.keys() if tuple(state[k].shape) != tuple(own[k].shape))
    if missing or wrong:
        raise MissingInputError(
            f"{path} does not match a MedicalNet resnet{model.config.depth} (shortcut {model.config.shortcut}): "
            f"{len(missing)} missing tensor(s) {missing[:3]}, {len(wrong)} of the wrong shape {wrong[:3]}",
            "set WholeBrainConfig depth/shortcut to the checkpoint's (e.g. resnet_10_23dataset: depth 10)",
        )
    model.load_state_dict({k: state[k] for k in backbone}, strict=False)
    return sorted(set(own) - backbone)
