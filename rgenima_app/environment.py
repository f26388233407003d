"""Facts about where rgenima runs: container detection and package versions (recorded with every run)."""
from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from rgenima_app import __version__

#: Packages whose versions are recorded in each run's log (they decide the results).
RECORDED_PACKAGES = (
    "torch", "transformers", "tokenizers", "peft", "deepspeed", "safetensors", "numpy", "scipy",
    "pandas", "nibabel", "nipype", "pybids", "bed-reader", "cyvcf2", "click", "jinja2",
)


def container() -> dict | None:
    """The container rgenima runs in, as BIDS ``GeneratedBy.Container`` (None outside one)."""
    tag = os.environ.get("RGENIMA_CONTAINER_TAG", f"rgenima:{__version__}")
    if os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER"):
        image = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
        return {"Type": "singularity", "Tag": tag, "URI": f"file://{image}"}
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
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
