"""Keyframe spans: the frames between two references filled from both ends and fused.

A run from reference A towards the next reference B that only looks behind it ignores the
keyframe just ahead, so its errors grow until B. Here a span (A, B) is propagated backward from B
and forward from A, each run holding both keyframes in its context (and, by default, every
reference behind its start: :func:`span_context`), and the two runs' soft labels are fused cell by
cell (:func:`fuse`) before they are upsampled. Frames before the first reference and after the last
have one keyframe and stay one-way, as CRW and DINO propagate.

Memory stays bounded by the span, not the video: the two runs' labels live on the feature grid
(L x h x w float16, 25 KB a frame for one object at 480p) and move to an anonymous temporary file
beyond ``SoftBuffer.max_bytes``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from annotator.core.engine.propagation import (FUSIONS, Fusion, FrameResult, PropagationParams, label_ids_of, propagate,
                                        propagate_frame)
from annotator.core.engine.upsampling import margin, soft_to_label_maps
from annotator.core.errors import UsageError


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


def fuse(forward: torch.Tensor, backward: torch.Tensor, forward_weight: float, rule: Fusion = "distance",
         forward_match: torch.Tensor | None = None, backward_match: torch.Tensor | None = None) -> torch.Tensor:
    """Soft labels of a frame from its forward and backward estimates (L, h, w).

    ``forward_weight`` is the distance weight of the forward run: (B - t) / (B - A) for frame t of
    span (A, B).

    * ``distance``: the two mixed with the distance weights everywhere.
    * ``confidence``: the distance weights times how decided each direction is at each cell (its
      top-2 margin).
    * ``match``: the distance weights times how well each run found the cell in its context, per
      cell: exp of its match strength (``FrameResult.match``, the log of its softmax's normaliser)
      at half the temperature's sharpness. At full sharpness that is one softmax over both runs'
      candidates; halved, a run that matched a cell clearly better still wins it, while small
      differences leave the distance weights in charge.
    """
    backward = backward.to(forward.dtype)
    if rule == "distance":
        return forward_weight * forward + (1 - forward_weight) * backward
    if rule == "confidence":
        wf = forward_weight * (margin(forward) + _MARGIN_FLOOR)
        wb = (1 - forward_weight) * (margin(backward) + _MARGIN_FLOOR)
        total = wf + wb
        return (wf / total)[None] * forward + (wb / total)[None] * backward
    if rule == "match":
        if forward_match is None or backward_match is None:
            raise ValueError("the match fusion needs both runs' match strengths")
        prior = math.log(max(forward_weight, 1e-6)) - math.log(max(1 - forward_weight, 1e-6))
        share = torch.sigmoid((forward_match - backward_match) / _MATCH_SOFTENING + prior)[None]
        if share.shape[1:] != forward.shape[1:]:  # matches are per feature cell, labels per sub-cell
            share = F.interpolate(share[None], size=forward.shape[1:], mode="nearest")[0]
        return share * forward + (1 - share) * backward
    raise ValueError(f"unknown fusion {rule!r}; use one of {', '.join(FUSIONS)}")


_MARGIN_FLOOR = 1e-3
"""Keeps the confidence weights defined where both directions are undecided (distance weights then)."""
_MATCH_SOFTENING = 2.0
"""Match strengths are divided by this before they weigh the runs (chosen on the original ten DAVIS
sequences against 1 and 4: bench/RESULTS.md)."""


def span_context(references: Sequence[int], start: int, stop: int | None, rule: str) -> list[int]:
    """The references in the context of a run from keyframe ``start`` towards ``stop`` (the span's other
    keyframe; None for a one-way span), nearest to ``start`` first after the keyframes themselves.

    ``rule`` is ``PropagationParams.span_references``: ``ends`` keeps the span's keyframes only (a
    correction then changes only its own span), ``behind`` adds every reference behind ``start`` (as a
    one-way run holds them), ``earlier`` every reference earlier in the video than the span (both runs
    of a span; a one-way span as ``behind``), ``all`` every reference of the video.
    """
    ends = [start] if stop is None else [start, stop]
    if rule == "ends":
        return ends
    step = 1 if stop is None or stop > start else -1
    if stop is None:  # one-way: going away from the other references
        others = [i for i in references if i != start]
        step = 1 if not others or min(others) < start else -1
    if rule == "earlier" and stop is not None:
        extra = [i for i in references if i < min(start, stop)]
    elif rule in ("behind", "earlier"):  # a one-way span holds the references behind its start either way
        extra = [i for i in references if (i - start) * step < 0]
    else:
        extra = [i for i in references if i not in ends]
    return [*ends, *sorted((i for i in extra if i not in ends), key=lambda i: abs(i - start))]


def span_results(frames: int, provisional: bool) -> int:
    """How many results :func:`fill_span` yields for a span of ``frames`` frames (for progress bars)."""
    return 3 * frames if provisional else frames


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
    memo=None,
) -> Iterator[FrameResult]:
    """Every frame strictly between references ``first`` < ``last``, from both ends, fused.

    A run goes backward from ``last`` to ``first``, then one forward from ``first`` to ``last``;
    each holds both keyframes in its context (the one it starts from and the one it goes towards),
    so each can find the object as it looks at either end, and the other ``references`` that
    ``params.span_references`` names (:func:`span_context`). Their soft labels wait in a
    :class:`SoftBuffer` each, then every frame of the span is fused (:func:`fuse`,
    ``params.fusion``) and yielded in order with ``keyframes == 2``. With ``provisional`` the two
    runs' own frames are yielded as they come too, flagged ``provisional`` (the GUI shows them
    meanwhile): :func:`span_results` results in all. ``memo``: a
    :class:`~annotator.core.engine.candidates.CandidateMemo` the runs share (see :func:`propagate`).
    """
    if not first < last:
        raise ValueError(f"a span needs first < last, got {first} and {last}")
    span = range(first + 1, last)
    if not span:
        return
    if frames is None:  # a FeatureStore brings its video's frames (as in propagate)
        frames = getattr(getattr(features, "video", None), "frame", None)
    if params.colour_grow and frames is None:
        raise UsageError("growing masks by colour (on by default) needs the video frames: pass frames= or colour_grow=False")
    if label_ids is None:
        label_ids = label_ids_of([references[first], references[last]])
    if output_hw is None:
        output_hw = tuple(references[first].shape[:2])
    label_ids = tuple(label_ids)
    common = dict(output_hw=output_hw, label_ids=label_ids, engine=engine, timings=timings, frames=frames, memo=memo)
    with_match = params.fusion == "match"
    # the appearance model shapes one-way runs only: between two keyframes it lost (K = 20 on the
    # original ten of davis2016, 0.895 -> 0.888; bench/RESULTS.md), far from one it gains
    run_params = replace(params, appearance=0.0)
    # the two runs' own labels are provisional (the fused ones replace them): no colour cut for them
    run_params = replace(run_params, colour_grow=False)
    soft: dict[int, SoftBuffer] = {}
    match: dict[int, SoftBuffer] = {}
    try:
        for start, stop, step in ((last, first, -1), (first, last, 1)):
            context = span_context(list(references), start, stop, params.span_references)
            for result in propagate(features, references, start, stop, run_params, context_references=context,
                                    with_match=with_match, **common):
                if step not in soft:
                    soft[step] = SoftBuffer(span, tuple(result.soft.shape))
                    if with_match:
                        match[step] = SoftBuffer(span, (1, *result.match.shape))
                soft[step].put(result.index, result.soft)
                if with_match:
                    match[step].put(result.index, result.match[None])
                if provisional:
                    yield FrameResult(result.index, result.labels, result.soft, label_ids, 1, provisional=True,
                                      taught=result.taught)
        t0 = time.perf_counter()
        for index in span:
            forward, backward = soft[1].get(index), soft[-1].get(index)
            assert forward is not None and backward is not None  # both runs covered the span
            matches = [match[step].get(index)[0] for step in (1, -1)] if with_match else [None, None]
            fused = fuse(forward, backward, (last - index) / (last - first), params.fusion, *matches)
            frame = frames(index) if (params.upsample == "guided" or params.colour_grow) and frames is not None else None
            labels, taught = soft_to_label_maps(fused, label_ids, output_hw, params.upsample, frame,
                                                params.part_groups, params.background_bias, params.colour_grow)
            if timings is not None:
                timings["fusion"] = timings.get("fusion", 0.0) + time.perf_counter() - t0
            yield FrameResult(index, labels, fused, label_ids, 2, taught=taught)
            t0 = time.perf_counter()
    finally:
        for buffer in (*soft.values(), *match.values()):
            buffer.close()
