"""The one loop that propagates a whole video from its references, for every job that needs one.

``annotator eval`` (one DAVIS sequence scored), ``eval --grid`` (the same once per grid point) and
``annotator propagate`` (one video or a batch, masks written as they come) all run
:func:`run_video`: the engine reads what it needs from the store's video (its original size, and
its frames for guided upsampling and the flow cue), so no job can forget to pass one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from annotator.core.features.store import FeatureStore
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.propagation import FrameResult, PropagationParams

__all__ = ["run_video"]


def run_video(store: FeatureStore, references: Mapping[int, np.ndarray], params: PropagationParams, *,
              timings: dict[str, float] | None = None) -> Iterator[FrameResult]:
    """A result for every frame of ``store.video`` that is not one of ``references`` (label maps at the
    video's original size), at that size; ``timings`` collects the engine's per-stage seconds."""
    video = store.video
    yield from propagate_video(store, references, len(video), params, output_hw=video.hw, timings=timings,
                               frames=video.frame)
