"""What "open" means in the app: a video file, a frame folder or a DAVIS sequence, with its masks.

A DAVIS sequence ``<root>/JPEGImages/<res>/<seq>`` brings the label maps of
``<root>/Annotations/<res>/<seq>`` when that folder exists: they become reference frames (the file
actions take a mask on every frame as ground truth instead, the first as the one reference). The
bundled sample clip brings its first-frame mask the same way. Qt-free; errors are the core's
one-line `AnnotatorError`s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotator.core.errors import MaskError, UsageError
from annotator.core.io.labels import read_mask, read_mask_folder, resize_labels
from annotator.core.runs.sample import SAMPLE_MASKS, SAMPLE_VIDEO
from annotator.core.video import VideoSource, open_video


@dataclass
class Opened:
    """A video ready to annotate and the reference label maps that came with it."""

    video: VideoSource
    references: dict[int, np.ndarray]
    masks_from: Path | None = None


def davis_annotations_for(frames_dir: Path) -> Path | None:
    """``.../Annotations/<res>/<seq>`` beside ``.../JPEGImages/<res>/<seq>``, if it exists."""
    parts = frames_dir.absolute().parts  # not resolve(): a symlinked sequence keeps its own layout
    if len(parts) >= 3 and parts[-3] == "JPEGImages":
        candidate = Path(*parts[:-3], "Annotations", parts[-2], parts[-1])
        if candidate.is_dir():
            return candidate
    return None


def fit_masks(masks: dict[int, np.ndarray], video: VideoSource) -> dict[int, np.ndarray]:
    """Masks resized (nearest) to the video's size, frames outside the video refused."""
    out = {}
    for index, labels in masks.items():
        if not 0 <= index < len(video):
            raise MaskError(f"a mask is given for frame {index} but {video.name} has {len(video)} frames")
        if labels.shape != tuple(video.hw):
            labels = resize_labels(labels, tuple(video.hw))
        out[index] = labels
    return out


def open_source(path: str | os.PathLike[str], masks: str | os.PathLike[str] | None = None) -> Opened:
    """Open ``path`` (video, frame folder, DAVIS sequence) and the masks that belong to it."""
    path = Path(path)
    if (path / "project.json").is_file():  # the file actions cannot open projects: say where to
        raise UsageError(f"{path} is an annotation project: open it with File > Open project… (Ctrl+Shift+O)")
    video = open_video(path)
    try:
        masks_dir = Path(masks) if masks is not None else (davis_annotations_for(path) if path.is_dir() else None)
        references = fit_masks(read_mask_folder(masks_dir), video) if masks_dir is not None else {}
    except BaseException:
        video.close()
        raise
    return Opened(video, references, masks_dir)


def open_sample() -> Opened:
    """The bundled sample clip with its first-frame mask."""
    return open_source(SAMPLE_VIDEO, SAMPLE_MASKS if SAMPLE_MASKS.is_dir() else None)


def read_single_mask(path: str | os.PathLike[str], video: VideoSource) -> np.ndarray:
    """One mask file for the current frame, resized to the video."""
    return fit_masks({0: read_mask(path)}, video)[0]
