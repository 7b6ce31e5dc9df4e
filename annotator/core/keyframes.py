"""Keyframe spans: the frames between two references filled from both ends and fused.

A run from reference A towards the next reference B that only looks behind it ignores the
keyframe just ahead, so its errors grow until B. Here a span (A, B) is propagated backward from B
first (its soft labels kept in a :class:`SoftBuffer`), then forward from A; each forward frame's
soft labels are fused with the backward ones (:func:`fuse`) before they are upsampled, yielded and
put in the forward run's context. Frames before the first reference and after the last have one
keyframe and stay one-way, as CRW and DINO propagate.

Memory stays bounded by the span, not the video: the backward labels of a span live on the
feature grid (L x h x w float16, 25 KB a frame for one object at 480p) and move to an anonymous
temporary file beyond ``SoftBuffer.max_bytes``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
import numpy as np
import torch

from annotator.core.propagation import FUSIONS, Fusion, FrameResult, PropagationParams, propagate, propagate_frame


@dataclass(frozen=True)
class Span:
    """Frames strictly between ``first`` and ``last`` (references; None = the video's start or end)."""

    first: int | None
    last: int | None
    num_frames: int

    @property
    def both_ways(self) -> bool:
        return self.first is not None and self.last is not None

    @property
    def frames(self) -> range:
        lo = -1 if self.first is None else self.first
        hi = self.num_frames if self.last is None else self.last
        return range(lo + 1, hi)


def spans(reference_frames: Sequence[int], num_frames: int) -> list[Span]:
    """The spans of a video cut at its references, in order; empty ones (adjacent references) left out."""
    refs = sorted(set(reference_frames))
    bounds: list[int | None] = [None, *refs, None]
    out = [Span(a, b, num_frames) for a, b in zip(bounds, bounds[1:])]
    return [s for s in out if len(s.frames)]


class SoftBuffer:
    """Soft labels (L, h, w) of the frames of one span, float16: in memory up to ``max_bytes``,
    beyond that in an anonymous temporary file (deleted when closed)."""

    max_bytes = 256 << 20

    def __init__(self, frames: range, shape: tuple[int, ...], max_bytes: int | None = None) -> None:
        self.frames = frames
        size = len(frames) * int(np.prod(shape)) * 2
        limit = self.max_bytes if max_bytes is None else max_bytes
        self._file = None
        if size <= limit:
            self._data = np.zeros((len(frames), *shape), dtype=np.float16)
        else:
            self._file = tempfile.TemporaryFile(prefix="annotator-soft-")
            self._data = np.memmap(self._file, dtype=np.float16, mode="w+", shape=(len(frames), *shape))
        self._present = np.zeros(len(frames), dtype=bool)

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def put(self, index: int, soft: torch.Tensor) -> None:
        slot = self.frames.index(index)
        self._data[slot] = soft.float().cpu().numpy()
        self._present[slot] = True

    def get(self, index: int) -> torch.Tensor | None:
        slot = self.frames.index(index)
        return torch.from_numpy(np.asarray(self._data[slot], dtype=np.float32)) if self._present[slot] else None

    def close(self) -> None:
        self._data = np.zeros((0,), dtype=np.float16)
        if self._file is not None:
            self._file.close()
            self._file = None


def margin(soft: torch.Tensor) -> torch.Tensor:
    """(h, w) margin between the two most probable labels of (L, h, w): 0 = undecided, 1 = certain."""
    if soft.shape[0] < 2:
        return torch.ones(soft.shape[1:], dtype=soft.dtype)
    top2 = soft.topk(2, dim=0).values
    return (top2[0] - top2[1]).clamp(0, 1)


def fuse(forward: torch.Tensor, backward: torch.Tensor, forward_weight: float, rule: Fusion = "confidence"
         ) -> torch.Tensor:
    """Soft labels of a frame from its forward and backward estimates (L, h, w).

    ``forward_weight`` is the distance weight of the forward run: (B - t) / (B - A) for frame t of
    span (A, B). ``distance`` mixes the two with those weights everywhere; ``confidence`` weights each
    cell further by how decided each direction is there (its top-2 margin), so where one direction
    has lost the object and the other has not, the decided one wins.
    """
    backward = backward.to(forward.dtype)
    if rule == "distance":
        return forward_weight * forward + (1 - forward_weight) * backward
    if rule == "confidence":
        wf = forward_weight * (margin(forward) + _MARGIN_FLOOR)
        wb = (1 - forward_weight) * (margin(backward) + _MARGIN_FLOOR)
        total = wf + wb
        return (wf / total)[None] * forward + (wb / total)[None] * backward
    raise ValueError(f"unknown fusion {rule!r}; use one of {', '.join(FUSIONS)}")


_MARGIN_FLOOR = 1e-3
"""Keeps the confidence weights defined where both directions are undecided (distance weights then)."""


def fill_span(
    features,
    references: Mapping[int, np.ndarray],
    first: int,
    last: int,
    params: PropagationParams = PropagationParams(),
    *,
    output_hw: tuple[int, int] | None = None,
    label_ids: Sequence[int] | None = None,
    engine: Callable = propagate_frame,
    timings: dict[str, float] | None = None,
    frames=None,
    provisional: bool = False,
    on_backward: Callable[[FrameResult], None] | None = None,
) -> Iterator[FrameResult]:
    """Every frame strictly between references ``first`` < ``last``, from both ends, fused.

    The backward run from ``last`` goes first; its labels are yielded as ``provisional`` results
    only when asked (the GUI shows them while the forward run is still to come) and passed to
    ``on_backward``. Then the forward run from ``first`` yields the fused results
    (``keyframes == 2``). Each run's context holds both keyframes (the one it starts from and the
    one it goes towards).
    """
    if not first < last:
        raise ValueError(f"a span needs first < last, got {first} and {last}")
    common = dict(output_hw=output_hw, label_ids=label_ids, engine=engine, timings=timings, frames=frames)
    span = range(first + 1, last)
    if not span:
        return
    buffer: SoftBuffer | None = None
    try:
        for result in propagate(features, references, last, first, params, context_references=[last, first],
                                **common):
            if buffer is None:
                buffer = SoftBuffer(span, tuple(result.soft.shape))
            buffer.put(result.index, result.soft)
            if on_backward is not None:
                on_backward(result)
            if provisional:
                yield FrameResult(result.index, result.labels, result.soft, result.label_ids, 1, provisional=True)
        assert buffer is not None

        def combine(index: int, soft: torch.Tensor) -> tuple[torch.Tensor, int]:
            backward = buffer.get(index)
            if backward is None:  # cannot happen: the backward run covered the span
                return soft, 1
            return fuse(soft.float(), backward, (last - index) / (last - first), params.fusion).to(soft.dtype), 2

        yield from propagate(features, references, first, last, params, context_references=[first, last],
                             combine=combine, **common)
    finally:
        if buffer is not None:
            buffer.close()
