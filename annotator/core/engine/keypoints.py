"""Keypoint propagation: points carried through the video as labels, the paper's pose-tracking task.

Each keypoint of a reference frame becomes one label channel on the feature grid: a Gaussian
heat-map centred on the point (``sigma`` in feature cells). The channels go through the same
engine as masks (:func:`annotator.core.engine.propagation.propagate_frame`, same factors), and each
propagated heat-map is read back as a position: the arg-max cell, refined to sub-cell precision
by the vertex of a parabola through the log-values around it (CRW and UVC read JHMDB poses back the same way, by
the arg-max of each heat-map).

With ``context_labels="hard"`` a propagated frame joins the context as freshly drawn Gaussians
at the positions read back (the heat-maps stay sharp over long runs); with ``"soft"`` it brings
its propagated heat-maps as they are.

Coordinates are image pixels ``(x, y)`` of the frames the features were computed on
(``image_hw``), pixel centres at integers. Point ids are any ints; a reference frame that lacks a
point of the start frame has an empty channel for it there. The keypoints JSON is read and written by
:mod:`annotator.core.io.keypoints_json`; PCK is in :mod:`annotator.core.analysis.metrics`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from annotator.core.errors import UsageError
from annotator.core.engine.pipeline import first_reference
from annotator.core.model.points import Keypoints, Point, check_point_inside
from annotator.core.engine.propagation import (ContextFrame, FeatureSource, PropagationParams, propagate_frame,
                                        references_behind)

DEFAULT_SIGMA = 1.0  # feature cells (8 px at stride 8)

__all__ = ["DEFAULT_SIGMA", "KeypointResult", "Keypoints", "heatmap_peaks", "keypoint_heatmaps", "propagate_keypoints",
           "propagate_keypoints_video"]


@dataclass(frozen=True)
class KeypointResult:
    """What keypoint propagation produced for one frame."""

    index: int
    points: dict[int, Point]
    """Point id -> (x, y) in image pixels."""
    confidence: dict[int, float]
    """Point id -> height of its heat-map peak relative to the reference's (about 1 = as sharp as drawn;
    low when the point's match spread out, e.g. occlusion)."""
    heatmaps: torch.Tensor
    """(P, h, w) propagated heat-maps on the feature grid, channel j is ``point_ids[j]``."""
    point_ids: tuple[int, ...]


