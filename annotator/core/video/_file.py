"""`VideoFileSource`: frames of a video file decoded by OpenCV, read forward and seeking only on jumps.

A random seek in H.264 costs ~180 ms (decode from the previous key frame), so the decoder's
position is kept between requests: the next frame reads on, a frame a little ahead reads forward
(caching what it passes), and only a backward or far jump seeks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import cv2
import numpy as np

from annotator.core.errors import VideoError, size_text
from annotator.core.video._base import DEFAULT_CACHE_BYTES, DEFAULT_FOLDER_FPS, VideoSource, check_readable

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")

# Reading up to this many frames forward is cheaper than one seek.
READ_AHEAD_FRAMES = 30
# Memory for one chunk of a backward pass.
BACKWARD_CHUNK_BYTES = 128 * 2**20


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own log lines (``[mov,mp4,... @ 0x...] moov atom not found``) printed on stderr
    before our one-line error; call before OpenCV first uses FFmpeg, which reads the level then.

    Done on first use, not at import (nothing changes the environment at import); a level the user
    set in ``OPENCV_FFMPEG_LOGLEVEL`` wins.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET


class VideoFileSource(VideoSource):
    """A video file (.mp4 .avi .mov .mkv .m4v .webm) read through ``cv2.VideoCapture``.

    Frame count: ``num_frames`` starts as the count in the file's header (``header_frame_count``)
    and is only trusted until proven wrong. When a read fails before that count, the video really
    ends there: ``num_frames`` drops to the true count, ``frame_count_exact`` becomes True and
    ``frame(i)`` for ``i`` past the true end raises `VideoError` saying so. A header without a
    count makes the constructor scan the file. `count_frames_exactly` scans on request.

    ``seek_count`` counts the seeks done (reopening the file to start over counts as one).
    """

    def __init__(self, path: str | os.PathLike[str], *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        super().__init__(path, cache_bytes=cache_bytes)
        check_readable(self.path)
        if self.path.is_dir():
            raise VideoError(f"{self.path} is a folder, not a video file")
        if self.path.suffix.lower() not in VIDEO_EXTENSIONS:
            raise VideoError(f"{self.path.name} has an unknown video extension '{self.path.suffix}' "
                             f"(expected one of {' '.join(VIDEO_EXTENSIONS)})")
        if self.path.stat().st_size == 0:
            raise VideoError(f"{self.path.name} is an empty file (0 bytes)")
        self.name = self.path.stem
        self.seek_count = 0
        self.backward_chunk_bytes = BACKWARD_CHUNK_BYTES
        self._cap: cv2.VideoCapture | None = None
        self._pos = 0                # index of the frame the next read returns
        self._pos_proven = True      # False right after a seek, until a read succeeds there
        self._open_capture()
        assert self._cap is not None
        header = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.header_frame_count = int(header) if math.isfinite(header) and header > 0 else 0
        self._num_frames = self.header_frame_count
        self.frame_count_exact = False
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FOLDER_FPS
        first = self._read_raw()
        if first is None:
            self._release()
            raise VideoError(f"{self.path.name} cannot be decoded: its first frame is unreadable "
                             "(corrupt, truncated or an unsupported codec)")
        self.hw = (int(first.shape[0]), int(first.shape[1]))
        self.cache.put(0, first)
        self._pos = 1
        # the newest decoded frame, kept even when the cache is off: frame 0 after opening is
        # read already, and asking twice for the same frame must not seek
        self._last: tuple[int, np.ndarray] | None = (0, first)
        if self._num_frames <= 0:
            self.count_frames_exactly()

    # ---- public ------------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self._num_frames

    def count_frames_exactly(self) -> int:
        """Read (without converting) every remaining frame to count them; sets ``num_frames``.

        Scans on from the decoder's position when that position is proven, else from frame 0.
        """
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.path.name} is closed")
            if self.frame_count_exact:
                return self._num_frames
            if not self._pos_proven:
                self._reopen()
            assert self._cap is not None
            n = self._pos
            while self._cap.grab():
                n += 1
            self._pos = n
            self._num_frames = n
            self.frame_count_exact = True
            return n

    def validate(self) -> None:
        """Scan the whole file (`count_frames_exactly`); a video file has no cheaper check."""
        self.count_frames_exactly()

    # ---- decoding ----------------------------------------------------------------------------

    def _open_capture(self) -> None:
        quiet_ffmpeg()
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"{self.path.name} cannot be opened as a video "
                             "(corrupt, truncated or an unsupported format)")
        self._cap = cap
        self._pos = 0
        self._pos_proven = True

    def _reopen(self) -> None:
        self.seek_count += 1
        self._release()
        self._open_capture()

    def _release(self) -> None:
        self._last = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _read_raw(self) -> np.ndarray | None:
        assert self._cap is not None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        return _to_rgb(bgr)

    def _read_forward_to(self, index: int) -> np.ndarray | None:
        """Read from the decoder's position up to frame ``index``; None when the video ends first.

        Frames passed on the way are cached only when near ``index`` (a short read-ahead
        probably wants them next; the start of a from-scratch reread would only evict others).
        """
        while True:
            frame = self._read_raw()
            if frame is None:
                if self._pos_proven:
                    self._num_frames = self._pos
                    self.frame_count_exact = True
                return None
            if frame.shape[:2] != self.hw:
                raise VideoError(f"{self.path.name}: frame {self._pos} is {size_text(frame.shape)} "
                                 f"but the video is {size_text(self.hw)}")
            if index - self._pos < READ_AHEAD_FRAMES:
                self.cache.put(self._pos, frame)
            self._last = (self._pos, frame)
            self._pos += 1
            self._pos_proven = True
            if self._pos > index:
                return frame

    def _out_of_range(self, index: int) -> Exception:
        if self.frame_count_exact and self._num_frames <= index < self.header_frame_count:
            return VideoError(f"{self.path.name} ends after frame {self._num_frames - 1} "
                              f"({self._num_frames} frames) although its header says "
                              f"{self.header_frame_count}: frame {index} cannot be read")
        return super()._out_of_range(index)

    def _decode(self, index: int) -> np.ndarray:
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if self._cap is None:
            self._reopen()
        if not 0 <= index - self._pos < READ_AHEAD_FRAMES:
            self._seek(index)
        frame = self._read_forward_to(index)
        if frame is None and not self.frame_count_exact:
            # a seek past a truncated end may claim success: only a scan from the start can tell
            self.count_frames_exactly()
        if frame is None and index < self._num_frames:
            # the frame exists but the seek did not reach it: read from the start instead
            self._reopen()
            frame = self._read_forward_to(index)
        if frame is None:
            raise self._out_of_range(index)
        return frame

    def _seek(self, index: int) -> None:
        """Put the decoder at ``index``, checking where it really landed."""
        assert self._cap is not None
        if index == 0:
            self._reopen()
            return
        self.seek_count += 1
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        landed = self._cap.get(cv2.CAP_PROP_POS_FRAMES)
        if landed == index:
            self._pos = index
            self._pos_proven = False
            return
        # Inexact seek (some containers, or a target past a truncated end): start over and read
        # forward; _decode keeps only the last few frames it passes.
        self._reopen()

    def _iter_backward(self, start: int, end: int, step: int) -> Iterator[np.ndarray]:
        if start >= self.num_frames or start <= end:
            yield from super()._iter_backward(start, end, step)
            return
        frame_bytes = self.hw[0] * self.hw[1] * 3
        chunk = max(1, self.backward_chunk_bytes // frame_bytes)
        hi = start
        while hi > end:
            lo = max(end + 1, hi - chunk + 1)
            # one seek per chunk, then forward reads; only the frames the step wants are held
            held = [(j, self.frame(j)) for j in range(lo, hi + 1) if (start - j) % -step == 0]
            for _, frame in reversed(held):
                yield frame
            hi = lo - 1
