"""Growing each propagated mask by colour where its soft labels are unsure (``PropagationParams.colour_grow``).

Propagated masks come out too small on most DAVIS sequences (the background, the larger label,
outweighs the object in the top-k of cells near its outline; the background bias grows them
everywhere alike). This grows them where the frame's colours say so: for each object, OpenCV's
grabCut re-cuts the box around the pixels whose probability lies strictly between 1 - ``sure`` and
``sure``; pixels above ``sure`` that the label map gives the object are fixed object, pixels below
1 - ``sure`` that it does not are fixed background, the rest start as the label map has them. Of the
cut only the pixels the label map gives the background are taken: a mask never shrinks and never
takes another object's pixels (a cut that also removes pixels lost on DAVIS: bench/RESULTS.md,
session 50). Output only: the soft labels and the context are untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["ColourCut", "cut_by_colour", "grow_by_colour"]

SURE = 0.97
"""Probability above which a pixel of the object is fixed (and below 1 - SURE, one not of it)."""
PAD = 20
"""Pixels of context around the unsure pixels' box, for the colour models."""
ITERATIONS = 3


@dataclass(frozen=True)
class ColourCut:
    """One object's grabCut: the box it ran in, and in that box what it calls object, the pixels it was
    told are surely object and surely background, and its two fitted colour models (OpenCV's (1, 65))."""

    box: tuple[slice, slice]
    cut: np.ndarray
    fixed_object: np.ndarray
    fixed_background: np.ndarray
    object_model: np.ndarray
    background_model: np.ndarray


def cut_by_colour(bgr: np.ndarray, drawn: np.ndarray, p: np.ndarray, *, sure: float = SURE, pad: int = PAD,
                  iterations: int = ITERATIONS) -> ColourCut | None:
    """grabCut of one object in the box around its unsure pixels (``sure`` > ``p`` > 1 - ``sure``, plus
    ``pad``): fixed object where ``p`` >= ``sure`` and ``drawn``, fixed background where ``p`` <= 1 - ``sure``
    and not ``drawn``, the rest "probably" as ``drawn`` has it. ``bgr``: the (H, W, 3) frame in OpenCV's
    channel order; ``drawn``, ``p``: (H, W). None when no pixel is unsure or the box holds no sample of
    one side (nothing to learn colours from)."""
    ys, xs = np.nonzero((p > 1 - sure) & (p < sure))
    if len(ys) == 0:
        return None
    h, w = p.shape
    box = (slice(max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, h)),
           slice(max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)))
    sub_p, sub_drawn = p[box], drawn[box]
    mask = np.where(sub_drawn, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[(sub_p >= sure) & sub_drawn] = cv2.GC_FGD
    mask[(sub_p <= 1 - sure) & ~sub_drawn] = cv2.GC_BGD
    fixed_object, fixed_background = mask == cv2.GC_FGD, mask == cv2.GC_BGD
    background_model, object_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # grabCut seeds its colour models by k-means from OpenCV's per-thread random generator: left as it
    # is, the same frame cut after different work on the thread (the feature read-ahead, a re-run)
    # could differ by a pixel. Reseeding makes every cut a function of its inputs alone.
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(np.ascontiguousarray(bgr[box]), mask, None, background_model, object_model, iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # the box holds no object or no background sample
        return None
    return ColourCut(box, (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), fixed_object, fixed_background,
                     object_model, background_model)


def grow_by_colour(labels: np.ndarray, probs: torch.Tensor, frame: np.ndarray, label_ids: Sequence[int], *,
                   sure: float = SURE, pad: int = PAD, iterations: int = ITERATIONS) -> np.ndarray:
    """``labels`` (H, W) object ids with each object grown into the background by a colour cut
    (:func:`cut_by_colour`).

    ``probs``: (L, H, W) probabilities at the label map's size, channel j for ``label_ids[j]`` (unbiased:
    the background bias moves the label map, not the evidence); ``frame``: the (H', W', 3) RGB frame,
    resized to (H, W) when its size differs. Objects are grown in the order of ``label_ids``; a
    pixel one object took is background no more for the next. Returns a new array.
    """
    out = labels.copy()
    if len(label_ids) < 2 or not (labels > 0).any():
        return out
    hw = labels.shape
    if frame.shape[:2] != hw:
        frame = cv2.resize(frame, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    bgr = np.ascontiguousarray(frame[:, :, ::-1])  # OpenCV's channel order (as measured)
    for channel, obj in enumerate(label_ids):
        if obj == 0:
            continue
        drawn = labels == obj
        if not drawn.any():
            continue
        found = cut_by_colour(bgr, drawn, probs[channel].float().cpu().numpy(), sure=sure, pad=pad,
                              iterations=iterations)
        if found is None:
            continue
        region = out[found.box]  # a view: writes land in out
        region[found.cut & (region == 0) & (labels[found.box] == 0)] = obj
    return out
