"""Which participant-level outputs are complete, so that a rerun does not recompute them.

The participant level writes its outputs in groups: a sample's ROI derivatives (dseg + morph), a
participant's panel genotypes, and (with ``--model``) a sample's prediction and attention outputs. Each
group records in its JSON sidecars a ``ProvenanceKey``: a digest of everything the group is computed from
(the rgenima version, the contents of the T1w and FreeSurfer volumes, the identity of the genotype
files, the sample's genetic ID, the gene panel or the model bundle's hash, the options that change it).
A rerun computes the key of each group from the current inputs and options; the group is

* ``complete`` when every file of it is present and every sidecar records this key: it is skipped;
* ``partial`` when some files are missing but those present record this key (an interrupted run of
  the same command): it is computed and written again;
* ``other`` when a sidecar records another key (or none: outputs of an older rgenima): the outputs
  were made from other inputs, options or another model. ROI derivatives and panel genotypes are then
  rewritten from the current inputs (the participant level with ``--model`` rewrites the genotypes of
  a plain run on the model's SNP panel); predictions are refused unless ``--overwrite``;
* ``absent`` when none of its files exists.

Before a group is rewritten over files of another key, those files are removed, so that a run killed
while rewriting never leaves a mix of old and new files that would look complete. ``--overwrite``
recomputes every selected group. Genotype files are identified by name, size and modification time
(hashing a genome-wide file on every run would cost more than the work it saves).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rgenima_app import __version__
from rgenima_app.bids.derivatives import sidecar_path
from rgenima_app.genetics.participant import GenotypeInput, participant_genotypes_path
from rgenima_app.imaging.freesurfer import INTENSITY_CANDIDATES, SEGMENTATION
from rgenima_app.imaging.participant import EXTRACTION_VERSION, participant_imaging_paths

KEY_FIELD = "ProvenanceKey"
COMPLETE, PARTIAL, OTHER, ABSENT = "complete", "partial", "other", "absent"


@functools.lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (computed once per process for an unchanged file)."""
    stat = os.stat(path)
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def file_identity(path: str | os.PathLike) -> list:
    """Name, size and modification time: what identifies a (large) input file without reading it."""
    stat = os.stat(path)
    return [Path(path).name, stat.st_size, stat.st_mtime_ns]


def make_key(kind: str, **parts) -> str:
    """The provenance key of a group of outputs of ``kind`` computed from ``parts`` (JSON-able)."""
    document = {"kind": kind, "version": __version__, **parts}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()[:32]


def recorded_key(sidecar: Path) -> str | None:
    """The key a sidecar records (None when it records none or cannot be read)."""
    try:
        value = json.loads(Path(sidecar).read_text()).get(KEY_FIELD)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def read_sidecar(sidecar: Path) -> dict:
    try:
        value = json.loads(Path(sidecar).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class OutputGroup:
    """Files written together for one sample (data files and their sidecars) and their provenance key.

    ``key`` is None when it cannot be computed yet (e.g. the FreeSurfer subject does not exist): the
    group is then never complete.
    """

    name: str                # sub-01 or sub-01_ses-1, for messages
    files: list[Path]        # data files; each has a JSON sidecar beside it
    key: str | None

    @property
    def sidecars(self) -> list[Path]:
        return [sidecar_path(f) for f in self.files]

    @property
    def all_files(self) -> list[Path]:
        return [*self.sidecars, *self.files]

    def state(self) -> str:
        present = [f for f in self.all_files if f.is_file()]
        if not present:
            return ABSENT
        if self.key is None:
            return PARTIAL
        if any(recorded_key(s) != self.key for s in self.sidecars if s.is_file()):
            return OTHER
        return COMPLETE if len(present) == len(self.all_files) else PARTIAL

    def complete(self) -> bool:
        return self.state() == COMPLETE

    def prepare(self) -> None:
        """Before writing the group: remove its files if they are of another key (see the module doc)."""
        if self.state() == OTHER:
            for path in self.all_files:
                path.unlink(missing_ok=True)


# -- the groups of the participant level ----------------------------------------------------------------
def imaging_key(t1w_files, subject_dir: Path) -> str | None:
    """Key of a sample's ROI derivatives: its T1w image(s) and the FreeSurfer volumes ROIs are read from."""

    segmentation = Path(subject_dir) / SEGMENTATION
    intensity = next((Path(subject_dir) / c for c in INTENSITY_CANDIDATES if (Path(subject_dir) / c).is_file()), None)
    if not segmentation.is_file() or intensity is None:
        return None
    return make_key("rois", extraction=EXTRACTION_VERSION,
                    t1w=[[Path(p).name, file_digest(p)] for p in t1w_files],
                    segmentation=file_digest(segmentation), intensity=[intensity.name, file_digest(intensity)])


def imaging_group(writer, subject: str, session: str | None, t1w_files, subject_dir: Path) -> OutputGroup:
    paths = participant_imaging_paths(writer, subject, session)
    name = f"sub-{subject}" + (f"_ses-{session}" if session else "")
    return OutputGroup(name, [paths["dseg"], paths["morph"]], imaging_key(t1w_files, subject_dir))


def genotype_files(genotypes: Path) -> list[Path]:
    """The files of a genotype input: ``.bed`` with its ``.bim``/``.fam``, or the VCF/BCF."""
    genotypes = Path(genotypes)
    if genotypes.name.endswith(".bed"):
        return [genotypes, genotypes.with_suffix(".bim"), genotypes.with_suffix(".fam")]
    return [genotypes]


def genotype_group(writer, genotypes: GenotypeInput, participants: pd.DataFrame, subject: str,
                   panel: dict) -> OutputGroup:
    """A participant's panel genotypes; ``panel`` says which SNP panel (gene panel or model bundle)."""
    sample = None
    if "genetic_id" in participants.columns and subject in participants.index:
        value = participants["genetic_id"].get(subject)
        sample = None if pd.isna(value) else str(value)
    try:
        files = [file_identity(f) for f in genotype_files(genotypes.path)]
    except OSError:
        files = None
    key = None if files is None else make_key("genotypes", files=files, genome_build=genotypes.genome_build,
                                              panel=panel, genetic_id=sample)
    return OutputGroup(f"sub-{subject}", [participant_genotypes_path(writer, subject)], key)


def gene_panel_source(genotypes: GenotypeInput) -> dict:
    """The SNP panel of a run without a model: the packaged gene panel (of this version) or ``--gene-panel``."""
    if genotypes.gene_panel is None:
        return {"gene_panel": "packaged"}
    return {"gene_panel": file_digest(genotypes.gene_panel)}
