"""Optical flow as a second, weight-free propagation cue (issue 7, item 1).

Feature matching is restricted to a radius and loses objects that move far between frames, while
dense optical flow follows them but drifts and fails at occlusions. :class:`FlowCue` computes
OpenCV's DIS optical flow (Kroeger et al. 2016) both ways between the previous frame of a run
and the target, keeps only the pixels whose forward and backward flows agree (Sundaram et al.
2010), warps the previous frame's label map (one-hot, pooled onto the feature grid) onto the
target with the backward flow and mixes it into the feature-based soft labels where the flow is
reliable::

    soft = (1 - a * r) * soft_features + a * r * warped_previous

with ``a`` the fusion weight (``PropagationParams.flow``) and ``r`` in [0, 1] the share of reliable
flow pixels in each feature cell. Both terms are distributions over labels, so the mix is one too.
The mix is what the frame brings to the context, so the cue compounds along the run. The label
map, not the previous soft labels, is warped: resampling soft labels frame after frame blurs them
(an earlier soft-label variant, also with flow at half resolution, lost far more on DAVIS).

Measured on davis2016 with lite0 s4 (bench/bench_flow.py): J&F 0.762 without the cue, 0.699 at
weight 0.5, 0.629 at 0.8 (0.2 also lost on boat and dog-agility); it helped only on hockey. The
cue therefore stays off by default (``flow = 0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import cv2
import numpy as np
import torch

FlowPreset = Literal["ultrafast", "fast", "medium", "fine"]
FLOW_PRESETS: tuple[str, ...] = ("ultrafast", "fast", "medium", "fine")
"""OpenCV's DIS presets, fastest first (``PropagationParams.flow_preset``), and ``fine``: ``medium`` whose
finest pyramid level is the frame itself rather than half of it (about 5x ``medium``'s time)."""
_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    "fine": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_FINEST_SCALE = {"fine": 0}
"""Presets that override their OpenCV preset's finest pyramid level (0: full resolution)."""


def make_dis(preset: FlowPreset) -> cv2.DISOpticalFlow:
    """A DIS flow for one of :data:`FLOW_PRESETS`."""
    if preset not in _PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    if preset in _FINEST_SCALE:
        dis.setFinestScale(_FINEST_SCALE[preset])
    return dis


def dis_flow(source: np.ndarray, target: np.ndarray, dis: cv2.DISOpticalFlow) -> np.ndarray:
    """(H, W, 2) float32 flow (dx, dy) that moves each pixel of ``source`` to its place in ``target``."""
    return dis.calc(source, target, None)


def _remap(x: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Bilinear sample of x (H, W, D) at p + flow(p) for every pixel p; flow is (H, W, 2) in pixels."""
    h, w = flow.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(x, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(h, w, -1)


def _lands_inside(flow: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose p + flow(p) lies inside the frame."""
    h, w = flow.shape[:2]
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    sx, sy = xx + flow[..., 0], yy + flow[..., 1]
    return (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)


def consistent(backward: np.ndarray, forward: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5
               ) -> np.ndarray:
    """(H, W) bool: target pixels whose backward flow (target -> previous) the forward flow undoes.

    A pixel p of the target lands at q = p + b(p) in the previous frame; going forward again from q,
    f(q) should bring it back (f(q) + b(p) ~ 0). The tolerance grows with the motion (Sundaram et al.
    2010); pixels that land outside the previous frame are unreliable too.
    """
    f_at_q = _remap(forward, backward)  # (H, W, 2)
    err = ((f_at_q + backward) ** 2).sum(-1)
    tol = alpha * ((f_at_q ** 2).sum(-1) + (backward ** 2).sum(-1)) + beta
    return (err <= tol) & _lands_inside(backward)


def fuse(soft: torch.Tensor, warped: torch.Tensor, reliable: torch.Tensor, weight: float) -> torch.Tensor:
    """Mix of feature-based soft labels (L, h, w) and flow-warped ones, weight ``weight * reliable`` (h, w)."""
    a = (weight * reliable).to(soft.dtype)[None]  # (1, h, w)
    return (1 - a) * soft + a * warped.to(soft.dtype)


class FlowCue:
    """Flow-warped soft labels of the previous frame of a run, on the feature grid.

    ``frames(i)`` gives the RGB frame i (any size); flow is computed on grey frames resized to
    ``scale`` pixels per feature cell (8 = the working resolution, 4 = half of it, faster).
    The grey frames of the last three indices asked for are kept, so a run decodes each frame once
    (also when one frame, a run's reference, is paired with every frame of the run).
    """

    def __init__(self, frames: Callable[[int], np.ndarray], *, scale: int = 8, preset: FlowPreset = "fast",
                 alpha: float = 0.01, beta: float = 0.5) -> None:
        if scale < 1:
            raise ValueError(f"flow scale must be >= 1 pixel per feature cell, got {scale}")
        self.frames = frames
        self.scale = scale
        self.alpha, self.beta = alpha, beta
        self._dis = make_dis(preset)
        self._grey: dict[tuple[int, tuple[int, int]], np.ndarray] = {}

    def _grey_frame(self, index: int, hw: tuple[int, int]) -> np.ndarray:
        key = (index, hw)
        if key in self._grey:
            self._grey[key] = self._grey.pop(key)  # most recently used last
        else:
            frame = np.ascontiguousarray(self.frames(index))
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
            if grey.shape[:2] != hw:
                grey = cv2.resize(grey, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
            if len(self._grey) >= 3:
                self._grey.pop(next(iter(self._grey)))
            self._grey[key] = np.ascontiguousarray(grey)
        return self._grey[key]

    def warp(self, previous: int, target: int, labels: np.ndarray, label_ids: Sequence[int],
             grid_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The label map (any size) of frame ``previous`` warped onto frame ``target``, on the feature grid.

        Returns the warped one-hot labels (L, h, w), channel j for ``label_ids[j]`` (void counts for
        no label), and the share (h, w) in [0, 1] of each feature cell's flow pixels that pass the
        forward-backward check. A hard label map, not the previous soft labels, is warped: resampling
        soft labels frame after frame blurs them, and the blur compounds through the context.
        """
        h, w = grid_hw
        hw = (h * self.scale, w * self.scale)
        prev_grey, target_grey = self._grey_frame(previous, hw), self._grey_frame(target, hw)
        backward = dis_flow(target_grey, prev_grey, self._dis)  # (H, W, 2) target -> previous
        forward = dis_flow(prev_grey, target_grey, self._dis)  # (H, W, 2) previous -> target
        ok = consistent(backward, forward, alpha=self.alpha, beta=self.beta).astype(np.float32)  # (H, W)
        lut = np.full(256, len(label_ids), dtype=np.int64)
        lut[np.asarray(label_ids, dtype=np.int64)] = np.arange(len(label_ids))
        small = cv2.resize(np.ascontiguousarray(labels), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
        one_hot = np.eye(len(label_ids) + 1, len(label_ids), dtype=np.float32)[lut[small]]  # (H, W, L)
        # warp at flow resolution and pool back, so motions smaller than a cell still move the labels
        # (OpenCV rather than torch: these small per-pixel ops are several times faster there on CPU)
        warped = cv2.resize(_remap(one_hot, backward), (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, -1)
        reliable = cv2.resize(ok, (w, h), interpolation=cv2.INTER_AREA)  # (h, w)
        return torch.from_numpy(warped).permute(2, 0, 1), torch.from_numpy(reliable)

    def fuse(self, previous: int, target: int, previous_labels: np.ndarray, label_ids: Sequence[int],
             soft: torch.Tensor, weight: float) -> torch.Tensor:
        """Feature-based soft labels (L, h, w) of ``target`` mixed with the flow-warped ``previous_labels``."""
        warped, reliable = self.warp(previous, target, previous_labels, label_ids, tuple(soft.shape[1:]))
        return fuse(soft, warped.to(soft.device), reliable.to(soft.device), weight)