def _to_grid(point: Point, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> tuple[float, float]:
    """Image pixel (x, y) -> grid coordinates (gx, gy), cell centres at integers."""
    (ih, iw), (gh, gw) = image_hw, grid_hw
    return (point[0] + 0.5) * gw / iw - 0.5, (point[1] + 0.5) * gh / ih - 0.5


def _to_image(grid_point: tuple[float, float], image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> Point:
    (ih, iw), (gh, gw) = image_hw, grid_hw
    return (grid_point[0] + 0.5) * iw / gw - 0.5, (grid_point[1] + 0.5) * ih / gh - 0.5


def keypoint_heatmaps(points: Keypoints, point_ids: Sequence[int], image_hw: tuple[int, int],
                      grid_hw: tuple[int, int], sigma: float = DEFAULT_SIGMA,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """(P, h, w) Gaussian heat-maps, peak 1 at each point; an empty channel for an id not in ``points``."""
    if sigma <= 0:
        raise UsageError(f"keypoint sigma must be > 0 feature cells, got {sigma}")
    gh, gw = grid_hw
    ys = torch.arange(gh, device=device, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(gw, device=device, dtype=torch.float32).view(1, -1)
    out = torch.zeros((len(point_ids), gh, gw), device=device)
    for j, pid in enumerate(point_ids):
        if pid not in points:
            continue
        check_point_inside(f"keypoint {pid}", points[pid], image_hw)
        gx, gy = _to_grid(points[pid], image_hw, grid_hw)
        out[j] = torch.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma * sigma))
    return out


def _peak_offset(left: float, centre: float, right: float) -> float:
    """Sub-cell offset of a peak from three samples: the vertex of the parabola through their logs.

    Exact for a Gaussian (its log is a parabola); clamped to half a cell so a flat or odd-shaped
    propagated heat-map never moves the point past the neighbouring cell.
    """
    if min(left, centre, right) <= 0:
        return 0.0
    l, c, r = math.log(left), math.log(centre), math.log(right)
    curvature = l - 2 * c + r
    if curvature >= 0:  # not a peak along this axis
        return 0.0
    return max(-0.5, min(0.5, 0.5 * (l - r) / curvature))


def heatmap_peaks(heatmaps: torch.Tensor, point_ids: Sequence[int], image_hw: tuple[int, int]
                  ) -> tuple[dict[int, Point], dict[int, float]]:
    """Each channel's peak in image pixels (arg-max cell, refined to sub-cell precision) and its height."""
    _, gh, gw = heatmaps.shape
    points: dict[int, Point] = {}
    heights: dict[int, float] = {}
    for j, pid in enumerate(point_ids):
        channel = heatmaps[j].float()
        cy, cx = divmod(int(channel.argmax()), gw)
        peak = float(channel[cy, cx])
        gx, gy = float(cx), float(cy)
        if 0 < cx < gw - 1:
            gx += _peak_offset(float(channel[cy, cx - 1]), peak, float(channel[cy, cx + 1]))
        if 0 < cy < gh - 1:
            gy += _peak_offset(float(channel[cy - 1, cx]), peak, float(channel[cy + 1, cx]))
        points[pid] = _to_image((gx, gy), image_hw, (gh, gw))
        heights[pid] = peak
    return points, heights


def propagate_keypoints(features: FeatureSource, references: Mapping[int, Keypoints], start: int, stop: int,
                        params: PropagationParams = PropagationParams(), *, image_hw: tuple[int, int],
                        sigma: float = DEFAULT_SIGMA, stop_at_next_reference: bool = True
                        ) -> Iterator[KeypointResult]:
    """Carry the keypoints of reference frame ``start`` towards ``stop`` (exclusive), one frame at a time.

    The context is built as for masks (:func:`annotator.core.engine.propagation.propagate`): the references
    passed so far plus the last ``params.context`` propagated frames; a reference met on the way
    ends the run when ``stop_at_next_reference``, otherwise it joins the context and is not yielded.
    ``image_hw`` is the size of the frames the keypoints' coordinates refer to.
    """
    params.validate()
    if start not in references:
        raise UsageError(f"frame {start} has no keypoints: place them on it first")
    point_ids = tuple(sorted(references[start]))
    if not point_ids:
        raise UsageError(f"frame {start} has no keypoints: place them on it first")
    if stop == start:
        return
    step = 1 if stop > start else -1

    def heatmaps_on(index: int, points: Keypoints, feats: torch.Tensor) -> torch.Tensor:
        return keypoint_heatmaps(points, point_ids, image_hw, tuple(feats.shape[1:]), sigma, feats.device)

    def reference_frame(index: int) -> tuple[ContextFrame, float]:
        feats = features(index)
        maps = heatmaps_on(index, references[index], feats)
        return ContextFrame(index, feats, maps.to(feats.dtype), params.radius_for_references), float(maps.max())

    first, drawn_peak = reference_frame(start)
    refs = [first, *(reference_frame(i)[0] for i in references_behind(references, start, step))]
    recent: deque[ContextFrame] = deque(maxlen=params.context)
    for index in range(start + step, stop, step):
        if index in references:
            if stop_at_next_reference:
                return
            refs.append(reference_frame(index)[0])
            recent.clear()
            continue
        target = features(index)
        soft = propagate_frame(target, [*refs, *recent], params)  # (P, h, w)
        points, heights = heatmap_peaks(soft, point_ids, image_hw)
        if params.context > 0:
            ctx = heatmaps_on(index, points, target) if params.context_labels == "hard" else soft
            recent.append(ContextFrame(index, target, ctx.to(target.dtype), True))
        confidence = {pid: h / drawn_peak if drawn_peak > 0 else 0.0 for pid, h in heights.items()}
        yield KeypointResult(index, points, confidence, soft.float().cpu(), point_ids)


def propagate_keypoints_video(features: FeatureSource, references: Mapping[int, Keypoints], num_frames: int,
                              params: PropagationParams = PropagationParams(), *, image_hw: tuple[int, int],
                              sigma: float = DEFAULT_SIGMA, point_names: Mapping[int, str] | None = None
                              ) -> Iterator[KeypointResult]:
    """Every frame that has no reference keypoints, as :func:`annotator.core.engine.pipeline.propagate_video` does
    for masks: forward from the earliest reference to the end (later references join the context),
    then backward from it to frame 0. ``point_names`` names the points in messages (else their ids)."""
    first = first_reference(references, num_frames, "keypoints")
    extra = {f: sorted(set(p) - set(references[first])) for f, p in references.items()}
    late = next(((f, ids) for f, ids in sorted(extra.items()) if ids), None)
    if late is not None:  # a run carries the points of its start frame: a later one would be lost
        named = [point_names.get(i, i) for i in late[1]] if point_names else late[1]
        raise UsageError(f"frame {late[0]} places point(s) {named} that the first frame with keypoints "
                         f"({first}) does not: place every point on frame {first} (later frames may omit some)")
    for stop in (num_frames, -1):
        yield from propagate_keypoints(features, references, first, stop, params, image_hw=image_hw,
                                       sigma=sigma, stop_at_next_reference=False)
