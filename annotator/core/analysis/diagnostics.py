"""Why propagation fails, frame by frame: scores against ground truth, error maps, confidence.

Everything here works on one frame at a time, so the GUI and the command line can score frames
as a propagation run yields them:

* :func:`frame_scores` gives DAVIS J and F per object for one frame (the same functions as
  :func:`annotator.core.analysis.metrics.evaluate_sequence`, so the numbers agree to the last bit);
* :func:`error_map` classifies every pixel as correct, false positive, false negative or wrong
  object;
* :func:`confidence_map` is the per-pixel margin between the two most probable labels of the
  soft labels, upsampled to the output size (0 = undecided, 1 = certain);
* :func:`frame_uncertainty` condenses a frame's soft labels into one number, an estimate of
  ``1 - J`` of its worst object made from the propagation's own probabilities (never from ground
  truth), which :mod:`annotator.core.analysis.suggest` uses to pick the next frame to correct.

:class:`GroundTruthTracker` collects per-frame scores for a whole sequence as they arrive.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from annotator.core.errors import MaskError, size_text
from annotator.core.io.labels import VOID
from annotator.core.engine.propagation import labels_to_grid
from annotator.core.engine.upsampling import margin
from annotator.core.analysis.metrics import DEFAULT_BOUND_TH, boundary_f, jaccard

__all__ = [
    "ErrorKind",
    "FrameScore",
    "GroundTruthTracker",
    "confidence_map",
    "error_map",
    "frame_scores",
    "frame_uncertainty",
    "margin",
]


class ErrorKind(enum.IntEnum):
    """What an error map pixel says about the prediction there."""

    CORRECT = 0
    FALSE_POSITIVE = 1
    """Predicted an object where the ground truth has background."""
    FALSE_NEGATIVE = 2
    """Predicted background where the ground truth has an object."""
    WRONG_OBJECT = 3
    """Predicted one object where the ground truth has another."""
    VOID = 4
    """The ground truth is void (255): not scored."""


@dataclass(frozen=True)
class FrameScore:
    """DAVIS J and F of one object on one frame."""

    frame: int
    object_id: int
    j: float
    f: float

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def _check_pair(pred: np.ndarray, gt: np.ndarray, frame: int | None) -> None:
    if pred.shape != gt.shape:
        where = f" of frame {frame}" if frame is not None else ""
        raise MaskError(f"the prediction{where} is {size_text(pred.shape)} but the ground truth "
                        f"is {size_text(gt.shape)}")


def frame_scores(pred: np.ndarray, gt: np.ndarray, object_ids: Sequence[int], *, frame: int = -1,
                 bound_th: float = DEFAULT_BOUND_TH) -> list[FrameScore]:
    """J and F of each object of ``object_ids`` on one frame, void pixels left out (DAVIS protocol)."""
    _check_pair(pred, gt, frame)
    void = gt == VOID
    void_or_none = void if void.any() else None
    out = []
    for obj in object_ids:
        p, g = pred == obj, gt == obj
        out.append(FrameScore(frame, int(obj), jaccard(p, g, void_or_none), boundary_f(p, g, void_or_none, bound_th)))
    return out


def error_map(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(H, W) uint8 of :class:`ErrorKind` values: where and how the prediction differs from the truth."""
    _check_pair(pred, gt, None)
    pred_obj = (pred != 0) & (pred != VOID)
    gt_obj = (gt != 0) & (gt != VOID)
    out = np.zeros(gt.shape, dtype=np.uint8)
    out[pred_obj & (gt == 0)] = ErrorKind.FALSE_POSITIVE
    out[~pred_obj & gt_obj] = ErrorKind.FALSE_NEGATIVE
    out[pred_obj & gt_obj & (pred != gt)] = ErrorKind.WRONG_OBJECT
    out[gt == VOID] = ErrorKind.VOID
    return out


