"""An optional on-disk fp16 cache of feature maps, so a video's features survive the process.

Re-running an evaluation with other propagation factors, or reopening a video in the GUI, then
costs no backbone time. One folder per (video content hash, backbone, working resolution) holds a
memory-mapped array of every frame's features and a one-byte-per-frame "present" flag written
after the data. It is a cache: anything unreadable is discarded and recomputed, never an error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

_FORMAT = 1


class DiskFeatureCache:
    """Feature maps (C, h, w) of frames 0..n-1 stored as fp16 in ``folder/<key digest>/``."""

    def __init__(self, folder: str | Path, key: str, num_frames: int, shape: tuple[int, int, int]) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        self.folder = Path(folder) / digest
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": _FORMAT, "key": key, "frames": num_frames, "shape": list(shape)}
        meta_path = self.folder / "meta.json"
        fresh = True
        if meta_path.exists():
            try:
                fresh = json.loads(meta_path.read_text()) != meta
            except (OSError, ValueError):
                fresh = True
        if not fresh:
            try:
                self._open("r+", num_frames, shape)
            except (OSError, ValueError):  # truncated or missing arrays: start again
                fresh = True
        if fresh:
            meta_path.unlink(missing_ok=True)
            self._open("w+", num_frames, shape)
            self._present[:] = 0
            self._present.flush()
            meta_path.write_text(json.dumps(meta))  # last: marks the arrays as usable

    def _open(self, mode: str, num_frames: int, shape: tuple[int, int, int]) -> None:
        self._data = np.lib.format.open_memmap(self.folder / "features.npy", mode=mode, dtype=np.float16,
                                               shape=(num_frames, *shape))
        self._present = np.lib.format.open_memmap(self.folder / "present.npy", mode=mode, dtype=np.uint8,
                                                  shape=(num_frames,))
        if self._data.shape != (num_frames, *shape) or self._present.shape != (num_frames,):
            raise ValueError("cached arrays have another shape")

    @classmethod
    def open(cls, folder: str | Path, key: str, num_frames: int,
             shape: tuple[int, int, int] | None) -> DiskFeatureCache | None:
        """The cache for ``key``: the existing one when ``shape`` is None (None if there is none yet)."""
        if shape is None:
            meta_path = Path(folder) / hashlib.sha256(key.encode()).hexdigest()[:24] / "meta.json"
            try:
                meta = json.loads(meta_path.read_text())
                shape = tuple(meta["shape"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        try:
            return cls(folder, key, num_frames, shape)
        except (OSError, ValueError):  # unreadable or truncated files: a cache may be lost, never an error
            return None

    def get(self, index: int) -> torch.Tensor | None:
        """The cached features of frame ``index`` as float32, or None."""
        if not self._present[index]:
            return None
        return torch.from_numpy(np.asarray(self._data[index], dtype=np.float32))

    def put(self, index: int, features: torch.Tensor) -> None:
        self._data[index] = features.detach().to("cpu", torch.float16).numpy()
        self._present[index] = 1

    def flush(self) -> None:
        """Write what was put to disk (data before flags, so a flag never points at missing data)."""
        self._data.flush()
        self._present.flush()
