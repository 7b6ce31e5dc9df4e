"""The DAVIS dataset layout: ``JPEGImages/<res>/<seq>/NNNNN.jpg`` beside ``Annotations/<res>/<seq>/NNNNN.png``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from annotator.core.errors import UsageError


def frames_dir(root: str | Path, sequence: str, resolution: str = "480p") -> Path:
    """Folder of a sequence's frames."""
    return Path(root) / "JPEGImages" / resolution / sequence


def annotations_dir(root: str | Path, sequence: str, resolution: str = "480p") -> Path:
    """Folder of a sequence's label maps."""
    return Path(root) / "Annotations" / resolution / sequence


def list_sequences(root: str | Path, resolution: str = "480p") -> list[str]:
    """Names of the sequences under a DAVIS root that have both frames and annotations, sorted."""
    root = Path(root)
    images = root / "JPEGImages" / resolution
    if not images.is_dir():
        raise UsageError(f"{root} is not a DAVIS root: it has no JPEGImages/{resolution} folder")
    names = sorted(p.name for p in images.iterdir() if p.is_dir() and annotations_dir(root, p.name, resolution).is_dir())
    if not names:
        raise UsageError(f"{root} has no sequence with both JPEGImages/{resolution} and Annotations/{resolution}")
    return names


def select_sequences(root: str | Path, resolution: str = "480p", sequences: Sequence[str] | None = None) -> list[str]:
    """The sequences of a DAVIS root (:func:`list_sequences`), only ``sequences`` when given (in the
    root's order); `UsageError` naming the first one the root does not hold."""
    names = list_sequences(root, resolution)
    if not sequences:
        return names
    unknown = sorted(set(sequences) - set(names))
    if unknown:
        raise UsageError(f"unknown sequence {unknown[0]!r}; {root} has: {', '.join(names)}")
    return [n for n in names if n in sequences]
