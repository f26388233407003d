"""FreeSurfer for one T1w sample: reuse a finished subject or run recon-all (through nipype).

The decision, in order (``ensure_freesurfer_subject``):
1. ``<subjects_dir>/<subject>/mri/aparc+aseg.mgz`` exists -> reuse it (no license or FreeSurfer needed),
   once ``check_made_from`` has compared the sample's T1w with FreeSurfer's copy of its input
   (``mri/orig/001.mgz``, else ``mri/rawavg.mgz``): a subject made from another image is an error, a
   subject without that copy is reused with a warning;
2. ``--fs-no-reconall`` -> ``MissingInputError`` (exit 66) naming that path;
3. each T1w is readable, 3-D, holds some finite, non-constant signal and has a plausible voxel size and
   field of view (``check_t1w``; else exit 66, or 1 for a 2-D/4-D image), so that a bad input fails now
   rather than after a license question or hours into recon-all;
4. a license: ``--fs-license-file``, ``$FS_LICENSE``, ``$FREESURFER_HOME/license.txt`` (or the older
   ``.license``); none -> ``FreeSurferLicenseError`` (exit 126);
5. ``recon-all`` on the PATH with ``$FREESURFER_HOME`` set; else ``FreeSurferMissingError`` (exit 127);
6. no stale ``scripts/IsRunning.*`` lock in a half-done subject; else ``ProcessingError`` with the
   command that clears it;
7. recon-all runs in a nipype workflow (``workflow.py``), resuming a half-done subject.

Subjects are named after the BIDS sample: ``sub-01`` or ``sub-01_ses-1`` (one cross-sectional
FreeSurfer subject per session).
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from rgenima_app.confinement import check_write
from rgenima_app.errors import FreeSurferLicenseError, FreeSurferMissingError, MissingInputError, ProcessingError
from rgenima_app.imaging.volumes import load_image
from rgenima_app.imaging.workflow import freesurfer_batch_workflow, freesurfer_workflow, plugin_settings, run_workflow

log = logging.getLogger("rgenima")

SEGMENTATION = Path("mri") / "aparc+aseg.mgz"
#: Intensity volumes on the grid of aparc+aseg, in order of preference. T1.mgz (intensity-normalised,
#: white matter at 110) is what recon-all always makes; norm.mgz/brain.mgz serve subjects shipped without it.
INTENSITY_CANDIDATES = (Path("mri") / "T1.mgz", Path("mri") / "norm.mgz", Path("mri") / "brain.mgz")
#: recon-all's (unresampled) average of its inputs; ``mri/orig/NNN.mgz`` are the inputs themselves.
RAW_AVERAGE = Path("mri") / "rawavg.mgz"


def fs_subject_name(subject: str, session: str | None = None) -> str:
    """FreeSurfer subject name of a BIDS sample: ``sub-01`` or ``sub-01_ses-1`` (labels without prefixes)."""
    subject = subject.removeprefix("sub-")
    name = f"sub-{subject}"
    if session:
        name += f"_ses-{session.removeprefix('ses-')}"
    return name


@dataclass(frozen=True)
class FreeSurferOptions:
    """Everything that decides how recon-all runs, handed as one object to every path that may run it
    (participant level, ``--model``, ``--train``), so that no option is dropped on one of them."""

    subjects_dir: Path
    license_file: Path | None = None
    no_reconall: bool = False
    omp_nthreads: int = 1        # recon-all -openmp, and what MultiProc reserves per recon-all
    nprocs: int = 1              # MultiProc processes: recon-all runs of several samples at once
    mem_gb: float | None = None  # MultiProc's memory budget (--mem)
    use_plugin: Path | None = None
    crash_dir: Path | None = None
    stop_on_first_crash: bool = False


@dataclass
class FreeSurferSubject:
    """A finished FreeSurfer subject: where it is and which volumes ROI extraction reads."""

    name: str
    subject_dir: Path
    reused: bool  # True: found finished; False: recon-all ran in this call

    @property
    def segmentation(self) -> Path:
        return self.subject_dir / SEGMENTATION

    @property
    def intensity(self) -> Path:
        """The intensity volume to extract ROIs from (T1.mgz, else norm.mgz, else brain.mgz)."""
        for candidate in INTENSITY_CANDIDATES:
            if (self.subject_dir / candidate).is_file():
                return self.subject_dir / candidate
        names = ", ".join(str(c) for c in INTENSITY_CANDIDATES)
        raise MissingInputError(f"FreeSurfer subject {self.subject_dir} has no intensity volume ({names})",
                                hint="the subject is incomplete: rerun recon-all for it (remove the folder)")


def find_license(license_file: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None) -> Path:
    """The FreeSurfer license: ``license_file``, else ``$FS_LICENSE``, else ``$FREESURFER_HOME/license.txt``."""
    environ = os.environ if environ is None else environ
    if license_file is not None:
        path = Path(license_file).expanduser()
        if not path.is_file():
            raise FreeSurferLicenseError(f"FreeSurfer license file not found: {path} (--fs-license-file)",
                                         hint="give the path of your license.txt "
                                              "(free from https://surfer.nmr.mgh.harvard.edu/registration.html)")
        return path.resolve()
    candidates = []
    if environ.get("FS_LICENSE"):
        candidates.append(Path(environ["FS_LICENSE"]).expanduser())
    if environ.get("FREESURFER_HOME"):
        home = Path(environ["FREESURFER_HOME"])
        candidates += [home / "license.txt", home / ".license"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(p) for p in candidates) or "$FS_LICENSE and $FREESURFER_HOME are unset"
    raise FreeSurferLicenseError(
        f"recon-all must run but no FreeSurfer license was found (looked at: {looked})",
        hint="pass --fs-license-file /path/to/license.txt (or set FS_LICENSE); in a container, mount the file; "
             "or give finished subjects with --fs-subjects-dir",
    )


def check_freesurfer(environ: Mapping[str, str] | None = None) -> Path:
    """Path of ``recon-all``; raises ``FreeSurferMissingError`` when FreeSurfer is not installed."""
    environ = os.environ if environ is None else environ
    recon_all = shutil.which("recon-all", path=environ.get("PATH"))
    if recon_all is None or not environ.get("FREESURFER_HOME"):
        missing = "recon-all is not on the PATH" if recon_all is None else "FREESURFER_HOME is not set"
        raise FreeSurferMissingError(
            f"FreeSurfer is needed (a subject has no {SEGMENTATION}) but {missing}",
            hint="install FreeSurfer 6/7 and source $FREESURFER_HOME/SetUpFreeSurfer.sh, use the rgenima "
                 "container with FreeSurfer, or give finished subjects with --fs-subjects-dir",
        )
    return Path(recon_all)


def stale_locks(subject_dir: Path) -> list[Path]:
    """``scripts/IsRunning.*`` files that recon-all leaves behind when it is killed."""
    return sorted((Path(subject_dir) / "scripts").glob("IsRunning.*"))


def _canonical(image):
    """Voxels and affine of ``image`` reoriented to the closest RAS+ voxel order (as recon-all's inputs
    keep the voxel order of the file they were converted from, but a user may have reoriented either)."""
    import numpy as np
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        return data, image.affine
    ornt = io_orientation(image.affine)
    return apply_orientation(data, ornt), image.affine @ inv_ornt_aff(ornt, data.shape)


def _difference(t1w: Path, copy: Path) -> str | None:
    """How the T1w differs from FreeSurfer's copy of an input (None when it is the same image)."""
    import numpy as np


    raw, _ = load_image(copy, "FreeSurfer input copy")
    image, _ = load_image(t1w, "T1w")
    a, a_affine = _canonical(image)
    b, b_affine = _canonical(raw)
    if a.shape != b.shape:
        return f"has shape {b.shape} where the T1w has {a.shape}"
    if not np.allclose(a_affine, b_affine, atol=1e-3, rtol=1e-5):
        return "has another voxel-to-world affine (position or voxel size)"
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    finite = np.abs(a[np.isfinite(a)])
    scale = max(float(finite.max()) if finite.size else 0.0, 1.0)
    differ = ~np.isclose(a, b, rtol=1e-4, atol=1e-4 * scale, equal_nan=True)
    if differ.any():
        return f"holds other voxel values ({differ.mean():.1%} of the voxels differ)"
    return None


