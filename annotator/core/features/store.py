"""Feature maps of a video's frames, computed once per (video, backbone, working resolution) and cached.

Re-propagating after a correction reads the same frames again; the store keeps their features in
a memory cache bounded in bytes (least recently used out first), so only frames that fell out of
the budget are decoded and run through the backbone again (or read back from the optional disk
cache, :mod:`annotator.core.features.cache`). Frames are computed in small batches in the direction
of travel, which is what a propagation run asks for next.

With ``read_ahead=True`` the next batch in the direction of travel is computed in a background
thread while the caller works on the current frame, so decoding and the backbone of frame t+1
overlap the propagation of frame t (torch and OpenCV release the GIL while they compute).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from annotator.core.features.cache import DiskFeatureCache
from annotator.core.video import DEFAULT_SHORT_SIDE, VideoSource, hash_video, resize_frame, working_hw


def default_batch_size(device: torch.device | str) -> int:
    """Frames per backbone call: 1 on a CPU, 4 elsewhere.

    On a CPU batching only loses: lite0 at 854x480 on 2 cores took 45 ms/frame one at a time,
    66 in twos and 106 in fours (bfloat16; the activations of several frames fall out of cache).
    GPUs need batches to fill the device.
    """
    return 1 if torch.device(device).type == "cpu" else 4


class FeatureStore:
    """Callable ``store(i) -> (C, h, w)`` feature map of frame i on the backbone's device."""

    def __init__(self, video: VideoSource, backbone, *, short_side: int | None = DEFAULT_SHORT_SIDE,
                 max_bytes: int = 1 << 30, batch_size: int | None = None, disk_cache: str | Path | None = None,
                 read_ahead: bool = False) -> None:
        self.video = video
        self.backbone = backbone
        self.working_hw: tuple[int, int] = working_hw(video.hw, short_side)
        self.max_bytes = max_bytes
        self.batch_size = max(1, batch_size if batch_size is not None else default_batch_size(backbone.device))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._last: int | None = None
        self.timings = {"decode": 0.0, "features": 0.0}
        """Seconds spent decoding+resizing frames and running the backbone (for benchmarks)."""
        self.computed = 0
        """How many frames went through the backbone (tests use it to prove reuse)."""
        self._disk_folder = disk_cache
        self._disk: DiskFeatureCache | None = None
        # One lock for the cache's bookkeeping (held briefly), one for computing (held while the
        # backbone runs), so a cache hit never waits for a background batch to finish.
        self._cache_lock = threading.Lock()
        self._compute_lock = threading.Lock()
        self._ahead: ThreadPoolExecutor | None = ThreadPoolExecutor(1, "feature-read-ahead") if read_ahead else None
        self._ahead_job: Future | None = None

    @property
    def key(self) -> str:
        """Identifies what the features depend on: backbone and working resolution."""
        backbone_key = getattr(self.backbone, "cache_key", self.backbone.name)
        return f"{backbone_key}@{self.working_hw[0]}x{self.working_hw[1]}"

    def __len__(self) -> int:
        return len(self.video)

    def __call__(self, index: int) -> torch.Tensor:
        step = -1 if self._last is not None and index < self._last else 1
        self._last = index
        feats = self._cached(index)
        if feats is None:
            with self._compute_lock:
                feats = self._cached(index)  # the read-ahead may have computed it meanwhile
                if feats is None:
                    self._compute(self._batch_from(index, step))
                    feats = self._cached(index)
        if self._ahead is not None:
            self._read_ahead(index + step, step)
        assert feats is not None
        return feats

    def _cached(self, index: int) -> torch.Tensor | None:
        with self._cache_lock:
            feats = self._cache.get(index)
            if feats is not None:
                self._cache.move_to_end(index)
            return feats

    def _batch_from(self, index: int, step: int) -> list[int]:
        """``index`` and up to batch_size - 1 uncached frames after it in the direction of travel."""
        batch = [index]
        for j in range(index + step, index + step * self.batch_size, step):
            if 0 <= j < len(self.video) and j not in self._cache:
                batch.append(j)
            else:
                break
        return batch

    def _read_ahead(self, index: int, step: int) -> None:
        """Start computing, in the background, the first uncached batch within a batch of ``index``
        in the direction of travel, unless a read-ahead is still running."""
        if self._ahead_job is not None and not self._ahead_job.done():
            return
        ahead = (j for j in range(index, index + step * self.batch_size, step) if 0 <= j < len(self.video))
        index = next((j for j in ahead if j not in self._cache), -1)
        if index < 0:
            return

        def job() -> None:
            try:
                with self._compute_lock:
                    if index not in self._cache:
                        self._compute(self._batch_from(index, step))
            except Exception:  # noqa: BLE001 - not lost: the caller computes the frame itself and gets the error
                pass

        assert self._ahead is not None
        self._ahead_job = self._ahead.submit(job)

    def close(self) -> None:
        """Stop the read-ahead thread (waits for a batch in progress)."""
        if self._ahead is not None:
            self._ahead.shutdown(wait=True)
            self._ahead = None

    def frame_tensor(self, index: int) -> torch.Tensor:
        """(3, H, W) uint8 RGB frame at the working resolution."""
        frame = self.video.frame(index)
        if frame.shape[:2] != self.working_hw:
            frame = resize_frame(frame, self.working_hw)
        return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)

    def _disk_cache(self, shape: tuple[int, int, int] | None) -> DiskFeatureCache | None:
        """The disk cache, opened on first use (created once the feature shape is known)."""
        if self._disk is None and self._disk_folder is not None:
            key = f"{hash_video(self.video)}|{self.key}"
            self._disk = DiskFeatureCache.open(self._disk_folder, key, len(self.video), shape)
        return self._disk

    def _remember(self, index: int, feats: torch.Tensor) -> None:
        with self._cache_lock:
            self._cache[index] = feats
            self._bytes += feats.numel() * feats.element_size()

    def _compute(self, indices: list[int]) -> None:
        disk = self._disk_cache(None)
        if disk is not None:
            for i in list(indices):
                feats = disk.get(i)
                if feats is not None:
                    self._remember(i, feats.to(self.backbone.device))
                    indices.remove(i)
        if indices:
            t0 = time.perf_counter()
            frames = torch.stack([self.frame_tensor(i) for i in indices])  # (B, 3, H, W) uint8
            t1 = time.perf_counter()
            feats = self.backbone(frames)  # (B, C, h, w)
            if feats.device.type == "cuda":
                torch.cuda.synchronize(feats.device)
            self.timings["decode"] += t1 - t0
            self.timings["features"] += time.perf_counter() - t1
            self.computed += len(indices)
            disk = self._disk_cache(tuple(feats.shape[1:]))
            for i, f in zip(indices, feats):
                self._remember(i, f.contiguous())
                if disk is not None:
                    disk.put(i, f)
            if disk is not None:
                disk.flush()
        with self._cache_lock:
            while self._bytes > self.max_bytes and len(self._cache) > self.batch_size:
                _, old = self._cache.popitem(last=False)
                self._bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        """Forget every cached feature map (e.g. after changing the backbone's settings)."""
        with self._compute_lock, self._cache_lock:
            self._cache.clear()
            self._bytes = 0
