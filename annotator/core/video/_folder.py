"""`FrameFolderSource`: a folder of numbered image files (.jpg .jpeg .png .bmp), e.g. a DAVIS sequence."""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from annotator.core.errors import VideoError, read_bytes, size_text
from annotator.core.video._base import DEFAULT_CACHE_BYTES, VideoSource, check_readable

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# EXIF orientation is ignored so that decoded frames match the header sizes PIL reports.
_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that orders digit runs by value: ``frame2`` before ``frame10``."""
    parts = re.split(r"(\d+)", name.lower())
    # split() puts text at even positions and numbers at odd ones, so items compare like with like
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def list_frame_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` in natural order; `VideoError` when there are none.

    Hidden files (``.name``, e.g. macOS ``._0001.jpg`` companions) are skipped.
    """
    try:
        entries = [e for e in os.scandir(folder) if not e.name.startswith(".")]
    except PermissionError:
        raise VideoError(f"{folder} cannot be read: permission denied") from None
    except OSError as e:
        raise VideoError(f"{folder} cannot be listed: {e.strerror}") from None
    if not entries:
        raise VideoError(f"folder {folder} is empty")
    images = [Path(e.path) for e in entries
              if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    if not images:
        raise VideoError(f"folder {folder} has no image files ({' '.join(IMAGE_EXTENSIONS)})")
    images.sort(key=lambda p: natural_key(p.name))
    return images


class FrameFolderSource(VideoSource):
    """Frames stored one image per file in a folder, in natural order of their names.

    The first frame is decoded on opening (its size is the video's ``hw``); others are decoded
    when asked for, and a frame of another size or an undecodable file raises `VideoError` then.
    `validate` checks every file's header up front without decoding. ``fps`` defaults to 24.
    """

    def __init__(self, path: str | os.PathLike[str], *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 fps: float | None = None) -> None:
        super().__init__(path, cache_bytes=cache_bytes)
        check_readable(self.path)
        if not self.path.is_dir():
            raise VideoError(f"{self.path} is not a folder")
        self.name = self.path.resolve().name
        self.frame_paths: list[Path] = list_frame_files(self.path)
        if fps is not None:
            self.fps = fps
        first = self._read_image(self.frame_paths[0])
        self.hw = (int(first.shape[0]), int(first.shape[1]))
        self.cache.put(0, first)

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    def count_frames_exactly(self) -> int:
        """The number of image files (every file is one frame)."""
        return len(self.frame_paths)

    def validate(self) -> None:
        """Check that every file is an image of the first frame's size, reading headers only."""
        h, w = self.hw
        for path in self.frame_paths:
            try:
                with Image.open(path) as im:
                    fw, fh = im.size
            except UnidentifiedImageError:
                raise VideoError(f"{path} is not a readable image") from None
            except PermissionError:
                raise VideoError(f"{path} cannot be read: permission denied") from None
            except OSError as e:
                raise VideoError(f"{path} cannot be read: {e}") from None
            if (fh, fw) != (h, w):
                raise self._size_error(path, (fh, fw))

    def _decode(self, index: int) -> np.ndarray:
        path = self.frame_paths[index]
        frame = self._read_image(path)
        if frame.shape[:2] != self.hw:
            raise self._size_error(path, frame.shape[:2])
        return frame

    def _size_error(self, path: Path, hw: tuple[int, ...]) -> VideoError:
        first = self.frame_paths[0].name
        return VideoError(f"frames differ in size in {self.path}: {path.name} is {size_text(hw)} "
                          f"but {first} is {size_text(self.hw)} (width x height)")

    @staticmethod
    def _read_image(path: Path) -> np.ndarray:
        # bytes + imdecode rather than imread: imread fails on non-ASCII paths on Windows
        data = np.frombuffer(read_bytes(path, VideoError, "frame"), dtype=np.uint8)
        bgr = cv2.imdecode(data, _IMREAD_FLAGS) if data.size else None
        if bgr is None:
            raise VideoError(f"{path} cannot be decoded as an image (corrupt or not an image)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
