"""DAVIS scores: region similarity J, boundary accuracy F, and their sequence/dataset means.

Behaves like the official davis2017-evaluation code (``davis2017/metrics.py`` and
``evaluation.py``, semi-supervised task), written afresh:

- J is the intersection over union of one object's pixels; an empty union scores 1.
- F is the F-measure of the one-pixel boundary maps (``seg2bmap``) matched within a disk of
  radius ``ceil(bound_th * image diagonal)`` pixels (``bound_th`` < 1) or ``bound_th`` pixels;
  both boundaries empty scores 1, only one empty scores 0.
- Void pixels (255 in the ground truth) are left out of J's intersection and union and are
  cleared from both masks before their boundaries are taken, as the official metric functions
  do with ``void_pixels``. (The official loader turns 255 into 0 before it builds that void
  mask, so in practice it scores void as background; DAVIS ground truth has no 255 pixels, so
  both agree on DAVIS itself.)
- A sequence scores every ground-truth frame but the first and the last; a dataset's J-mean
  (F-mean) is the mean over all objects of all sequences of each object's mean over frames,
  and J&F is the average of the two.

Keypoints are scored by PCK (:func:`pck`), the fraction of points within a distance of the truth,
as JHMDB pose propagation is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from annotator.core.errors import MaskError, UsageError, size_text
from annotator.core.io.labels import MAX_OBJECT_ID, VOID, object_ids as _ids_in
from annotator.core.model.points import Point

__all__ = [
    "DatasetScores",
    "SequenceScores",
    "boundary_f",
    "evaluate_sequence",
    "jaccard",
    "pck",
    "point_errors",
    "seg2bmap",
    "summarize",
]

DEFAULT_BOUND_TH = 0.008

LabelFrames = Sequence[np.ndarray] | Mapping[int, np.ndarray]


# --------------------------------------------------------------------------- per frame


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean masks, void pixels left out; empty union -> 1."""
    pred, gt = _as_bool(pred), _as_bool(gt)
    _same_shape(pred, gt, void)
    inside = pred & gt
    either = pred | gt
    if void is not None:
        keep = ~_as_bool(void)
        inside &= keep
        either &= keep
    union = int(np.count_nonzero(either))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(inside)) / union