def check_made_from(name: str, subject_dir: str | os.PathLike, t1w_files: Sequence[str | os.PathLike]) -> None:
    """A reused FreeSurfer subject must have been made from this sample's T1w image(s).

    recon-all keeps an unresampled copy of each input as ``mri/orig/001.mgz``, ``002.mgz``... (and their
    average, for one input the same image, as ``mri/rawavg.mgz``); the conformed volumes (T1.mgz) cannot be
    compared with the T1w. Each T1w is compared with its copy: same shape, affine and voxel values after
    reorientation. A difference is a ``ProcessingError`` naming both files; no copy is a warning.
    """
    subject_dir, t1w_files = Path(subject_dir), [Path(p) for p in t1w_files]
    if not t1w_files:
        return
    copies = sorted((subject_dir / "mri" / "orig").glob("[0-9][0-9][0-9].mgz"))
    if not copies and (subject_dir / RAW_AVERAGE).is_file() and len(t1w_files) == 1:
        copies = [subject_dir / RAW_AVERAGE]
    if not copies:
        log.warning("%s: the reused FreeSurfer subject %s has no copy of its input (mri/orig/001.mgz or "
                    "mri/rawavg.mgz): rgenima cannot check that it was made from %s", name, subject_dir,
                    ", ".join(str(p) for p in t1w_files))
        return
    if len(copies) != len(t1w_files):
        log.warning("%s: the reused FreeSurfer subject %s was made from %d image(s), this sample has %d T1w "
                    "image(s); the first %d are compared", name, subject_dir, len(copies), len(t1w_files),
                    min(len(copies), len(t1w_files)))
    for t1w, copy in zip(t1w_files, copies):
        difference = _difference(t1w, copy)
        if difference is not None:
            raise ProcessingError(
                f"{name}: the FreeSurfer subject {subject_dir} was not made from the T1w image {t1w}: "
                f"{copy} (FreeSurfer's copy of its input) {difference}",
                hint=f"give --fs-subjects-dir a folder with this participant's own subject (e.g. a new, empty one, "
                     f"so that recon-all runs), or remove {subject_dir} so that recon-all remakes it from this T1w",
            )


