"""The DAVIS dataset layout: ``JPEGImages/<res>/<seq>/NNNNN.jpg`` beside ``Annotations/<res>/<seq>/NNNNN.png``."""

from __future__ import annotations

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
