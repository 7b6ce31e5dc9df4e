"""Feature maps of a video's frames, computed once per (video, backbone, working resolution) and cached.

Re-propagating after a correction reads the same frames again; the store keeps their features in
a memory cache bounded in bytes (least recently used out first), so only frames that fell out of
the budget are decoded and run through the backbone again. Frames are computed in small batches
in the direction of travel, which is what a propagation run asks for next.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np
import torch

from annotator.core.video import VideoSource, resize_frame, working_hw


class FeatureStore:
    """Callable ``store(i) -> (C, h, w)`` feature map of frame i on the backbone's device."""

    def __init__(self, video: VideoSource, backbone, *, short_side: int | None = 480,
                 max_bytes: int = 1 << 30, batch_size: int = 4) -> None:
        self.video = video
        self.backbone = backbone
        self.working_hw: tuple[int, int] = working_hw(video.hw, short_side)
        self.max_bytes = max_bytes
        self.batch_size = max(1, batch_size)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._last: int | None = None
        self.timings = {"decode": 0.0, "features": 0.0}
        """Seconds spent decoding+resizing frames and running the backbone (for benchmarks)."""
        self.computed = 0
        """How many frames went through the backbone (tests use it to prove reuse)."""

    @property
    def key(self) -> str:
        """Identifies what the features depend on: backbone and working resolution."""
        return f"{self.backbone.name}@{self.working_hw[0]}x{self.working_hw[1]}"

    def __len__(self) -> int:
        return len(self.video)

    def __call__(self, index: int) -> torch.Tensor:
        if index in self._cache:
            self._cache.move_to_end(index)
            self._last = index
            return self._cache[index]
        step = -1 if self._last is not None and index < self._last else 1
        batch = [index]
        for j in range(index + step, index + step * self.batch_size, step):
            if 0 <= j < len(self.video) and j not in self._cache:
                batch.append(j)
            else:
                break
        self._compute(batch)
        self._last = index
        return self._cache[index]

    def prefetch(self, indices: Iterable[int]) -> None:
        """Compute the features of ``indices`` that are not cached yet, in batches."""
        missing = [i for i in indices if i not in self._cache]
        for k in range(0, len(missing), self.batch_size):
            self._compute(missing[k:k + self.batch_size])

    def frame_tensor(self, index: int) -> torch.Tensor:
        """(3, H, W) uint8 RGB frame at the working resolution."""
        frame = self.video.frame(index)
        if frame.shape[:2] != self.working_hw:
            frame = resize_frame(frame, self.working_hw)
        return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)

    def _compute(self, indices: list[int]) -> None:
        t0 = time.perf_counter()
        frames = torch.stack([self.frame_tensor(i) for i in indices])  # (B, 3, H, W) uint8
        t1 = time.perf_counter()
        feats = self.backbone(frames)  # (B, C, h, w)
        if feats.device.type == "cuda":
            torch.cuda.synchronize(feats.device)
        self.timings["decode"] += t1 - t0
        self.timings["features"] += time.perf_counter() - t1
        self.computed += len(indices)
        for i, f in zip(indices, feats):
            f = f.contiguous()
            self._cache[i] = f
            self._bytes += f.numel() * f.element_size()
        while self._bytes > self.max_bytes and len(self._cache) > len(indices):
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        """Forget every cached feature map (e.g. after changing the backbone's settings)."""
        self._cache.clear()
        self._bytes = 0
