"""Working-resolution sizing, frame resizing, and a fast content hash of a video for cache keys."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from annotator.core.errors import UsageError, VideoError
from annotator.core.video._base import VideoSource, check_readable
from annotator.core.video._folder import list_frame_files

# Bytes hashed from each end of a video file, and from the start of each frame file.
HASH_FILE_EDGE_BYTES = 4 * 2**20
HASH_FRAME_HEAD_BYTES = 16 * 2**10
_HASH_VERSION = b"annotator-video-hash-v1\n"

DEFAULT_SHORT_SIDE = 600
"""The default working resolution (frames' short side, pixels). 600 rather than 480 since session 39:
a simulated annotator painted 17.0 frames per 100 instead of 19.0 on the 20 sequences of
../shared/data/davis2016 (fewer on both halves) and mean J&F from frame 0 rose 0.811 -> 0.827, for about
2.2x the time per frame (bench/RESULTS.md, "Working size 600 as the default"). The radius in cells
(``PropagationParams.radius``) is tied to it: change both together."""


def working_hw(original_hw: tuple[int, int], short_side: int | None = DEFAULT_SHORT_SIDE) -> tuple[int, int]:
    """Size (h, w) with the short side exactly ``short_side`` and the aspect ratio kept.

    The long side is rounded to the nearest integer, halves up: 1920x1080 gives 853x480
    (853.33), where DAVIS's own 480p release has 854. Frames are enlarged as well as shrunk.
    ``short_side`` None or 0 keeps ``original_hw``.
    """
    h, w = (int(v) for v in original_hw)
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {w}x{h} (width x height)")
    if not short_side:
        return (h, w)
    if short_side < 0:
        raise UsageError(f"the working resolution's short side must be a positive number of pixels, "
                         f"got {short_side}")
    scale = short_side / min(h, w)
    if h <= w:
        return (int(short_side), max(1, int(w * scale + 0.5)))
    return (max(1, int(h * scale + 0.5)), int(short_side))


def resize_frame(frame: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``frame`` (H, W[, C]) resized to ``hw``: area averaging when shrinking, bilinear otherwise.

    Returns ``frame`` itself when it already has that size.
    """
    h, w = int(hw[0]), int(hw[1])
    if frame.shape[:2] == (h, w):
        return frame
    shrinking = h <= frame.shape[0] and w <= frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interpolation)


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    size = path.stat().st_size
    digest.update(b"file %d\n" % size)
    with open(path, "rb") as f:
        digest.update(f.read(HASH_FILE_EDGE_BYTES))
        if size > HASH_FILE_EDGE_BYTES:
            f.seek(max(HASH_FILE_EDGE_BYTES, size - HASH_FILE_EDGE_BYTES))
            digest.update(f.read(HASH_FILE_EDGE_BYTES))


def _hash_folder(frame_paths: list[Path], digest: hashlib._Hash) -> None:
    digest.update(b"folder %d\n" % len(frame_paths))
    for path in frame_paths:
        size = path.stat().st_size
        digest.update(path.name.encode("utf-8", "surrogateescape") + b"\0%d\0" % size)
        with open(path, "rb") as f:
            digest.update(f.read(HASH_FRAME_HEAD_BYTES))


def hash_video(source_or_path: VideoSource | str | os.PathLike[str]) -> str:
    """Hex sha256 of a video's content, cheap to compute, for keying feature caches and projects.

    A file hashes its size and its first and last 4 MiB; a folder hashes each frame file's name,
    size and first 16 KiB. The location is not part of it, so a moved or copied video keeps its
    hash; edits in the middle of a large file or late in a big frame file go unnoticed.
    """
    if isinstance(source_or_path, VideoSource):
        path = source_or_path.path
        frame_paths = getattr(source_or_path, "frame_paths", None)
    else:
        path = Path(source_or_path)
        check_readable(path)
        frame_paths = list_frame_files(path) if path.is_dir() else None
    digest = hashlib.sha256(_HASH_VERSION)
    try:
        if frame_paths is not None:
            _hash_folder(frame_paths, digest)
        else:
            _hash_file(path, digest)
    except OSError as e:
        raise VideoError(f"{getattr(e, 'filename', None) or path} cannot be read for hashing: "
                         f"{e.strerror or e}") from None
    return digest.hexdigest()
