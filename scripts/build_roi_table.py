"""Regenerate rgenima_app/data/rois.tsv, the canonical 109-ROI table.

The set is the one present in every real FreeSurfer 6/7 aparc+aseg (docs/imaging.md, "The 109 canonical ROIs"): the 68
Desikan-Killiany cortical labels (1001-1035, 2001-2035 without 1004/2004) and 41 non-cortical aseg
labels. Names are FreeSurferColorLUT's; FreeSurfer 6 calls the thalamus "Thalamus-Proper".
Order is ascending FreeSurfer label, fixed once and for all (index 1..109).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

NON_CORTICAL = {
    2: ("Left-Cerebral-White-Matter", "white-matter"),
    4: ("Left-Lateral-Ventricle", "ventricle"),
    5: ("Left-Inf-Lat-Vent", "ventricle"),
    7: ("Left-Cerebellum-White-Matter", "white-matter"),
    8: ("Left-Cerebellum-Cortex", "subcortical"),
    10: ("Left-Thalamus", "subcortical"),
    11: ("Left-Caudate", "subcortical"),
    12: ("Left-Putamen", "subcortical"),
    13: ("Left-Pallidum", "subcortical"),
    14: ("3rd-Ventricle", "ventricle"),
    15: ("4th-Ventricle", "ventricle"),
    16: ("Brain-Stem", "subcortical"),
    17: ("Left-Hippocampus", "subcortical"),
    18: ("Left-Amygdala", "subcortical"),
    24: ("CSF", "other"),
    26: ("Left-Accumbens-area", "subcortical"),
    28: ("Left-VentralDC", "subcortical"),
    30: ("Left-vessel", "other"),
    31: ("Left-choroid-plexus", "other"),
    41: ("Right-Cerebral-White-Matter", "white-matter"),
    43: ("Right-Lateral-Ventricle", "ventricle"),
    44: ("Right-Inf-Lat-Vent", "ventricle"),
    46: ("Right-Cerebellum-White-Matter", "white-matter"),
    47: ("Right-Cerebellum-Cortex", "subcortical"),
    49: ("Right-Thalamus", "subcortical"),
    50: ("Right-Caudate", "subcortical"),
    51: ("Right-Putamen", "subcortical"),
    52: ("Right-Pallidum", "subcortical"),
    53: ("Right-Hippocampus", "subcortical"),
    54: ("Right-Amygdala", "subcortical"),
    58: ("Right-Accumbens-area", "subcortical"),
    60: ("Right-VentralDC", "subcortical"),
    62: ("Right-vessel", "other"),
    63: ("Right-choroid-plexus", "other"),
    77: ("WM-hypointensities", "white-matter"),
    85: ("Optic-Chiasm", "other"),
    251: ("CC_Posterior", "white-matter"),
    252: ("CC_Mid_Posterior", "white-matter"),
    253: ("CC_Central", "white-matter"),
    254: ("CC_Mid_Anterior", "white-matter"),
    255: ("CC_Anterior", "white-matter"),
}

DK_CORTICAL = [
    "bankssts", "caudalanteriorcingulate", "caudalmiddlefrontal", None,  # 1004 corpuscallosum: unused
    "cuneus", "entorhinal", "fusiform", "inferiorparietal", "inferiortemporal", "isthmuscingulate",
    "lateraloccipital", "lateralorbitofrontal", "lingual", "medialorbitofrontal", "middletemporal",
    "parahippocampal", "paracentral", "parsopercularis", "parsorbitalis", "parstriangularis",
    "pericalcarine", "postcentral", "posteriorcingulate", "precentral", "precuneus",
    "rostralanteriorcingulate", "rostralmiddlefrontal", "superiorfrontal", "superiorparietal",
    "superiortemporal", "supramarginal", "frontalpole", "temporalpole", "transversetemporal", "insula",
]


def hemisphere(name: str) -> str:
    if name.startswith(("Left-", "ctx-lh-")):
        return "left"
    if name.startswith(("Right-", "ctx-rh-")):
        return "right"
    return "bilateral"


def rows() -> list[dict]:
    entries = [(label, name, kind) for label, (name, kind) in NON_CORTICAL.items()]
    for offset, hemi in ((1000, "lh"), (2000, "rh")):
        for i, region in enumerate(DK_CORTICAL, start=1):
            if region is not None:
                entries.append((offset + i, f"ctx-{hemi}-{region}", "cortical"))
    entries.sort()
    out = []
    for index, (label, name, kind) in enumerate(entries, start=1):
        out.append({
            "index": index,
            "label": label,
            "name": name,
            "name_fs6": name.replace("Thalamus", "Thalamus-Proper") if label in (10, 49) else name,
            "hemisphere": hemisphere(name),
            "kind": kind,
        })
    assert len(out) == 109, len(out)
    return out


def main(path: Path) -> None:
    table = rows()
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]), delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {len(table)} ROIs to {path}")


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[1] / "rgenima_app" / "data" / "rois.tsv"
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
