"""Propagate a video from its first ground-truth mask and score it (the DAVIS semi-supervised protocol).

`evaluate_store` is the one run-and-score of a sequence (through :func:`annotator.core.runs.runner.run_video`,
the loop every whole-video job shares); `evaluate_video` opens a video (file or frame folder) beside
a folder of ground-truth label maps for it; `evaluate_davis_sequence` finds those two in a DAVIS
root, ``annotator demo`` passes the bundled sample clip and its ground truth, and ``eval --grid``
(:func:`annotator.core.runs.experiments.evaluate_grid`) calls `evaluate_store` once per grid point.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.core.io import davis
from annotator.core.features.store import FeatureStore
from annotator.core.errors import UsageError
from annotator.core.io.labels import object_ids, read_mask_folder, write_mask_folder
from annotator.core.analysis.metrics import SequenceScores, evaluate_sequence
from annotator.core.engine.propagation import PropagationParams
from annotator.core.runs.runner import run_video
from annotator.core.video import DEFAULT_SHORT_SIDE, open_video


@dataclass
class SequenceRun:
    """Scores and timing of one propagated sequence."""

    scores: SequenceScores
    frames: int
    """Frames produced by propagation (every frame but the first)."""
    seconds: float
    """Wall time of the propagation run: decoding, features, propagation, upsampling."""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def evaluate_davis_sequence(
    root: str | Path,
    name: str,
    backbone,
    params: PropagationParams = PropagationParams(),
    *,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    resolution: str = "480p",
    write_dir: str | Path | None = None,
    on_frame: Callable[[int], None] | None = None,
    feature_cache: str | Path | None = None,
    keyframes: int | None = None,
) -> SequenceRun:
    """Propagate DAVIS sequence ``name`` from its first annotated frame (or, with ``keyframes`` K, from
    its keyframes: :func:`keyframe_indices`) and score it against its annotations; ``write_dir``: the
    masks go to ``write_dir/name/``."""
    return evaluate_video(davis.frames_dir(root, name, resolution), davis.annotations_dir(root, name, resolution),
                          backbone, params, name=name, short_side=short_side,
                          write_dir=None if write_dir is None else Path(write_dir) / name,
                          on_frame=on_frame, feature_cache=feature_cache, keyframes=keyframes)


def evaluate_video(
    video_path: str | Path,
    groundtruth_dir: str | Path,
    backbone,
    params: PropagationParams = PropagationParams(),
    *,
    name: str,
    short_side: int | None = DEFAULT_SHORT_SIDE,
    write_dir: str | Path | None = None,
    on_frame: Callable[[int], None] | None = None,
    feature_cache: str | Path | None = None,
    keyframes: int | None = None,
) -> SequenceRun:
    """Propagate ``video_path`` (a video file or frame folder) from the first label map of ``groundtruth_dir``
    (``NNNNN.png``) and score every frame against that folder; ``write_dir``: the masks go there as ``NNNNN.png``.

    With ``keyframes`` K the references are the ground truth of every K-th frame and of the last
    frame, and every other frame is scored (the keyframe protocol).
    """
    gt = read_mask_folder(groundtruth_dir)
    with open_video(video_path) as video:
        # read-ahead: the backbone of the next frames overlaps the propagation (1.15x on 2 cores),
        # so the per-stage timings below are busy times that may add up to more than the wall time
        store = FeatureStore(video, backbone, short_side=short_side, disk_cache=feature_cache, read_ahead=True)
        try:
            return evaluate_store(store, gt, params, name=name, keyframes=keyframes, write_dir=write_dir,
                                  on_frame=on_frame)
        finally:
            store.close()


def evaluate_store(
    store: FeatureStore,
    gt: Mapping[int, np.ndarray],
    params: PropagationParams,
    *,
    name: str,
    keyframes: int | None = None,
    write_dir: str | Path | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> SequenceRun:
    """Propagate the video of ``store`` from its ground truth ``gt`` (the first label map, or with
    ``keyframes`` K every K-th and the last) and score it: what :func:`evaluate_video` does once and
    ``eval --grid`` once per grid point, sharing the store. Timings count only this run's work."""
    first = min(gt)
    references = {first: gt[first]} if keyframes is None else {i: gt[i] for i in keyframe_indices(sorted(gt), keyframes)}
    predictions: dict[int, np.ndarray] = dict(references)
    run_timings: dict[str, float] = {}
    store_before = dict(store.timings)
    start = time.perf_counter()
    for result in run_video(store, references, params, timings=run_timings):
        predictions[result.index] = result.labels
        if on_frame is not None:
            on_frame(result.index)
    seconds = time.perf_counter() - start
    timings = {**{k: v - store_before.get(k, 0.0) for k, v in store.timings.items()}, **run_timings}
    timings["other"] = max(0.0, seconds - sum(timings.values()))
    if write_dir is not None:
        write_mask_folder(write_dir, predictions)
    if keyframes is None:
        scores = evaluate_sequence(predictions, gt, name=name)
    else:  # the objects of the first frame, scored on every frame that is not a keyframe
        scored = {i: m for i, m in gt.items() if i not in references}
        scores = evaluate_sequence(predictions, scored, name=name, object_ids=object_ids(gt[first]),
                                   skip_first_last=False)
    return SequenceRun(scores, len(predictions) - len(references), seconds, timings)


def keyframe_indices(frames: list[int], every: int) -> list[int]:
    """The keyframes of the keyframe protocol: every ``every``-th of ``frames`` (from the first) and the last."""
    if every < 1:
        raise UsageError(f"--keyframes must be >= 1, got {every}")
    return sorted({*frames[::every], frames[-1]})
