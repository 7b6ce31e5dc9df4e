"""The `VideoSource` interface shared by video files and frame folders, and its byte-bounded frame cache."""

from __future__ import annotations

import math
import operator
import os
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from annotator.core.errors import VideoError

DEFAULT_CACHE_BYTES = 512 * 2**20
DEFAULT_FOLDER_FPS = 24.0


def is_readable(path: Path) -> bool:
    """Whether this process may read ``path`` (and list it, for a folder).

    A function of its own so that tests can simulate a missing permission when they run as root,
    for whom ``os.access`` always says yes.
    """
    mode = os.R_OK | os.X_OK if path.is_dir() else os.R_OK
    return os.access(path, mode)


def check_readable(path: Path) -> None:
    """Raise `VideoError` unless ``path`` exists and may be read."""
    if not path.exists():
        raise VideoError(f"{path} does not exist")
    if not is_readable(path):
        raise VideoError(f"{path} cannot be read: permission denied")


class FrameCache:
    """Least-recently-used map frame index -> frame, bounded by the bytes of the frames it holds.

    A frame larger than the whole budget is not kept; ``max_bytes=0`` disables caching.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, index: int) -> bool:
        return index in self._frames

    def indices(self) -> list[int]:
        """Cached frame indices, least recently used first."""
        return list(self._frames)

    def get(self, index: int) -> np.ndarray | None:
        frame = self._frames.get(index)
        if frame is not None:
            self._frames.move_to_end(index)
        return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        old = self._frames.pop(index, None)
        if old is not None:
            self.nbytes -= old.nbytes
        self._frames[index] = frame
        self.nbytes += frame.nbytes
        while self.nbytes > self.max_bytes:
            _, evicted = self._frames.popitem(last=False)
            self.nbytes -= evicted.nbytes

    def clear(self) -> None:
        self._frames.clear()
        self.nbytes = 0


class VideoSource(ABC):
    """A video with lazy random access to its frames: RGB ``uint8`` arrays (H, W, 3) at the original size.

    Every frame returned is a new array the caller owns (a copy of the cached one), so callers may
    modify it or hand it to ``torch.from_numpy``. Decoding is serialised by a lock, so one source
    may be read from several threads (one decodes at a time).
    """

    path: Path
    name: str
    hw: tuple[int, int]

    def __init__(self, path: str | os.PathLike[str], *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.path = Path(path)
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.cache = FrameCache(cache_bytes)
        self._lock = threading.RLock()
        self._closed = False
        self._fps = DEFAULT_FOLDER_FPS

    # ---- size and timing -------------------------------------------------------------------

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Number of frames (see the concrete class for when it can change)."""

    def __len__(self) -> int:
        return self.num_frames

    @property
    def fps(self) -> float:
        """Frames per second, used for display and export only; settable."""
        return self._fps

    @fps.setter
    def fps(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"fps must be a positive number, got {value}")
        self._fps = value

    @abstractmethod
    def count_frames_exactly(self) -> int:
        """The true number of frames, found by reading; updates ``num_frames``."""

    @abstractmethod
    def validate(self) -> None:
        """Check the whole source up front; raise `VideoError` on the first problem."""

    # ---- access ------------------------------------------------------------------------------

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based) as a new RGB ``uint8`` array (H, W, 3).

        Raises `IndexError` outside ``0 <= index < num_frames`` and `VideoError` when the frame
        cannot be decoded.
        """
        index = operator.index(index)
        with self._lock:
            if self._closed:
                raise ValueError(f"{self.path.name} is closed")
            if not 0 <= index < self.num_frames:
                raise self._out_of_range(index)
            frame = self.cache.get(index)
            if frame is None:
                frame = self._decode(index)
                self.cache.put(index, frame)
            return frame.copy()

    def iter_frames(self, start: int | None = None, stop: int | None = None,
                    step: int = 1) -> Iterator[np.ndarray]:
        """Frames ``start, start+step, ...`` up to ``stop`` (excluded), like ``range``.

        Defaults: forward (``step > 0``) from frame 0 to the end; backward (``step < 0``) from the
        last frame down to frame 0 included. With ``stop=None`` a forward pass ends quietly at the
        true end of a video whose header promised more frames; an explicit ``stop`` past the true
        end raises `VideoError`. Backward passes over video files decode forward in chunks of
        bounded size and reverse them, so they do not seek once per frame.
        """
        step = operator.index(step)
        if step == 0:
            raise ValueError("step must not be 0")
        if step > 0:
            return self._iter_forward(0 if start is None else operator.index(start), stop, step)
        first = self.num_frames - 1 if start is None else operator.index(start)
        end = -1 if stop is None else operator.index(stop)
        return self._iter_backward(first, end, step)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.iter_frames()

    def _iter_forward(self, start: int, stop: int | None, step: int) -> Iterator[np.ndarray]:
        i = start
        # num_frames is re-read on every step: it shrinks when a lying header is found out
        while i < (self.num_frames if stop is None else stop):
            try:
                frame = self.frame(i)
            except VideoError:
                if stop is None and i >= self.num_frames:
                    return
                raise
            yield frame
            i += step

    def _iter_backward(self, start: int, end: int, step: int) -> Iterator[np.ndarray]:
        for i in range(start, end, step):
            yield self.frame(i)

    def _out_of_range(self, index: int) -> Exception:
        return IndexError(f"frame {index} is outside {self.name} (frames 0..{self.num_frames - 1})")

    @abstractmethod
    def _decode(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (in range, not cached) and return it; called with the lock held.

        A subclass implements this, ``num_frames``, `count_frames_exactly` and `validate`, and
        sets ``hw``; `frame` caches what it returns.
        """

    # ---- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the decoder and the cached frames; later reads raise `ValueError`."""
        with self._lock:
            self._closed = True
            self.cache.clear()
            self._release()

    def _release(self) -> None:
        """Free decoder resources (subclasses that hold some override this)."""

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        h, w = self.hw
        return (f"{type(self).__name__}({str(self.path)!r}, {self.num_frames} frames, {w}x{h}, "
                f"{self.fps:g} fps)")
