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

import cv2
import numpy as np
import torch

__all__ = ["grow_by_colour"]

SURE = 0.97
"""Probability above which a pixel of the object is fixed (and below 1 - SURE, one not of it)."""
PAD = 20
"""Pixels of context around the unsure pixels' box, for the colour models."""
ITERATIONS = 3


def grow_by_colour(labels: np.ndarray, probs: torch.Tensor, frame: np.ndarray, label_ids: Sequence[int], *,
                   sure: float = SURE, pad: int = PAD, iterations: int = ITERATIONS) -> np.ndarray:
    """``labels`` (H, W) object ids with each object grown into the background by a colour cut.

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
        p = probs[channel].float().cpu().numpy()
        ys, xs = np.nonzero((p > 1 - sure) & (p < sure))
        if len(ys) == 0:
            continue
        y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, hw[0])
        x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, hw[1])
        sub_p, sub_drawn = p[y0:y1, x0:x1], drawn[y0:y1, x0:x1]
        mask = np.where(sub_drawn, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
        mask[(sub_p >= sure) & sub_drawn] = cv2.GC_FGD
        mask[(sub_p <= 1 - sure) & ~sub_drawn] = cv2.GC_BGD
        models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(bgr[y0:y1, x0:x1].copy(), mask, None, *models, iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:  # the box holds no object or no background sample: nothing to learn colours from
            continue
        cut = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        region = out[y0:y1, x0:x1]  # a view: writes land in out
        region[cut & (region == 0) & (labels[y0:y1, x0:x1] == 0)] = obj
    return out
