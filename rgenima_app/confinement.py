"""Writes stay inside their roots: OUTPUT_DIR, the work dir and the FreeSurfer subjects dir.

A symbolic link inside a root (``OUTPUT_DIR/sub-01 -> /elsewhere``) would carry every write below it out of
the root, where rgenima promises to write nothing. The roots are registered when a run starts
(``register_root``); every write into a registered root (``check_write``: atomic writes, the ROI cache, a
FreeSurfer subject that recon-all makes) first resolves its path and is refused with exit 73 naming the link
when it leaves the root. The root itself may be a link: the user chose it. Reading through links (a
reused FreeSurfer subject, ``fsaverage``) is not affected.
"""
from __future__ import annotations

from pathlib import Path

from rgenima_app.errors import OutputNotWritableError

_ROOTS: dict[Path, str] = {}


def register_root(root: str | Path, what: str) -> Path:
    """Confine the writes below ``root`` (absolute, as given) to it; ``what`` names it in messages."""
    root = Path(root).absolute()
    _ROOTS[root] = what
    return root


def escaping_link(path: str | Path, root: str | Path) -> tuple[Path, Path] | None:
    """The first symbolic link between ``root`` and ``path`` whose target lies outside ``root``, with its
    target; None when ``path`` stays inside (parts that do not exist yet cannot be links)."""
    root, path = Path(root).absolute(), Path(path).absolute()
    inside = root.resolve()
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            target = current.resolve()
            if not target.is_relative_to(inside):
                return current, target
        elif not current.exists():
            return None
    return None


def check_write(path: str | Path) -> Path:
    """Refuse (exit 73) a write to ``path`` that a link carries out of the innermost registered root."""
    path = Path(path).absolute()
    roots = [r for r in _ROOTS if path.is_relative_to(r)]
    if not roots:
        return path
    root = max(roots, key=lambda r: len(r.parts))
    found = escaping_link(path, root)
    if found is not None:
        link, target = found
        raise OutputNotWritableError(
            f"refusing to write {path}: {link} is a symbolic link to {target}, outside {_ROOTS[root]} {root}",
            hint=f"rgenima writes only inside {_ROOTS[root]}: remove the link {link} (or give that folder as "
                 "the root itself)")
    return path
