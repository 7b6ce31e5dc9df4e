"""Whole-video jobs over the propagation engine: every frame of a video from a set of references.

The command line, the batch and the evaluation need the whole video. With ``params.both_ways``
(the default) each span between two references is filled from both ends and fused
(:mod:`annotator.core.engine.keyframes`); the frames after the last reference are propagated forward from
it and those before the first backward from it. Without it the run goes forward from the earliest
reference to the end, passing every later reference as context, then backward to frame 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from annotator.core.errors import UsageError
from annotator.core.engine.keyframes import Span, fill_span, span_context, spans
from annotator.core.engine.propagation import FeatureSource, FrameResult, PropagationParams, label_ids_of, propagate


def first_reference(references: Mapping[int, object], num_frames: int, what: str) -> int:
    """The earliest reference frame, after checking there is one and that all lie inside the video.

    ``what`` names a reference in messages ("a mask", "keypoints").
    """
    if not references:
        raise UsageError(f"no reference given: at least one frame needs {what}")
    outside = sorted(i for i in references if not 0 <= i < num_frames)
    if outside:
        raise UsageError(f"{what} is given for frame {outside[0]} but the video has {num_frames} frames")
    return min(references)


def propagate_video(
    features: FeatureSource,
    references: Mapping[int, np.ndarray],
    num_frames: int,
    params: PropagationParams = PropagationParams(),
    *,
    output_hw: tuple[int, int] | None = None,
    label_ids: Sequence[int] | None = None,
    engine=None,
    timings: dict[str, float] | None = None,
    frames=None,
) -> Iterator[FrameResult]:
    """Yield a result for every frame of the video that is not a reference: the spans between
    references in order, then the frames after the last reference, then those before the first.

    ``engine`` replaces the local-window engine (benchmarks pass the naive one); ``timings`` and
    ``frames`` are passed on to :func:`propagate`.
    """
    first = first_reference(references, num_frames, "a mask")
    if label_ids is None:
        label_ids = label_ids_of(list(references.values()))
    if output_hw is None:
        output_hw = tuple(references[first].shape[:2])  # type: ignore[assignment]
    options = dict(output_hw=output_hw, label_ids=label_ids, timings=timings, frames=frames)
    if engine is not None:
        options["engine"] = engine
    if not params.both_ways:
        for stop in (num_frames, -1):
            yield from propagate(features, references, first, stop, params, stop_at_next_reference=False, **options)
        return
    for span in spans(list(references), num_frames):
        if span.both_ways:
            yield from propagate_span(features, references, span, params, **options)
    # then the one-way ends: after the last reference (forward), before the first (backward)
    one_way = [s for s in spans(list(references), num_frames) if not s.both_ways]
    for span in sorted(one_way, key=lambda s: s.first is None):
        yield from propagate_span(features, references, span, params, **options)


def propagate_span(features: FeatureSource, references: Mapping[int, np.ndarray], span: Span,
                   params: PropagationParams = PropagationParams(), **options) -> Iterator[FrameResult]:
    """The frames of one span: both ways between two references, one way before the first or after the last.

    Which references each run holds in its context is ``params.span_references``
    (:func:`annotator.core.engine.keyframes.span_context`). ``options`` are those of
    :func:`annotator.core.engine.keyframes.fill_span`.
    """
    if span.both_ways:
        yield from fill_span(features, references, span.first, span.last, params, **options)
        return
    options.pop("provisional", None)  # a one-way span has nothing to fuse: every result is final
    start = span.first if span.first is not None else span.last
    stop = span.num_frames if span.first is not None else -1
    context = span_context(list(references), start, None, params.span_references)
    yield from propagate(features, references, start, stop, params, context_references=context, **options)
