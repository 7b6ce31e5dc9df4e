"""Exports: DAVIS-layout label maps (and optionally frames), a quick overlay video for review, keypoints JSON.

Each export is a generator over frames (it yields the index of each frame written), so the GUI
runs it in its background worker with a progress bar; its inputs (the label maps) are captured
on the GUI thread by :func:`snapshot_labels` before the job starts. Keypoints are a few numbers
per frame: :func:`write_keypoints_json` writes them at once, in the command line's
``annotator keypoints`` format. Qt-free on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from annotator.core.io import davis
from annotator.core.model.annotation import AnnotationModel, FramePoints, KeypointInfo
from annotator.core.io.atomic import atomic_write_text
from annotator.core.errors import SaveError, UsageError
from annotator.core.io.keypoints_json import keypoints_json_text
from annotator.core.io.labels import DAVIS_PALETTE, write_mask
from annotator.core.io.outputs import make_folder
from annotator.core.video import VideoSource, quiet_ffmpeg

RESOLUTION_FOLDER = "480p"


def snapshot_labels(model: AnnotationModel) -> dict[int, np.ndarray]:
    """Copies of every non-empty label map (what an export job may read off the GUI thread)."""
    return {i: np.array(model.labels(i)) for i in model.frames_with_labels()}


def davis_paths(root: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """(Annotations folder, JPEGImages folder) of sequence ``name`` under a DAVIS ``root``."""
    return davis.annotations_dir(root, name, RESOLUTION_FOLDER), davis.frames_dir(root, name, RESOLUTION_FOLDER)


def export_davis(video: VideoSource, labels: Mapping[int, np.ndarray], root: str | os.PathLike[str],
                 name: str, *, with_images: bool = False) -> Iterator[int]:
    """Write ``Annotations/480p/<name>/00000.png`` for every frame (empty frames as background).

    Label maps are written at the video's original resolution as indexed DAVIS-palette PNGs
    (atomically); with ``with_images`` the frames go to ``JPEGImages/480p/<name>/00000.jpg``.
    """
    ann_dir, img_dir = davis_paths(root, name)
    for folder in (ann_dir, img_dir) if with_images else (ann_dir,):
        make_folder(folder)
    empty = np.zeros(tuple(video.hw), dtype=np.uint8)
    for i in range(len(video)):
        write_mask(ann_dir / f"{i:05d}.png", labels.get(i, empty))
        if with_images:
            bgr = cv2.cvtColor(video.frame(i), cv2.COLOR_RGB2BGR)
            path = img_dir / f"{i:05d}.jpg"
            if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise SaveError(f"cannot write {path}")
        yield i


def blend_overlay(frame: np.ndarray, labels: np.ndarray, colors: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """RGB frame with the objects tinted in ``colors`` (256, 3) and their borders drawn solid."""
    out = frame.astype(np.float32)
    objects = (labels > 0) & (labels < 255)
    tint = colors[labels].astype(np.float32)
    out[objects] = (1 - opacity) * out[objects] + opacity * tint[objects]
    border = np.zeros(labels.shape, dtype=bool)
    border[1:] |= labels[1:] != labels[:-1]
    border[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    border &= objects
    out[border] = tint[border]
    return out.astype(np.uint8)


def export_overlay_video(video: VideoSource, labels: Mapping[int, np.ndarray], path: str | os.PathLike[str],
                         colors: np.ndarray | None = None, opacity: float = 0.5) -> Iterator[int]:
    """Write an mp4 (``mp4v``) of the frames with their label overlay, at the video's fps and size."""
    path = Path(path)
    colors = DAVIS_PALETTE if colors is None else colors
    h, w = video.hw
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix or '.mp4'}")
    quiet_ffmpeg()
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(video.fps), (int(w), int(h)))
    if not writer.isOpened():
        raise SaveError(f"cannot write a video at {path}")
    try:
        for i in range(len(video)):
            frame = video.frame(i)
            lab = labels.get(i)
            if lab is not None:
                frame = blend_overlay(frame, lab, colors, opacity)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            yield i
    except BaseException:
        writer.release()
        tmp.unlink(missing_ok=True)
        raise
    writer.release()
    os.replace(tmp, path)


class _StoredFrame(NamedTuple):
    index: int
    points: dict
    confidence: dict


def keypoints_export_text(keypoints: Sequence[KeypointInfo], frame_points: Mapping[int, FramePoints],
                          image_hw: tuple[int, int]) -> str:
    """The keypoints of every frame as the JSON of ``annotator keypoints`` (see
    :func:`annotator.core.io.keypoints_json.keypoints_json_text`, which writes it)."""
    if not any(fp.points for fp in frame_points.values()):
        raise UsageError("there are no keypoints to export: place some first (Keypoint tool)")
    # the JSON names points by position in the list of names: ids become 1..N in id order
    ordered = sorted(keypoints, key=lambda k: k.id)
    renumber = {k.id: j + 1 for j, k in enumerate(ordered)}
    references = {f: {renumber[i]: p for i, p in fp.points.items()} for f, fp in frame_points.items() if fp.reference}
    propagated = [_StoredFrame(f, {renumber[i]: p for i, p in fp.points.items()},
                               {renumber[i]: fp.confidence_of(i) for i in fp.points})
                  for f, fp in frame_points.items() if not fp.reference]
    return keypoints_json_text([k.name for k in ordered], references, propagated, image_hw)


def write_keypoints_json(model: AnnotationModel, path: str | os.PathLike[str]) -> int:
    """Write the model's keypoints to ``path`` atomically; returns the number of frames with points."""
    frame_points = model.all_frame_points()
    atomic_write_text(path, keypoints_export_text(model.keypoints, frame_points, model.hw))
    return len(frame_points)
