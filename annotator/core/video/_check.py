"""Which frames of a video can be read, and a source cut to those.

A header can promise 40 frames of which 7 decode; a frame folder can hold a broken or odd-sized
image. Opening reads one frame only (fast); :func:`check_frames` decodes them all, in order, from
a source of its own (for a background job), and :class:`FirstFrames` keeps only the readable start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from annotator.core.errors import VideoError
from annotator.core.video._base import VideoSource


@dataclass(frozen=True)
class FrameCheck:
    readable: int
    """Frames 0..readable-1 decode."""
    total: int
    """Frames the source announced when it was opened."""
    problem: str | None = None
    """Why frame ``readable`` cannot be read (None: every announced frame can)."""

    @property
    def complete(self) -> bool:
        return self.readable >= self.total


SCAN_REPORT_EVERY = 25


def scan_frames(path: str | os.PathLike[str]) -> Iterator[FrameCheck]:
    """Decode every frame of the video at ``path`` in order: a `FrameCheck` every few frames (progress;
    a background job can stop between them), the last one final: how many read before the first failure."""
    from annotator.core.video import open_video

    with open_video(path, cache_bytes=0) as video:
        total = len(video)
        readable = 0
        try:
            for _ in video.iter_frames():  # ends quietly where a lying header's frames run out
                readable += 1
                if readable % SCAN_REPORT_EVERY == 0:
                    yield FrameCheck(readable, total)
        except VideoError as exc:
            yield FrameCheck(readable, total, str(exc))
            return
    if readable < total:
        yield FrameCheck(readable, total, f"{video.name} ends after frame {readable - 1} although its header "
                                          f"announces {total} frames")
    else:
        yield FrameCheck(readable, total)


def check_frames(path: str | os.PathLike[str]) -> FrameCheck:
    """:func:`scan_frames` to the end: how many frames read before the first failure, and why."""
    last = FrameCheck(0, 0)
    for last in scan_frames(path):
        pass
    return last


class FirstFrames(VideoSource):
    """The first ``count`` frames of ``source`` (which this object owns and closes)."""

    def __init__(self, source: VideoSource, count: int) -> None:
        if not 1 <= count <= len(source):
            raise ValueError(f"count must be 1..{len(source)}, got {count}")
        super().__init__(source.path, cache_bytes=0)  # the source caches
        self.source = source
        self.name = source.name
        self.hw = source.hw
        self.fps = source.fps
        self._count = count

    @property
    def num_frames(self) -> int:
        return self._count

    def count_frames_exactly(self) -> int:
        return self._count

    def validate(self) -> None:
        for i in range(self._count):
            self.source.frame(i)

    @property
    def frame_paths(self):  # hash_video hashes a folder's frame files
        paths = getattr(self.source, "frame_paths", None)
        return paths[:self._count] if paths is not None else None

    def _decode(self, index: int) -> np.ndarray:
        return self.source.frame(index)

    def _release(self) -> None:
        self.source.close()
