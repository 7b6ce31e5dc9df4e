"""Memo of each (target frame, context frame) pair's top-k candidates, for re-running spans cheaply.

Which k cells of a context frame a target cell draws its labels from, and with what affinity,
depends on the two frames' features and the geometry (radius, whole frame or not, reference
stride, k, tile), never on the labels. Re-running a span after a correction compares the same
frames again (the keyframes are the same, the recent frames of a run are the same frames), so the
affinities and their top-k, the engine's whole cost, can be looked up; only the new reference's
pairs and the label-weighted sum are computed. One memo serves one video and one backbone (the
caller keeps one per feature store); it keeps at most ``max_bytes`` of candidates, least recently
used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import torch


class CandidateMemo:
    """Top-k values (P, k) float32 and flat cell indices (P, k) int32 of frame pairs, bounded in bytes."""

    def __init__(self, max_bytes: int = 2 * 2**30) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Hashable]:
        """The keys held, least recently used first."""
        return list(self._entries)

    def get(self, key: Hashable) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The candidates stored under ``key`` (counted as a hit), or None (a miss)."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: Hashable, values: torch.Tensor, where: torch.Tensor) -> None:
        """Keep ``values`` and ``where`` under ``key``, dropping the least recently used beyond the bound."""
        values, where = values.float().contiguous(), where.to(torch.int32).contiguous()
        size = values.nbytes + where.nbytes
        if key in self._entries:
            old = self._entries.pop(key)
            self.bytes -= old[0].nbytes + old[1].nbytes
        self._entries[key] = (values, where)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, (v, w) = self._entries.popitem(last=False)
            self.bytes -= v.nbytes + w.nbytes

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0
