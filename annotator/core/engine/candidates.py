"""Memo of each (target frame, context frame) pair's top-k candidates, for re-running spans cheaply.

Which k cells of a context frame a target cell draws its labels from, and with what affinity,
depends on the two frames' features and the geometry (radius, whole frame or not, reference
stride, k, tile), never on the labels. Re-running a span after a correction compares the same
frames again (the keyframes are the same, the recent frames of a run are the same frames), so the
affinities and their top-k, the engine's whole cost, can be looked up; only the new reference's
pairs and the label-weighted sum are computed. One memo serves one video and one backbone (the
caller keeps one per feature store); it keeps at most ``max_bytes`` of candidates, least recently
used first out.

The entries live in one block allocated at the first entry (slots reused after eviction), not in
an allocation each: thousands of long-lived 0.25 MB arrays between the engine's short-lived
buffers kept the C heap from reusing freed memory (a process grew to 23 GB for a 3 GB memo).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import torch


class CandidateMemo:
    """Top-k values (P, k) float32 and flat cell indices (P, k) int32 of frame pairs, bounded in bytes.

    Every entry of one memo has the same shape (one video's grid, one k); an entry of another
    shape empties the memo first.
    """

    def __init__(self, max_bytes: int = 2 * 2**30) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._slots: OrderedDict[Hashable, int] = OrderedDict()  # key -> slot, least recently used first
        self._free: list[int] = []
        self._values: torch.Tensor | None = None  # (slots, P, k) float32
        self._where: torch.Tensor | None = None  # (slots, P, k) int32

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def bytes(self) -> int:
        """Bytes held by the entries (the block is allocated whole; its untouched pages cost nothing)."""
        if self._values is None:
            return 0
        return len(self._slots) * (self._values[0].nbytes + self._where[0].nbytes)

    def keys(self) -> list[Hashable]:
        """The keys held, least recently used first."""
        return list(self._slots)

    def get(self, key: Hashable) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Views of the candidates stored under ``key`` (counted as a hit), or None (a miss).

        Use them before the next :meth:`put`, which may reuse their slot."""
        slot = self._slots.get(key)
        if slot is None:
            self.misses += 1
            return None
        self._slots.move_to_end(key)
        self.hits += 1
        return self._values[slot], self._where[slot]

    def put(self, key: Hashable, values: torch.Tensor, where: torch.Tensor) -> None:
        """Keep copies of ``values`` and ``where`` under ``key``, dropping the least recently used
        beyond the bound."""
        shape = tuple(values.shape)
        if self._values is None or tuple(self._values.shape[1:]) != shape:
            entry = values.numel() * 8  # float32 + int32
            capacity = max(1, self.max_bytes // max(entry, 1))
            self.clear()
            self._values = torch.empty((capacity, *shape), dtype=torch.float32)
            self._where = torch.empty((capacity, *shape), dtype=torch.int32)
            self._free = list(range(capacity - 1, -1, -1))
        slot = self._slots.pop(key, None)
        if slot is None:
            if not self._free:
                _, oldest = self._slots.popitem(last=False)
                self._free.append(oldest)
            slot = self._free.pop()
        self._values[slot].copy_(values)
        self._where[slot].copy_(where)
        self._slots[key] = slot

    def clear(self) -> None:
        self._slots.clear()
        self._free = []
        self._values = self._where = None
