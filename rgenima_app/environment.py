"""Facts about where rgenima runs: container detection, package versions (recorded with every run), writable
caches and the compute device."""
from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from rgenima_app import __version__
from rgenima_app.confinement import check_write
from rgenima_app.errors import UsageError

if TYPE_CHECKING:
    import torch

#: Packages whose versions are recorded in each run's log (they decide the results).
RECORDED_PACKAGES = (
    "torch", "transformers", "tokenizers", "peft", "deepspeed", "safetensors", "numpy", "scipy",
    "pandas", "nibabel", "nipype", "pybids", "bed-reader", "cyvcf2", "click", "jinja2",
)


def container() -> dict | None:
    """The container rgenima runs in, as BIDS ``GeneratedBy.Container`` (None outside one).

    Apptainer/Singularity set ``APPTAINER_CONTAINER``/``SINGULARITY_CONTAINER`` (the image file). An OCI
    container is recognised by Docker's ``/.dockerenv``, podman's ``/run/.containerenv`` or its ``container``
    variable (``podman run --read-only`` hides ``/run/.containerenv`` under a tmpfs), or by
    ``RGENIMA_CONTAINER_TAG``, which the rgenima image sets to its name:tag (other runtimes, e.g. Kubernetes,
    leave no marker).
    """
    tag = os.environ.get("RGENIMA_CONTAINER_TAG") or f"rgenima:{__version__}"
    image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    if image:
        return {"Type": "singularity", "Tag": tag, "URI": f"file://{image}"}
    if (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()
            or os.environ.get("container") in ("podman", "docker", "oci") or os.environ.get("RGENIMA_CONTAINER_TAG")):
        return {"Type": "docker", "Tag": tag}
    return None


def package_versions() -> dict[str, str]:
    """Installed version of each recorded package ("not installed" where absent)."""
    found = {"python": sys.version.split()[0], "platform": platform.platform(), "rgenima": __version__}
    for name in RECORDED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


#: Cache locations that libraries write to, and their folder under the fallback.
CACHE_VARIABLES = {"HF_HOME": "huggingface", "TORCH_HOME": "torch", "XDG_CACHE_HOME": "xdg",
                   "MPLCONFIGDIR": "matplotlib", "TRITON_CACHE_DIR": "triton"}


def _writable(path: str | Path) -> bool:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".rgenima-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
        return True
    except OSError:
        return False


def ensure_writable_caches(work_dir: Path) -> dict[str, str]:
    """Point HOME and the libraries' caches at ``work_dir/.cache`` where they cannot be written.

    Containers run read-only (``docker run --read-only``) or as an arbitrary user whose HOME does not
    exist; Apptainer maps the host HOME, which may be full or read-only. Variables that are set to a
    writable place are left alone. Returns the variables that were changed.
    """
    changed = {}
    fallback = check_write(Path(work_dir) / ".cache")
    home_ok = _writable(os.environ.get("HOME", "/nonexistent"))
    if not home_ok:
        changed["HOME"] = os.environ["HOME"] = str(fallback / "home")
        Path(changed["HOME"]).mkdir(parents=True, exist_ok=True)
    for variable, folder in CACHE_VARIABLES.items():
        current = os.environ.get(variable)
        if (current and _writable(current)) or (not current and home_ok):
            continue
        target = fallback / folder
        target.mkdir(parents=True, exist_ok=True)
        changed[variable] = os.environ[variable] = str(target)
    if not os.environ.get("MPLCONFIGDIR"):
        # matplotlib's font cache is a throwaway: keep it in the work dir, not in HOME or TMPDIR (issue 11:
        # nothing is written outside OUTPUT_DIR, the work dir and the FreeSurfer subjects dir)
        os.environ["MPLCONFIGDIR"] = str(fallback / "matplotlib")
        Path(os.environ["MPLCONFIGDIR"]).mkdir(parents=True, exist_ok=True)
    return changed


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for ``--device`` (or a library caller's ``device`` argument).

    ``None`` or ``"auto"``: the GPU when one is available, else the CPU. A ``torch.device`` is returned as
    given. A CUDA device named by string (``"cuda"``, ``"cuda:1"``) while no CUDA GPU is visible is a
    :class:`UsageError`, not a failure deep inside the first tensor copy.
    """
    import torch  # here, not at the top: the command line (``rgenima --help``, config) does not load torch

    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA GPU is visible", hint="use --device cpu or auto")
    return resolved