#: Plausible T1w geometry: voxel edge (mm) and field of view per axis (mm). Outside these a header is
#: wrong (metres or centimetres for millimetres, a slab or a single slice) and recon-all would fail late.
VOXEL_MM = (0.3, 5.0)
FIELD_OF_VIEW_MM = (60.0, 500.0)


def check_t1w(path: str | os.PathLike) -> None:
    """Refuse a T1w that recon-all cannot use, naming the file and the problem, before any long stage:
    unreadable or empty (66), not 3-D (1), no finite non-constant signal, implausible voxel size or field
    of view (66). recon-all would otherwise fail late with a cryptic message, or run for hours."""
    import numpy as np


    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise MissingInputError(f"T1w image {path} is empty (0 bytes)", hint="replace the file with the T1w volume")
    image, data = load_image(path, "T1w")
    values = data[np.isfinite(data)]
    if values.size == 0 or values.min() == values.max():
        raise MissingInputError(f"T1w image {path} holds no usable signal (all voxels NaN/Inf or one constant "
                                "value): recon-all cannot use it", hint=_REPLACE_T1W)
    voxel = [float(z) for z in image.header.get_zooms()[:3]]
    if not all(VOXEL_MM[0] <= z <= VOXEL_MM[1] for z in voxel):
        raise MissingInputError(f"T1w image {path} has voxel size {' x '.join(f'{z:g}' for z in voxel)} mm; a T1w "
                                f"has voxels of {VOXEL_MM[0]:g} to {VOXEL_MM[1]:g} mm",
                                hint="fix the voxel size (pixdim) in the header, or " + _REPLACE_T1W)
    fov = [n * z for n, z in zip(data.shape, voxel)]
    if not all(FIELD_OF_VIEW_MM[0] <= f <= FIELD_OF_VIEW_MM[1] for f in fov):
        raise MissingInputError(f"T1w image {path} covers {' x '.join(f'{f:g}' for f in fov)} mm; a head T1w "
                                f"covers {FIELD_OF_VIEW_MM[0]:g} to {FIELD_OF_VIEW_MM[1]:g} mm along each axis",
                                hint="give the whole-head T1w volume, or " + _REPLACE_T1W)