def seg2bmap(mask: np.ndarray, hw: tuple[int, int] | None = None) -> np.ndarray:
    """One-pixel-wide boundary map of a binary mask (bool, same size or ``hw``).

    A pixel is on the boundary when it differs from its right, lower or lower-right
    neighbour, so the boundary sits half a pixel towards the origin of the true edge. The
    image border is not a boundary: a mask covering the whole image has none.

    ``hw`` (at most the mask's size, same aspect ratio) scales the boundary down, marking
    target pixel ``floor(y * H / h), floor(x * W / w)``; the official port's scaling branch
    mixes up width and height and is never used by the F-measure.
    """
    seg = _as_bool(mask)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap needs a 2-D mask, got shape {seg.shape}")
    h, w = seg.shape
    # Edge replication makes the last column compare with the row below only and the last
    # row with the column to the right only, and leaves the corner off, as the official code.
    padded = np.pad(seg, ((0, 1), (0, 1)), mode="edge")
    right = padded[:-1, 1:]
    below = padded[1:, :-1]
    below_right = padded[1:, 1:]
    bmap = (seg != right) | (seg != below) | (seg != below_right)
    if hw is None or (int(hw[0]), int(hw[1])) == (h, w):
        return bmap
    out_h, out_w = int(hw[0]), int(hw[1])
    if out_h > h or out_w > w or out_h <= 0 or out_w <= 0 or abs(out_w / out_h - w / h) > 0.01:
        raise ValueError(f"cannot convert a {size_text((h, w))} mask to a {size_text((out_h, out_w))} boundary map")
    ys, xs = np.nonzero(bmap)
    scaled = np.zeros((out_h, out_w), dtype=bool)
    scaled[(ys * out_h) // h, (xs * out_w) // w] = True
    return scaled


def boundary_f(
    pred: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = DEFAULT_BOUND_TH,
) -> float:
    """Boundary F-measure of two boolean masks with a tolerance of ``bound_th``.

    ``bound_th`` < 1 is a fraction of the image diagonal (radius ``ceil(bound_th * diag)``),
    ``bound_th`` >= 1 a radius in pixels (rounded up to a whole pixel).
    """
    pred, gt = _as_bool(pred), _as_bool(gt)
    _same_shape(pred, gt, void)
    if void is not None:
        keep = ~_as_bool(void)
        pred = pred & keep
        gt = gt & keep
    radius = _tolerance_px(bound_th, pred.shape)
    pred_b = seg2bmap(pred)
    gt_b = seg2bmap(gt)
    n_pred = int(np.count_nonzero(pred_b))
    n_gt = int(np.count_nonzero(gt_b))
    if n_pred == 0 or n_gt == 0:
        # Official cases: both empty -> P = R = 1; one empty -> P or R is 0 and F = 0.
        return 1.0 if n_pred == n_gt else 0.0
    disk = _disk(radius)
    pred_near = cv2.dilate(pred_b.view(np.uint8), disk).view(bool)
    gt_near = cv2.dilate(gt_b.view(np.uint8), disk).view(bool)
    precision = np.count_nonzero(pred_b & gt_near) / n_pred
    recall = np.count_nonzero(gt_b & pred_near) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


# --------------------------------------------------------------------------- sequences


@dataclass(frozen=True, eq=False)
class SequenceScores:
    """Per-object, per-frame scores of one sequence; ``J`` and ``F`` are (objects, frames)."""

    name: str
    object_ids: tuple[int, ...]
    frames: tuple[int, ...]
    J: np.ndarray
    F: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.object_ids), len(self.frames))
        for field in ("J", "F"):
            values = np.array(getattr(self, field), dtype=np.float64)
            if values.shape != shape:
                raise ValueError(f"{field} has shape {values.shape}, expected {shape}")
            values.setflags(write=False)
            object.__setattr__(self, field, values)

    @property
    def j_per_object(self) -> dict[int, float]:
        """Mean J over the scored frames, per object id."""
        return dict(zip(self.object_ids, (float(v) for v in self.J.mean(axis=1))))

    @property
    def f_per_object(self) -> dict[int, float]:
        """Mean F over the scored frames, per object id."""
        return dict(zip(self.object_ids, (float(v) for v in self.F.mean(axis=1))))

    @property
    def j_mean(self) -> float:
        """Mean over objects of each object's mean J."""
        return float(np.mean(self.J.mean(axis=1)))

    @property
    def f_mean(self) -> float:
        """Mean over objects of each object's mean F."""
        return float(np.mean(self.F.mean(axis=1)))

    @property
    def jf(self) -> float:
        """J&F: the average of ``j_mean`` and ``f_mean``."""
        return (self.j_mean + self.f_mean) / 2


@dataclass(frozen=True, eq=False)
class DatasetScores:
    """Scores of several sequences; the means weigh every object of every sequence equally."""

    sequences: tuple[SequenceScores, ...]

    @property
    def n_objects(self) -> int:
        return sum(len(s.object_ids) for s in self.sequences)

    @property
    def j_mean(self) -> float:
        return float(np.mean(np.concatenate([s.J.mean(axis=1) for s in self.sequences])))

    @property
    def f_mean(self) -> float:
        return float(np.mean(np.concatenate([s.F.mean(axis=1) for s in self.sequences])))

    @property
    def jf(self) -> float:
        """J&F-mean: the average of ``j_mean`` and ``f_mean``."""
        return (self.j_mean + self.f_mean) / 2