def confidence_map(soft: torch.Tensor, output_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 confidence in [0, 1] at ``output_hw``: the top-2 margin of the upsampled soft labels.

    The soft labels are upsampled bilinearly first, as for the label map itself, so that the
    confidence is exactly 0 on the boundary the argmax draws between two labels.
    """
    up = F.interpolate(soft[None].float(), size=tuple(output_hw), mode="bilinear", align_corners=False)[0]
    return margin(up).cpu().numpy().astype(np.float32)


KEPT_SOFT_CELLS = 26_000
"""Cells of soft labels a viewer keeps per frame at most (:func:`kept_soft`): about the stride-8 grid of
a 480p frame (6,420 cells) four times over."""


def kept_soft(soft: torch.Tensor, max_cells: int = KEPT_SOFT_CELLS) -> torch.Tensor:
    """Soft labels (L, h, w) as a viewer keeps them for every frame: float16, area-averaged by the
    smallest whole factor that brings them to ``max_cells`` cells or fewer.

    Labels carried at sub-cells (``PropagationParams.label_detail`` 8: 64 times the cells of the
    feature grid, 3.3 MB a frame for one object at 480p in float32) would otherwise hold gigabytes
    for a long video; the confidence map and the suggestion's calibration need no more than this."""
    h, w = soft.shape[1:]
    factor = max(1, math.ceil(math.sqrt(h * w / max_cells)))
    if factor > 1:
        soft = F.avg_pool2d(soft[None].float(), factor, ceil_mode=True)[0]
    return soft.to(torch.float16)


def frame_uncertainty(soft: torch.Tensor) -> float:
    """One number per frame from its soft labels (L, h, w): the estimated ``1 - J`` of its worst object.

    For each object channel the hard mask (argmax) is compared with the channel's own
    probabilities as a soft intersection over union, ``sum(min(p, hard)) / sum(max(p, hard))``:
    1 when the propagation is sure of every cell it labels, lower when probability leaks
    outside the mask or the mask holds doubtful cells. Unlike the mean margin over the frame it
    does not shrink when the object is small against a large, certain background.

    An object the frame labels nowhere (it left the frame, or is hidden) scores its largest
    probability in any cell: the chance that the most object-like cell is the object after all, so
    the error its absence risks. The soft intersection over union would give such a frame 1, the
    most doubtful of all, from faint probability scattered over the background (bmx-bumps: frames
    without the rider, rightly labelled empty, scored 1 where no cell held more than 0.23, and the
    suggestion sent the person to them first). 0 when no object is left.
    """
    if soft.shape[0] < 2:
        return 0.0
    soft = soft.float()
    winner = soft.max(dim=0).indices  # (h, w); argmax(dim=0) is slow on CPU
    worst = 0.0
    for j in range(1, soft.shape[0]):
        p = soft[j]
        hard = (winner == j).float()
        if not bool(hard.any()):  # labelled nowhere: the risk is that the most object-like cell is it
            worst = max(worst, float(p.max()))
            continue
        union = torch.maximum(p, hard).sum().item()
        inter = torch.minimum(p, hard).sum().item()
        worst = max(worst, 1.0 - inter / union)
    return float(worst)


def correction_j(soft: torch.Tensor, label_ids: Sequence[int], corrected: np.ndarray) -> float:
    """J of the worst object between a propagated result and the person's correction of that frame.

    Compared on the feature grid (the result's soft labels argmaxed there; the corrected label map
    area-averaged onto it), which is what the suggestion's calibration needs and costs nothing at
    image size. Objects in neither are skipped, as are objects the result did not carry; 1.0 when
    no object is left.
    """
    grid_hw = tuple(soft.shape[1:])
    ids = tuple(int(i) for i in label_ids)
    extra = tuple(sorted(set(int(v) for v in np.unique(corrected)) - set(ids) - {0, VOID}))
    truth = labels_to_grid(np.asarray(corrected), (*ids, *extra), grid_hw).max(dim=0).indices
    result = soft.float().max(dim=0).indices
    worst = 1.0
    for channel in range(1, len(ids)):  # an object the person added was not the propagation's to find
        a, b = result == channel, truth == channel
        union = int((a | b).sum())
        if union:
            worst = min(worst, int((a & b).sum()) / union)
    return worst


class GroundTruthTracker:
    """Per-frame, per-object J and F of a sequence, updated frame by frame as results arrive.

    ``ground_truth`` maps frame index to a label map; ``object_ids`` defaults to the ids of the
    first ground-truth frame (as :func:`~annotator.core.analysis.metrics.evaluate_sequence`). Frames
    without ground truth are never scored; ``scored_frames`` restricts scoring further (the
    DAVIS protocol leaves out the first and last ground-truth frames).
    """

    def __init__(self, ground_truth: Mapping[int, np.ndarray], object_ids: Sequence[int] | None = None, *,
                 skip_first_last: bool = True, bound_th: float = DEFAULT_BOUND_TH) -> None:
        self.ground_truth = dict(ground_truth)
        order = sorted(self.ground_truth)
        if object_ids is None:
            first = self.ground_truth[order[0]] if order else np.zeros((1, 1), np.uint8)
            object_ids = [int(i) for i in np.unique(first) if 0 < i < VOID]
        self.object_ids: tuple[int, ...] = tuple(int(i) for i in object_ids)
        self.scored_frames: frozenset[int] = frozenset(order[1:-1] if skip_first_last else order)
        self.bound_th = bound_th
        self._scores: dict[int, list[FrameScore]] = {}

    def update(self, frame: int, pred: np.ndarray) -> list[FrameScore]:
        """Score ``pred`` for ``frame`` (replacing an older score); [] when the frame is not scored."""
        if frame not in self.scored_frames:
            return []
        scores = frame_scores(pred, self.ground_truth[frame], self.object_ids, frame=frame, bound_th=self.bound_th)
        self._scores[frame] = scores
        return scores

    def forget(self, frame: int) -> None:
        self._scores.pop(frame, None)

    def clear(self) -> None:
        self._scores.clear()

    @property
    def frames(self) -> list[int]:
        """Scored frames so far, in order."""
        return sorted(self._scores)

    def scores(self, frame: int) -> list[FrameScore]:
        return list(self._scores.get(frame, []))

    def curves(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Object id -> (frames, J, F) arrays over the frames scored so far."""
        frames = self.frames
        out = {}
        for row, obj in enumerate(self.object_ids):
            j = np.array([self._scores[f][row].j for f in frames], dtype=np.float64)
            f_ = np.array([self._scores[f][row].f for f in frames], dtype=np.float64)
            out[obj] = (np.array(frames, dtype=np.int64), j, f_)
        return out

    def mean_jf(self) -> float:
        """DAVIS J&F over the frames scored so far: mean over objects of each object's mean (NaN if none)."""
        if not self._scores or not self.object_ids:
            return float("nan")
        curves = self.curves()
        j = np.mean([c[1].mean() for c in curves.values()])
        f = np.mean([c[2].mean() for c in curves.values()])
        return float((j + f) / 2)

    def worst_frame(self) -> int | None:
        """The scored frame with the lowest J&F of its worst object (None before any score)."""
        if not self._scores:
            return None
        return min(self._scores, key=lambda f: (min(s.jf for s in self._scores[f]), f))