_REPLACE_T1W = ("replace the file with a valid T1w volume (or exclude it with --participant-label / "
                "--bids-filter-file)")


def check_subject(subject_dir: str | os.PathLike) -> None:
    """Refuse a finished FreeSurfer subject whose volumes cannot be used (unreadable, not 3-D, no intensity
    volume, a segmentation without labels), naming the file: checked before any output is written."""
    import numpy as np


    subject = FreeSurferSubject(Path(subject_dir).name, Path(subject_dir), reused=True)
    _, labels = load_image(subject.segmentation, "segmentation")
    if not np.any(labels):
        raise MissingInputError(f"FreeSurfer segmentation {subject.segmentation} holds no label",
                                hint="the subject is damaged: rerun recon-all for it (remove the folder)")
    _, intensity = load_image(subject.intensity, "intensity")
    if not np.isfinite(intensity).any():
        raise MissingInputError(f"FreeSurfer intensity volume {subject.intensity} holds no finite value",
                                hint="the subject is damaged: rerun recon-all for it (remove the folder)")


def check_sample_inputs(name: str, t1w_files: Sequence[str | os.PathLike], subjects_dir: str | os.PathLike,
                        no_reconall: bool = False) -> None:
    """The inputs of one sample, checked before any stage runs: the finished FreeSurfer subject it
    reuses, else each T1w that recon-all would read."""
    subject_dir = Path(subjects_dir) / name
    if (subject_dir / SEGMENTATION).is_file():
        check_subject(subject_dir)
    elif not no_reconall:
        for t1w in t1w_files:
            check_t1w(t1w)


def ensure_freesurfer_subject(
    subject: str,
    session: str | None,
    t1w_files: Sequence[str | os.PathLike],
    options: FreeSurferOptions,
    work_dir: str | os.PathLike,
    environ: Mapping[str, str] | None = None,
) -> FreeSurferSubject:
    """Reuse ``<subjects_dir>/<sub-XX[_ses-YY]>`` when finished, else run recon-all on ``t1w_files``
    (nipype's work folders under ``work_dir``)."""
    subjects_dir, no_reconall = options.subjects_dir, options.no_reconall
    name = fs_subject_name(subject, session)
    subject_dir = Path(subjects_dir) / name
    segmentation = subject_dir / SEGMENTATION
    if segmentation.is_file():
        check_made_from(name, subject_dir, t1w_files)
        log.info("%s: reusing FreeSurfer subject %s", name, subject_dir)
        return FreeSurferSubject(name, subject_dir, reused=True)
    if no_reconall:
        raise MissingInputError(
            f"{name}: {segmentation} is missing and --fs-no-reconall forbids running recon-all",
            hint="point --fs-subjects-dir at the folder that holds the FreeSurfer subjects "
                 f"(named {name}), or drop --fs-no-reconall",
        )
    license_path = _ready_for_recon_all(name, subject_dir, t1w_files, options, work_dir, environ)
    plugin, plugin_args = plugin_settings(nprocs=options.nprocs, mem_gb=options.mem_gb, use_plugin=options.use_plugin)
    workflow = freesurfer_workflow(
        name, [Path(p) for p in t1w_files], Path(subjects_dir), Path(work_dir), license_path,
        omp_nthreads=options.omp_nthreads, crash_dir=options.crash_dir,
        stop_on_first_crash=options.stop_on_first_crash,
    )
    log.info("%s: running recon-all (nipype %s plugin, %s; -openmp %d) into %s", name, plugin,
             describe_plugin_args(plugin_args), options.omp_nthreads, subject_dir)
    run_workflow(workflow, plugin, plugin_args, subject_dir)
    if not segmentation.is_file():
        raise ProcessingError(f"{name}: recon-all finished but {segmentation} is missing",
                              hint=f"see {subject_dir / 'scripts' / 'recon-all.log'}")
    return FreeSurferSubject(name, subject_dir, reused=False)


