"""Output paths, checked before any work starts: a user's file is replaced only when they said so.

Every command that writes (``propagate``, ``eval``, ``keypoints``, ``export``) asks these two
functions about each of its outputs first, so a refusal costs no computation and leaves nothing
half written, and each refusal reads the same. Qt-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from annotator.core.errors import SaveError, UsageError

__all__ = ["check_mask_folder", "check_new_file", "check_new_files", "make_folder"]


def _check_parents(path: Path) -> None:
    # mkdir under a file fails with a bare "Not a directory": say which path is the file
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{parent} is a file, so {path} cannot be created under it")
            return


def check_new_file(path: str | os.PathLike[str] | None, overwrite: bool) -> None:
    """Refuse ``path`` if it exists (unless ``overwrite``), is a folder, or lies under a file."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UsageError(f"{path} exists; pass --overwrite to replace it")
    _check_parents(path)


def check_mask_folder(folder: str | os.PathLike[str], overwrite: bool) -> None:
    """Refuse ``folder`` for NNNNN.png masks if it is a file, lies under one, or already holds masks
    (unless ``overwrite``)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file; give a folder for the masks")
    if not overwrite and folder.is_dir() and any(folder.glob("*.png")):
        raise UsageError(f"{folder} already holds masks; pass --overwrite to replace them")
    _check_parents(folder)


def check_new_files(paths: Iterable[str | os.PathLike[str] | None], overwrite: bool) -> None:
    for path in paths:
        check_new_file(path, overwrite)


def make_folder(folder: str | os.PathLike[str]) -> Path:
    """Create an output folder (and its parents); `SaveError` when that fails (no permission, a file there)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"cannot create folder {folder}: {exc.strerror or exc}") from exc
    return folder
