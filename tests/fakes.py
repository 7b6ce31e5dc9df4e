"""Test doubles shared by the unit tests, the GUI tests and the crash worker: an in-memory video and a
fast colour backbone."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

from annotator.core.errors import VideoError
from annotator.core.video import VideoSource


class ArrayVideo(VideoSource):
    """A video held in memory: frames (n, h, w, 3) uint8 RGB; the ``broken`` frames raise `VideoError`
    as a corrupt video's would."""

    def __init__(self, frames: np.ndarray, name: str = "tiny", broken: tuple[int, ...] = ()) -> None:
        super().__init__(f"/nonexistent/{name}")
        self.name = name
        self._frames = frames
        self.broken = broken
        self.hw = tuple(frames.shape[1:3])

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    def count_frames_exactly(self) -> int:
        return len(self._frames)

    def validate(self) -> None:
        pass

    def _decode(self, index: int) -> np.ndarray:
        if index in self.broken:
            raise VideoError(f"frame {index} cannot be decoded")
        return self._frames[index]


class ColourBackbone:
    """Colour features at stride 8 (the mean colour of each 8x8 cell, centred, plus a constant channel,
    L2-normalised): fast, deterministic, good enough to track a coloured square.

    ``delay_s`` per frame makes a run last long enough to be cancelled or killed; ``frames_seen`` counts
    the frames it computed and ``threads`` names the thread of each call (the read-ahead's or the caller's).
    """

    device = torch.device("cpu")

    def __init__(self, delay_s: float = 0.0, name: str = "colour") -> None:
        self.delay_s = delay_s
        self.name = self.cache_key = name
        self.frames_seen = 0
        self.threads: list[str] = []

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        self.frames_seen += frames.shape[0]
        self.threads.append(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s * frames.shape[0])
        x = frames.float() / 255.0  # (B, 3, H, W)
        x = F.avg_pool2d(x, 8, ceil_mode=True)  # (B, 3, h, w)
        x = torch.cat([x - 0.45, torch.full_like(x[:, :1], 0.05)], dim=1)  # (B, 4, h, w)
        return F.normalize(x, dim=1)