def evaluate_sequence(
    pred: LabelFrames,
    gt: LabelFrames,
    *,
    name: str = "",
    object_ids: Sequence[int] | None = None,
    skip_first_last: bool = True,
    bound_th: float = DEFAULT_BOUND_TH,
) -> SequenceScores:
    """Score predicted label maps against ground truth with the DAVIS semi-supervised protocol.

    ``pred`` and ``gt`` are lists (frame index = position) or ``{frame index: label map}``.
    The scored frames are the ground-truth frames without the first and the last (all of them
    with ``skip_first_last=False``); each needs a prediction of the same size. The objects
    default to the ids in the first ground-truth frame (DAVIS scores ids 1..max of the first
    annotation, the same set when ids are consecutive, as in every DAVIS sequence). A predicted
    pixel counts for object k when its id is k; predicted void (255) belongs to no object.
    """
    label = f"sequence {name!r}" if name else "the sequence"
    gt_frames = _as_frames(gt, "ground truth")
    pred_frames = _as_frames(pred, "prediction")
    if not gt_frames:
        raise UsageError(f"no ground-truth masks for {label}")
    order = sorted(gt_frames)
    if object_ids is None:
        ids = tuple(_ids_in(gt_frames[order[0]]))
        if not ids:
            raise UsageError(f"the first ground-truth mask of {label} (frame {order[0]}) has no objects")
    else:
        ids = tuple(int(i) for i in object_ids)
        bad = [i for i in ids if not 1 <= i <= MAX_OBJECT_ID]
        if bad or len(set(ids)) != len(ids) or not ids:
            raise UsageError(f"object ids must be distinct values in 1..{MAX_OBJECT_ID}, got {list(ids)}")
    scored = order[1:-1] if skip_first_last else order
    if not scored:
        raise UsageError(
            f"{label} has {len(order)} ground-truth frames: the DAVIS protocol scores none "
            "(the first and last are not scored)"
        )
    j_values = np.zeros((len(ids), len(scored)))
    f_values = np.zeros((len(ids), len(scored)))
    for col, frame in enumerate(scored):
        truth = gt_frames[frame]
        if frame not in pred_frames:
            raise MaskError(f"no predicted mask for frame {frame} of {label}")
        guess = pred_frames[frame]
        if guess.shape != truth.shape:
            raise MaskError(
                f"predicted mask of frame {frame} of {label} is {size_text(guess.shape)} "
                f"but the ground truth is {size_text(truth.shape)}"
            )
        void = truth == VOID
        void_or_none = void if void.any() else None
        for row, obj in enumerate(ids):
            p, g = guess == obj, truth == obj
            j_values[row, col] = jaccard(p, g, void_or_none)
            f_values[row, col] = boundary_f(p, g, void_or_none, bound_th)
    return SequenceScores(name=name, object_ids=ids, frames=tuple(scored), J=j_values, F=f_values)


def summarize(scores: Sequence[SequenceScores]) -> DatasetScores:
    """Dataset scores of several sequences (``UsageError`` if there are none)."""
    sequences = tuple(scores)
    if not sequences:
        raise UsageError("no sequences to summarize")
    return DatasetScores(sequences=sequences)


# --------------------------------------------------------------------------- helpers


def _as_bool(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    return array if array.dtype == np.bool_ else array.astype(bool)


def _same_shape(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None) -> None:
    if pred.shape != gt.shape or (void is not None and np.shape(void) != gt.shape):
        extra = "" if void is None else f", void {np.shape(void)}"
        raise ValueError(f"mask shapes differ: pred {pred.shape}, gt {gt.shape}{extra}")


def _tolerance_px(bound_th: float, hw: tuple[int, ...]) -> int:
    if bound_th < 0:
        raise ValueError(f"bound_th must be >= 0, got {bound_th}")
    if bound_th >= 1:
        return math.ceil(bound_th)
    return math.ceil(bound_th * math.hypot(hw[0], hw[1]))


def _disk(radius: int) -> np.ndarray:
    """(2r+1)x(2r+1) uint8 disk: offsets with dy^2 + dx^2 <= r^2 (skimage's ``disk``)."""
    offsets = np.arange(-radius, radius + 1)
    return ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).astype(np.uint8)


def _as_frames(frames: LabelFrames, what: str) -> dict[int, np.ndarray]:
    if isinstance(frames, Mapping):
        items = frames.items()
    else:
        items = enumerate(frames)
    out: dict[int, np.ndarray] = {}
    for index, labels in items:
        array = np.asarray(labels)
        if array.ndim != 2:
            raise ValueError(f"{what} frame {index}: a label map is 2-D, got shape {array.shape}")
        out[int(index)] = array
    return out


# --------------------------------------------------------------------------- keypoints


def point_errors(predicted: Mapping[int, Point], truth: Mapping[int, Point]) -> dict[int, float]:
    """Euclidean distance in pixels per point id present in both."""
    return {pid: math.hypot(predicted[pid][0] - truth[pid][0], predicted[pid][1] - truth[pid][1])
            for pid in predicted if pid in truth}


def pck(predicted: Mapping[int, Point], truth: Mapping[int, Point], threshold_px: float) -> float:
    """Fraction of points within ``threshold_px`` of the truth (PCK, as JHMDB pose propagation is scored)."""
    errors = point_errors(predicted, truth)
    if not errors:
        raise UsageError("no keypoint in common between prediction and truth")
    return sum(e <= threshold_px for e in errors.values()) / len(errors)
