"""Separable trilinear resampling of 3-D boxes to S x S x S, as three small matrix products.

Trilinear interpolation factorises over the axes: resampling a box C (a x b x c) at positions
p (S per axis) is ``Wa @ C @ Wb @ Wc`` with one sparse 1-D weight matrix per axis (two non-zeros
per row). Done as dense matmuls this is ~10x faster on a CPU than ``F.interpolate`` on the same
box (BLAS instead of eight gathers per output voxel), identical to float32 rounding, and it takes
arbitrary fractional positions, which the fixed-physical-scale ("fit") mode needs. Samples whose
interpolation corners fall outside the box read zero.
"""
from __future__ import annotations

import torch


def stretch_positions(n: int, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Positions that map a length-``n`` axis onto ``size`` samples end to end.

    The first and last samples sit on the centres of the first and last voxels (``align_corners``),
    which is what ``scipy.ndimage.zoom(order=1)`` does.
    """
    if n == 1:
        return torch.zeros(size, dtype=torch.float64, device=device)
    return torch.linspace(0.0, n - 1.0, size, dtype=torch.float64, device=device)


def centred_positions(n: int, size: int, step: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """``size`` positions ``step`` voxels apart, centred on the centre of a length-``n`` axis."""
    offsets = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    return (n - 1) / 2.0 + offsets * step


def linear_weights(positions: torch.Tensor, n: int, scale: float = 1.0) -> torch.Tensor:
    """The (len(positions) x n) matrix of 1-D linear interpolation at ``positions`` (voxel units).

    Corners outside [0, n-1] are dropped (they read zero). ``scale`` multiplies every weight, so
    an intensity normalisation costs nothing extra.
    """
    rows = torch.arange(len(positions), device=positions.device)
    lower = torch.floor(positions)
    frac = positions - lower
    lower = lower.long()
    weights = torch.zeros(len(positions), n, dtype=torch.float32, device=positions.device)
    for corner, w in ((lower, 1.0 - frac), (lower + 1, frac)):
        inside = (corner >= 0) & (corner < n)
        weights.index_put_((rows[inside], corner[inside]), (w[inside] * scale).to(torch.float32), accumulate=True)
    return weights


def resample_box(box: torch.Tensor, positions: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                 out: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Trilinearly sample the 3-D ``box`` at the grid ``positions`` (one vector per axis) into ``out``.

    ``out`` has shape (len(p0), len(p1), len(p2)) and lives on ``box``'s device.
    """
    a, b, c = box.shape
    w0 = linear_weights(positions[0], a, scale)
    w1 = linear_weights(positions[1], b)
    w2 = linear_weights(positions[2], c)
    s0, s1 = len(positions[0]), len(positions[1])
    step = (w0 @ box.reshape(a, b * c)).reshape(s0, b, c)  # axis 0
    step = torch.matmul(w1, step)  # axis 1, broadcast over the s0 slabs: (s0, s1, c)
    return torch.matmul(step, w2.T, out=out)  # axis 2
