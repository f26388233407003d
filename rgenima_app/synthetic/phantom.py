"""A labelled head phantom: each of the 109 canonical ROIs as an anatomically placed region.

Coordinates are millimetres in RAS with the origin near the centre of the brain (roughly MNI-like).
The cerebrum is an ellipsoid whose outer shell (and medial wall) is cortex, split between the 34
Desikan-Killiany regions of each hemisphere by nearest region centre; deep structures, ventricles,
corpus callosum, cerebellum and brain stem are ellipsoids or slabs at their usual places. The layout
is crude but keeps each region where a neuroscientist expects it (hippocampus medial-temporal,
entorhinal cortex antero-medial temporal, ...), so attention maps of synthetic cohorts read sensibly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rgenima_app.imaging.roi_table import load_roi_table

# Region centres of the left hemisphere as (|x|, y, z) mm; the right hemisphere mirrors them.
DK_CENTRES = {
    "bankssts": (52, -45, 10), "caudalanteriorcingulate": (5, 20, 30), "caudalmiddlefrontal": (38, 10, 48),
    "cuneus": (8, -80, 22), "entorhinal": (25, -8, -32), "fusiform": (35, -50, -18),
    "inferiorparietal": (45, -65, 32), "inferiortemporal": (52, -30, -25), "isthmuscingulate": (8, -45, 15),
    "lateraloccipital": (30, -88, 0), "lateralorbitofrontal": (25, 32, -15), "lingual": (12, -72, -5),
    "medialorbitofrontal": (6, 42, -15), "middletemporal": (60, -30, -8), "parahippocampal": (25, -30, -15),
    "paracentral": (8, -25, 62), "parsopercularis": (50, 12, 15), "parsorbitalis": (45, 38, -8),
    "parstriangularis": (48, 28, 8), "pericalcarine": (10, -80, 8), "postcentral": (40, -30, 58),
    "posteriorcingulate": (6, -15, 38), "precentral": (40, -12, 55), "precuneus": (8, -60, 42),
    "rostralanteriorcingulate": (5, 35, 8), "rostralmiddlefrontal": (35, 42, 25), "superiorfrontal": (15, 25, 55),
    "superiorparietal": (25, -60, 58), "superiortemporal": (55, -15, -2), "supramarginal": (52, -42, 35),
    "frontalpole": (10, 65, -5), "temporalpole": (35, 15, -35), "transversetemporal": (45, -22, 10),
    "insula": (36, 0, 2),
}

# Deep structures as ellipsoids: label (left, right or bilateral) -> centre (|x|, y, z), radii (x, y, z) mm.
# Painted in this order: later entries overwrite earlier ones, so small structures come last.
DEEP_STRUCTURES = [
    ((10, 49), (12, -18, 6), (8, 14, 9)),       # thalamus
    ((11, 50), (14, 12, 12), (5, 14, 8)),       # caudate
    ((12, 51), (26, 2, 0), (6, 14, 9)),         # putamen
    ((13, 52), (20, -2, -1), (4, 8, 5)),        # pallidum
    ((28, 60), (12, -14, -10), (5, 8, 5)),      # ventral diencephalon
    ((17, 53), (28, -24, -14), (6, 18, 6)),     # hippocampus
    ((18, 54), (24, -4, -20), (7, 7, 7)),       # amygdala
    ((26, 58), (10, 12, -8), (4, 5, 4)),        # accumbens
    ((4, 43), (12, -5, 18), (5, 28, 8)),        # lateral ventricle
    ((5, 44), (32, -20, -10), (3, 9, 3)),       # inferior lateral ventricle
    ((31, 63), (22, -32, 12), (3, 5, 3)),       # choroid plexus
    ((30, 62), (20, 4, -12), (2, 2, 2)),        # vessel
    ((14,), (0, -12, 4), (2, 14, 8)),           # 3rd ventricle
    ((16,), (0, -28, -42), (10, 12, 24)),       # brain stem
    ((15,), (0, -42, -30), (4, 5, 5)),          # 4th ventricle
    ((24,), (0, -2, -24), (6, 5, 4)),           # CSF (basal cisterns)
    ((85,), (0, 10, -20), (7, 3, 3)),           # optic chiasm
]

CEREBRUM_RADII = (68.0, 85.0, 62.0)
CEREBRUM_CENTRE = (0.0, -8.0, 8.0)
CORTEX_DEPTH = 0.14            # outer fraction of the cerebrum ellipsoid that is cortex
MEDIAL_GAP_MM, MEDIAL_CORTEX_MM = 1.5, 6.0
CEREBELLUM_CENTRE, CEREBELLUM_RADII = (0.0, -62.0, -36.0), (50.0, 28.0, 22.0)
CORPUS_CALLOSUM_Y = np.linspace(-36.0, 36.0, 6)  # 5 segments, posterior to anterior: labels 251..255
WMH_BLOBS = [(-24, -10, 28), (26, 18, 26), (-30, 20, 10), (28, -30, 22), (-18, -40, 30), (20, 30, 34)]

# Mean T1w intensity (FreeSurfer T1.mgz scale, WM = 110) of each kind of tissue.
INTENSITY = {
    "white-matter": 110.0, "cortical": 72.0, "subcortical": 84.0, "ventricle": 25.0, "other": 40.0,
    "background-csf": 25.0, "scalp": 60.0,
}
SPECIFIC_INTENSITY = {10: 92, 49: 92, 13: 100, 52: 100, 16: 95, 28: 95, 60: 95, 8: 68, 47: 68,
                      17: 76, 53: 76, 18: 74, 54: 74, 31: 55, 63: 55, 30: 60, 62: 60, 85: 90, 77: 80}


@dataclass
class Phantom:
    """The base phantom of a cohort: label volume (RAS voxel order), voxel size and intensity means."""

    labels: np.ndarray          # int16, FreeSurfer labels, 0 outside the brain
    head: np.ndarray            # bool, scalp/skull shell (not labelled)
    voxel_mm: float
    affine: np.ndarray          # voxel -> RAS mm
    label_intensity: dict[int, float]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.labels.shape


def _grid(shape: int, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * (shape - 1) / 2.0
    axis = affine[0, 3] + voxel_mm * np.arange(shape)
    xyz = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).astype(np.float32)
    return xyz, affine


def _ellipsoid(xyz: np.ndarray, centre, radii, min_radius: float) -> np.ndarray:
    radii = np.maximum(np.asarray(radii, dtype=np.float32), min_radius)
    d = (xyz - np.asarray(centre, dtype=np.float32)) / radii
    return (d ** 2).sum(axis=-1) <= 1.0


def build_phantom(shape: int = 64, voxel_mm: float = 3.0) -> Phantom:
    """Build the labelled phantom on a ``shape``^3 grid of ``voxel_mm`` voxels (every ROI non-empty)."""
    xyz, affine = _grid(shape, voxel_mm)
    x = xyz[..., 0]
    left = x < 0
    min_r = float(voxel_mm)  # keeps the smallest structures at least a voxel thick on coarse grids
    labels = np.zeros(xyz.shape[:3], dtype=np.int16)

    rho = np.sqrt((((xyz - np.asarray(CEREBRUM_CENTRE, np.float32)) / np.asarray(CEREBRUM_RADII, np.float32)) ** 2).sum(-1))
    cerebrum = rho <= 1.0
    head = (rho > 1.04) & (rho <= 1.16)
    cortex = cerebrum & ((rho > 1.0 - CORTEX_DEPTH) | (np.abs(x) < MEDIAL_GAP_MM + MEDIAL_CORTEX_MM))
    cortex &= np.abs(x) >= MEDIAL_GAP_MM
    cerebrum &= np.abs(x) >= MEDIAL_GAP_MM
    labels[cerebrum & left] = 2
    labels[cerebrum & ~left] = 41
    _paint_cortex(labels, xyz, cortex, left)

    cerebellum = _ellipsoid(xyz, CEREBELLUM_CENTRE, CEREBELLUM_RADII, min_r)
    inner = _ellipsoid(xyz, CEREBELLUM_CENTRE, np.asarray(CEREBELLUM_RADII) * 0.55, min_r)
    labels[cerebellum & left] = 8
    labels[cerebellum & ~left] = 47
    labels[inner & left] = 7
    labels[inner & ~left] = 46

    for segment, label in enumerate(range(251, 256)):
        y0, y1 = CORPUS_CALLOSUM_Y[segment], CORPUS_CALLOSUM_Y[segment + 1]
        slab = (np.abs(x) < max(9.0, min_r)) & (xyz[..., 1] >= y0) & (xyz[..., 1] < y1)
        slab &= np.abs(xyz[..., 2] - 28.0) <= max(3.0, min_r)
        labels[slab] = label

    for pair, (cx, cy, cz), radii in DEEP_STRUCTURES:
        if len(pair) == 2:
            labels[_ellipsoid(xyz, (-cx, cy, cz), radii, min_r)] = pair[0]
            labels[_ellipsoid(xyz, (cx, cy, cz), radii, min_r)] = pair[1]
        else:
            labels[_ellipsoid(xyz, (cx, cy, cz), radii, min_r)] = pair[0]
    white = np.isin(labels, (2, 41))
    for centre in WMH_BLOBS:
        labels[_ellipsoid(xyz, centre, (2.5, 2.5, 2.5), min_r) & white] = 77

    table = load_roi_table()
    counts = np.bincount(labels.ravel(), minlength=3000)
    empty = [name for label, name in zip(table["label"], table["name"]) if counts[label] == 0]
    if empty:
        raise ValueError(f"phantom grid {shape}^3 at {voxel_mm} mm is too coarse: empty ROIs {empty}")
    kind = dict(zip(table["label"], table["kind"]))
    intensity = {int(lab): float(SPECIFIC_INTENSITY.get(lab, INTENSITY[k])) for lab, k in kind.items()}
    return Phantom(labels=labels, head=head & (labels == 0), voxel_mm=voxel_mm, affine=affine, label_intensity=intensity)


def _paint_cortex(labels: np.ndarray, xyz: np.ndarray, cortex: np.ndarray, left: np.ndarray) -> None:
    """Split the cortical ribbon between the DK regions: each voxel goes to the nearest region centre.

    Centres are first moved onto the ribbon (their nearest ribbon voxel), so every region owns voxels.
    """
    table = load_roi_table()
    label_of = dict(zip(table["name"], table["label"]))
    names = list(DK_CENTRES)
    for hemi_mask, sign, hemi in ((left, -1.0, "lh"), (~left, 1.0, "rh")):
        ribbon = cortex & hemi_mask
        points = xyz[ribbon]
        centres = np.array([DK_CENTRES[n] for n in names], dtype=np.float32) * np.array([sign, 1, 1], np.float32)
        nearest_voxel = np.argmin(((points[None, :, :] - centres[:, None, :]) ** 2).sum(-1), axis=1)
        centres = points[nearest_voxel]
        owner = np.argmin(((points[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
        owner[nearest_voxel] = np.arange(len(names))  # every region keeps its own centre voxel
        region_labels = np.array([label_of[f"ctx-{hemi}-{n}"] for n in names], dtype=np.int16)
        labels[ribbon] = region_labels[owner]