def describe_plugin_args(plugin_args: dict) -> str:
    """The plugin arguments a user set through rgenima's options, for the log: ``n_procs=2, memory_gb=3.0``."""
    shown = {k: v for k, v in plugin_args.items() if k in ("n_procs", "memory_gb", "sbatch_args", "qsub_args")}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "its own defaults"


def _ready_for_recon_all(name: str, subject_dir: Path, t1w_files: Sequence[str | os.PathLike],
                         options: FreeSurferOptions, work_dir: str | os.PathLike,
                         environ: Mapping[str, str] | None) -> Path:
    """Everything recon-all needs, checked in the order a user fixes them; returns the license file."""
    for t1w in t1w_files:  # a T1w recon-all cannot use is named before the license and installation
        check_t1w(t1w)
    license_path = find_license(options.license_file, environ)
    check_freesurfer(environ)
    locks = stale_locks(subject_dir)
    if locks:
        listing = " ".join(str(p) for p in locks)
        raise ProcessingError(
            f"{name}: FreeSurfer subject {subject_dir} is unfinished and locked ({listing}): "
            "a recon-all run on it was interrupted, or is still running",
            hint=f"if no recon-all is running on it, clear the lock with: rm -f {listing}  (rgenima then resumes it)",
        )
    check_write(subject_dir)  # recon-all writes the subject there, and nipype its work folder
    check_write(Path(work_dir) / name)
    Path(options.subjects_dir).mkdir(parents=True, exist_ok=True)
    return license_path


def run_recon_all_batch(samples: Sequence[tuple[str, str | None, Sequence[str | os.PathLike]]],
                        options: FreeSurferOptions, work_dir: str | os.PathLike,
                        environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """recon-all of every sample (subject, session, T1w files) whose FreeSurfer subject is unfinished, as
    one nipype graph: MultiProc runs ``--nprocs`` of them at once within ``--mem`` (recon-all's
    ``omp_nthreads`` each), and a ``--use-plugin`` scheduler (SLURM, SGE...) receives them all at once.

    Samples that are not ready (a bad T1w, no license, no FreeSurfer, a stale lock) are left out: the
    per-sample ``ensure_freesurfer_subject`` then reports their error as before. With fewer than two
    samples to run, nothing is done here (the per-sample path runs it). Returns ``{sample: why}`` for the
    samples whose recon-all failed (the others' subjects are finished and are then reused).
    """
    if options.no_reconall:
        return {}
    ready: dict[str, tuple[list[Path], Path]] = {}
    for subject, session, t1w_files in samples:
        name = fs_subject_name(subject, session)
        subject_dir = Path(options.subjects_dir) / name
        if (subject_dir / SEGMENTATION).is_file() or name in ready:
            continue
        try:
            license_path = _ready_for_recon_all(name, subject_dir, t1w_files, options, work_dir, environ)
        except (MissingInputError, ProcessingError, FreeSurferLicenseError, FreeSurferMissingError):
            continue
        ready[name] = ([Path(p) for p in t1w_files], license_path)
    if len(ready) < 2:
        return {}
    workflow = freesurfer_batch_workflow({name: files for name, (files, _) in ready.items()},
                                         Path(options.subjects_dir), Path(work_dir),
                                         next(iter(ready.values()))[1], omp_nthreads=options.omp_nthreads,
                                         crash_dir=options.crash_dir, stop_on_first_crash=options.stop_on_first_crash)
    plugin, plugin_args = plugin_settings(nprocs=options.nprocs, mem_gb=options.mem_gb, use_plugin=options.use_plugin)
    log.info("recon-all of %d samples in one nipype graph (%s plugin, %s; -openmp %d each) into %s", len(ready),
             plugin, describe_plugin_args(plugin_args), options.omp_nthreads, options.subjects_dir)
    try:
        run_workflow(workflow, plugin, plugin_args)
    except ProcessingError as exc:
        log.warning("%s", exc)
    failed = {}
    for name in ready:
        subject_dir = Path(options.subjects_dir) / name
        if not (subject_dir / SEGMENTATION).is_file():
            failed[name] = (f"recon-all failed (nipype crash files in {options.crash_dir or work_dir}; recon-all's log: "
                            f"{subject_dir / 'scripts' / 'recon-all.log'})")
    return failed

