"""The BIDS-Derivatives writer: dataset files, path building, atomic writes and sidecars.

Every file rgenima writes into OUTPUT_DIR goes through this module, so that
- paths follow the layout of docs/outputs.md (entities in BIDS order) and stay inside OUTPUT_DIR;
- writes are atomic (a temporary name in the same folder, then ``os.replace``): an interrupted run
  never leaves a file that looks complete, and the temporary files a killed run leaves (hidden, with the
  writer's PID in the name) are removed by the next run (``remove_stale_temporaries``);
- files shared by concurrent participant jobs (dataset_description.json, .bidsignore,
  desc-rois_dseg.tsv) are created once, atomically, whoever comes first.
Every pattern written here is listed in ``bids_spec/derivatives.yaml``; every TSV gets a JSON sidecar whose
column entries come from there (``DerivativesWriter.write_tsv``), and ``bids.spec.check_outputs`` checks the
files against it at the end of each run.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlparse

import pandas as pd

from rgenima_app import __version__
from rgenima_app.bids.spec import column_entries
from rgenima_app.bids.tsv import to_tsv
from rgenima_app.confinement import check_write, register_root
from rgenima_app.environment import container
from rgenima_app.errors import OutputNotWritableError, UsageError

BIDS_VERSION = "1.10.0"

#: Entity order of the BIDS specification (the subset rgenima uses), then ``stat`` for statmaps.
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "run", "space", "res", "den", "label", "desc", "stat")

#: The outputs that have no BIDS convention (BIDS 1.10/1.11 has no suffix for predictions, attention tables or
#: maps, genotype, morphometry or group tables, and no "genotype" datatype), hidden from the BIDS validator;
#: ``bids.spec.check_outputs`` checks them against bids_spec/derivatives.yaml instead (docs/outputs.md). What
#: the validator accepts (dataset_description.json, the desc-rois_dseg images and lookup table) is not here.
#: (bids-validator-deno 3 hides a folder only for a pattern without the trailing slash: "models", not "models/".)
BIDSIGNORE = """\
logs/
models
figures
sub-*/figures/
*.html
sub-*/genotype
*_statmap.nii.gz
*_statmap.json
*_morph.tsv
*_morph.json
*_predictions.tsv
*_predictions.json
*_roiattention.tsv
*_roiattention.json
*_geneattention.tsv
*_geneattention.json
*_roigeneattention.tsv
*_roigeneattention.json
*_roistability.tsv
*_roistability.json
*_roigenestability.tsv
*_roigenestability.json
*_generanking.tsv
*_generanking.json
*_geneenrichment.tsv
*_geneenrichment.json
*_metrics.tsv
*_metrics.json
*_split.tsv
*_split.json
*_evaluation.tsv
*_evaluation.json
*_testpredictions.tsv
*_testpredictions.json
"""

_LABEL = re.compile(r"^[A-Za-z0-9]+$")


def _file_mode() -> int:
    """The mode a plainly created file gets (mkstemp's 0600 would hide outputs from collaborators)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@functools.lru_cache(maxsize=1)
def _writer_tag() -> str:
    """This host and PID namespace, as 8 hex digits: PIDs in temporary names are only comparable within it."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha1(f"{socket.gethostname()}:{namespace}".encode()).hexdigest()[:8]


#: Temporary names of atomic writes: ``.tmp-<pid>.<writer tag>-<random>-<target name>``.
TEMPORARY_NAME = re.compile(r"^\.tmp-(?P<pid>\d+)\.(?P<tag>[0-9a-f]{8})-[a-z0-9_]{8}-.+$")


def _temporary_beside(target: Path) -> Path:
    check_write(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".tmp-{os.getpid()}.{_writer_tag()}-",
                                    suffix=f"-{target.name}")
    os.close(fd)
    os.chmod(tmp_name, _file_mode())
    return Path(tmp_name)


def temporary_folder_beside(target: Path) -> Path:
    """A hidden folder beside ``target`` to build a folder output in (e.g. a model bundle) before it is
    renamed into place; named like the temporary files, so that ``remove_stale_temporaries`` removes it
    when its writer was killed."""
    check_write(target)
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{os.getpid()}.{_writer_tag()}-",
                                 suffix=f"-{target.name}"))


@contextmanager
def folder_built_beside(target: Path, tmp: Path) -> Iterator[Path]:
    """Yield ``tmp``, a folder being built beside ``target`` (e.g. by ``temporary_folder_beside``): when the
    block succeeds it replaces ``target`` (an older or incomplete one) in one rename; on any failure it is
    removed, so ``target`` is never half-written."""
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(root: Path | str, started: float) -> list[Path]:
    """Remove the temporary files and folders that killed runs left in ``root`` (a SIGKILL skips the
    cleanup of ``atomic_path`` and of a model bundle's build folder); returns those removed.

    Only names made by ``_temporary_beside`` / ``temporary_folder_beside`` are considered, and only those
    whose writer is certainly gone: written on this host and PID namespace (other jobs of a SLURM array
    may write into the same folder from other nodes), by a process that is no longer alive (or by an
    earlier process with this run's PID), and last modified before this run started. Other hidden
    folders (the work dir) and ``sourcedata`` are not searched.
    """
    root, removed = Path(root), []
    for folder, dirs, files in os.walk(root):
        for name in files + dirs:
            path = Path(folder) / name
            if _left_by_dead_writer(path, started) and _remove(path):
                removed.append(path)
        # hidden folders (removed ones included) are not searched
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (folder == str(root) and d == "sourcedata")]
    return removed


def _remove(path: Path) -> bool:
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError:  # gone meanwhile, or not ours to remove
        return False
    return True


def _left_by_dead_writer(path: Path, started: float) -> bool:
    match = TEMPORARY_NAME.match(path.name)
    if match is None or match["tag"] != _writer_tag():
        return False
    pid = int(match["pid"])
    try:
        return not (path.stat().st_mtime >= started or (pid != os.getpid() and _process_alive(pid)))
    except OSError:
        return False


def check_label(value: str, entity: str) -> str:
    """A BIDS label is alphanumeric; anything else (``../x``, spaces) is refused."""
    if not isinstance(value, str) or not _LABEL.match(value):
        raise UsageError(
            f"invalid {entity} label {value!r}: BIDS labels contain only letters and digits",
            hint=f"give the {entity} label as in the dataset, e.g. '01' for sub-01",
        )
    return value


#: The output set being written in this context (``DerivativesWriter.output_set``): (temporary, target) pairs.
_STAGED: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("rgenima_staged_outputs", default=None)


def disk_full(exc: BaseException) -> bool:
    """A write failed for lack of space or quota: every later write would fail too, so the run stops."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def write_error(target: Path, exc: OSError, written: int = 0) -> OutputNotWritableError:
    """The error (exit 73) for a failed write; a full disk or quota says how much space is free and needed."""
    if disk_full(exc):
        try:
            free = shutil.disk_usage(Path(target).parent).free
        except OSError:
            free = 0
        return OutputNotWritableError(
            f"cannot write {target}: {exc.strerror or exc} ({_size(free)} free; the outputs being written "
            f"needed more than {_size(written)})",
            hint=f"free at least {_size(max(written, 1 << 20) * 2)} on the file system of {Path(target).parent} "
                 "(check free space and quotas), then rerun the same command: finished participants are kept")
    return OutputNotWritableError(f"cannot write {target}: {exc.strerror or exc}",
                                  hint="check that the output directory exists, is writable and has free space")


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n / 1024:.0f} KiB"


def _staged_bytes(pairs) -> int:
    return sum(tmp.stat().st_size for tmp, _ in pairs if tmp.exists())


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.

    The temporary name is hidden (starts with a dot) and keeps the target's extension, so libraries
    that pick a format by extension (nibabel) write the right one. Inside ``output_set`` the rename waits
    for the whole set.
    """
    target = Path(target)
    staged = _STAGED.get()
    try:
        tmp = _temporary_beside(target)
    except OSError as exc:
        raise write_error(target, exc, _staged_bytes(staged or [])) from exc
    try:
        yield tmp
        if staged is None:
            os.replace(tmp, target)
        else:
            staged.append((tmp, target))
    except OSError as exc:
        written = _staged_bytes([*(staged or []), (tmp, target)])
        tmp.unlink(missing_ok=True)
        raise write_error(target, exc, written) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: Path, obj: dict) -> Path:
    return write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_tsv(target: Path, table: pd.DataFrame) -> Path:
    """A TSV with ``n/a`` for missing values and no quoting, as BIDS asks (``bids.tsv.read_tsv`` reads it back
    unchanged: a value with a double quote is written as it is, not wrapped in quotes)."""
    with atomic_path(target) as tmp:
        to_tsv(table, tmp, na_rep="n/a")
    return Path(target)


def create_once(target: Path, text: str) -> bool:
    """Create ``target`` with ``text`` unless it exists; atomic and safe between concurrent jobs.

    Returns True when this call created it. ``os.link`` fails if the target exists, so exactly one of
    several racing writers wins, and nobody ever sees a half-written file.
    """
    target = Path(target)
    if target.exists():
        return False
    try:
        tmp_name = _temporary_beside(target)
        tmp_name.write_text(text)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write {target}: {exc.strerror or exc}",
                                     hint="check free space and permissions of the output directory") from exc
    try:
        os.link(tmp_name, target)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp_name)


def sidecar_path(path: Path) -> Path:
    """``x.nii.gz`` / ``x.tsv`` -> ``x.json``."""
    name = Path(path).name
    stem = name.split(".", 1)[0]
    return Path(path).with_name(stem + ".json")


class DerivativesWriter:
    """Writes rgenima's BIDS-Derivatives dataset at ``output_dir``."""

    def __init__(self, output_dir: Path | str, source_dir: Path | str | None = None):
        self.root = register_root(Path(output_dir).resolve(), "OUTPUT_DIR")
        self.source_dir = Path(source_dir).resolve() if source_dir else None

    # -- paths -------------------------------------------------------------------------------
    def path(
        self,
        subject: str | None,
        session: str | None = None,
        *,
        suffix: str,
        extension: str,
        datatype: str | None = None,
        **entities: str,
    ) -> Path:
        """The path of a derivative file, e.g. ``sub-01/ses-1/anat/sub-01_ses-1_desc-rois_dseg.nii.gz``.

        ``subject=None`` gives a group-level file at the dataset root (``desc-x_predictions.tsv``).
        ``datatype`` is the folder under the subject/session (``anat``, ``genotype``); None puts the
        file directly in the subject (or session) folder. Unknown entities are refused.
        """
        values: dict[str, str] = {}
        if subject is not None:
            values["sub"] = check_label(subject, "participant")
        if session is not None:
            values["ses"] = check_label(session, "session")
        for key, value in entities.items():
            if key not in ENTITY_ORDER:
                raise ValueError(f"unknown BIDS entity {key!r}")
            if value is not None:
                values[key] = check_label(str(value), key)
        name = "_".join(f"{k}-{values[k]}" for k in ENTITY_ORDER if k in values)
        name = f"{name}_{suffix}{extension}" if name else f"{suffix}{extension}"
        folder = self.root
        if subject is not None:
            folder = folder / f"sub-{subject}"
            if session is not None:
                folder = folder / f"ses-{session}"
        if datatype is not None:
            folder = folder / datatype
        return folder / name

    # -- dataset-level files -----------------------------------------------------------------
    def dataset_description(self) -> dict:
        generated_by = {"Name": "rgenima", "Version": __version__,
                        "Description": "R-GenIMA: interpretable multimodal AI of T1w MRI ROIs and SNP genotypes "
                                       "for Alzheimer's disease stage"}
        in_container = container()
        if in_container:
            generated_by["Container"] = in_container
        description = {
            "Name": "rgenima derivatives",
            "BIDSVersion": BIDS_VERSION,
            "DatasetType": "derivative",
            "GeneratedBy": [generated_by],
            "HowToAcknowledge": "Cite R-GenIMA (Zhao et al., arXiv:2512.18986) and FreeSurfer.",
        }
        source = {}
        if self.source_dir is not None:
            source["URL"] = self.source_dir.as_uri()
            source_description = self.source_dir / "dataset_description.json"
            try:
                original = json.loads(source_description.read_text())
                if original.get("DatasetDOI"):
                    source["DOI"] = original["DatasetDOI"]
                if original.get("Name"):
                    description["Name"] = f"rgenima derivatives of {original['Name']}"
            except (OSError, ValueError):
                pass  # the input was validated before; a missing description changes nothing here
            description["SourceDatasets"] = [source]
        return description

    def initialize(self, roi_table: pd.DataFrame | None = None) -> None:
        """Create the dataset-level files once (safe when several participant jobs start together)."""
        self.check_writable()
        create_once(self.root / "dataset_description.json", json.dumps(self.dataset_description(), indent=2) + "\n")
        create_once(self.root / ".bidsignore", BIDSIGNORE)
        if roi_table is not None:
            columns = ["index", "name", "label", "name_fs6", "hemisphere", "kind"]
            # the sidecar first: a lookup table never appears without its column descriptions
            sidecar = column_entries("desc-rois_dseg.tsv", columns, {
                "Description": "The 109 canonical rgenima ROIs: the lookup table of every desc-rois_dseg image"})
            create_once(self.root / "desc-rois_dseg.json", json.dumps(sidecar, indent=2) + "\n")
            create_once(self.root / "desc-rois_dseg.tsv",
                        roi_table[columns].to_csv(sep="\t", index=False, lineterminator="\n"))

    def check_writable(self) -> None:
        """Refuse early, with exit 73, an output directory that cannot be created or written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".write-test-", delete=True)
            probe.close()
        except OSError as exc:
            raise OutputNotWritableError(
                f"the output directory {self.root} is not writable: {exc.strerror or exc}",
                hint="choose another OUTPUT_DIR or fix its permissions (containers: mount it read-write)",
            ) from exc

    # -- output sets -------------------------------------------------------------------------
    @contextmanager
    def output_set(self) -> Iterator[None]:
        """Write the files of one output set (a participant's ROI derivatives, genotypes or prediction)
        as a whole: files written inside the block stay under their temporary names and are renamed into
        place together when the block succeeds; on any failure (a full disk) none of them appears."""
        if _STAGED.get() is not None:  # nested: part of the enclosing set
            yield
            return
        staged: list[tuple[Path, Path]] = []
        token = _STAGED.set(staged)
        try:
            yield
        except BaseException as exc:
            written = _staged_bytes(staged)
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            if disk_full(exc):  # a write outside atomic_path (a library's own file) filled the disk
                raise write_error(Path(exc.filename or self.root), exc, written) from exc
            raise
        finally:
            _STAGED.reset(token)
        for done, (tmp, target) in enumerate(staged):
            try:
                os.replace(tmp, target)
            except OSError as exc:
                for left, _ in staged[done:]:
                    left.unlink(missing_ok=True)
                raise write_error(target, exc) from exc

    # -- files with sidecars -----------------------------------------------------------------
    def write_tsv(self, path: Path, table: pd.DataFrame, sidecar: dict | None = None) -> Path:
        """Write a TSV and its JSON sidecar as one output set (neither appears without the other).

        The sidecar is ``sidecar`` (the caller's keys, and column entries that name the run's settings)
        completed with bids_spec/derivatives.yaml's entry of every other column, so a column is described
        once, there; a TSV always gets a sidecar.
        """
        path = Path(path)
        relative = path.resolve().relative_to(self.root).as_posix() if path.resolve().is_relative_to(self.root) \
            else path.name
        with self.output_set():
            write_json(sidecar_path(path), column_entries(relative, table.columns, sidecar))
            return write_tsv(path, table)

    def write_json(self, path: Path, obj: dict) -> Path:
        return write_json(path, obj)

    def write_nifti(self, path: Path, image, sidecar: dict | None = None) -> Path:
        """Write a nibabel image and its sidecar as one output set."""
        import nibabel as nib

        with self.output_set():
            if sidecar is not None:
                write_json(sidecar_path(path), sidecar)
            with atomic_path(path) as tmp:
                nib.save(image, str(tmp))
        return Path(path)

    def source_uri(self, path: Path | str) -> str:
        """A BIDS URI for a ``Sources`` field: ``bids:raw:sub-01/anat/...`` for inputs, ``bids::...`` for outputs."""
        path = Path(path).resolve()
        if self.source_dir is not None and path.is_relative_to(self.source_dir):
            return f"bids:raw:{path.relative_to(self.source_dir).as_posix()}"
        if path.is_relative_to(self.root):
            return f"bids::{path.relative_to(self.root).as_posix()}"
        return path.as_uri()

    def resolve_uri(self, uri: str) -> Path | None:
        """The file a ``source_uri`` names (``bids:raw:`` in the input dataset, ``bids::`` here, ``file:``);
        None for a URI it cannot name (``bids:raw:`` without a source dataset, another scheme)."""
        if uri.startswith("bids:raw:"):
            return self.source_dir / uri.removeprefix("bids:raw:") if self.source_dir is not None else None
        if uri.startswith("bids::"):
            return self.root / uri.removeprefix("bids::")
        if uri.startswith("file:"):
            return Path(unquote(urlparse(uri).path))
        return None
