"""From soft labels on the stride-8 feature grid to a label map at image size.

``bilinear`` is the method of CRW and DINO. ``guided`` then refines the upsampled probabilities
with a guided filter (He et al. 2010) that uses the frame itself as the guide, so label edges
snap to image edges; boundary accuracy (F) is what stride-8 propagation loses most. ``margin`` is
how decided soft labels are (the top-2 margin), for the fusion of a span's two runs and the
confidence map of the diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from annotator.core.engine.colour_grow import grow_by_colour
from annotator.core.engine.part_groups import PartGroups, grouped_argmax

UpsampleMode = Literal["bilinear", "guided"]
UPSAMPLE_MODES: tuple[str, ...] = ("bilinear", "guided")


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel of (N, H, W), windows clipped at the border."""
    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        c = torch.cumsum(F.pad(t.movedim(dim, -1), (1, 0)), dim=-1)  # (..., n+1)
        idx = torch.arange(n, device=t.device)
        hi = (idx + radius + 1).clamp(max=n)
        lo = (idx - radius).clamp(min=0)
        return (c[..., hi] - c[..., lo]).movedim(-1, dim)

    ones = torch.ones((1, *x.shape[1:]), dtype=x.dtype, device=x.device)
    return along(along(x, 1), 2) / along(along(ones, 1), 2)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Edge-preserving smoothing of src (L, H, W) following the edges of a grey guide (H, W) in [0, 1]."""
    i = guide[None]  # (1, H, W)
    mean_i = box_filter(i, radius)
    var_i = box_filter(i * i, radius) - mean_i * mean_i
    mean_p = box_filter(src, radius)
    cov_ip = box_filter(i * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * i + box_filter(b, radius)


def grey_guide(frame: np.ndarray, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(H, W) float grey image in [0, 1] from an RGB uint8 frame, resized to ``hw`` if needed."""
    grey = torch.from_numpy(np.ascontiguousarray(frame)).to(device).float().mean(dim=2) / 255.0
    if tuple(grey.shape) != tuple(hw):
        grey = F.interpolate(grey[None, None], size=hw, mode="bilinear", align_corners=False)[0, 0]
    return grey


def upsample_soft(soft: torch.Tensor, output_hw: tuple[int, int], mode: UpsampleMode = "bilinear",
                  frame: np.ndarray | None = None, *, radius: int = 8, eps: float = 1e-3) -> torch.Tensor:
    """Soft labels (L, h, w) -> (L, H, W) probabilities at ``output_hw``."""
    up = F.interpolate(soft[None].float(), size=output_hw, mode="bilinear", align_corners=False)[0]
    if mode == "bilinear":
        return up
    if mode != "guided":
        raise ValueError(f"unknown upsampling {mode!r}; use one of {', '.join(UPSAMPLE_MODES)}")
    if frame is None:
        raise ValueError("guided upsampling needs the frame as its guide")
    return guided_filter(grey_guide(frame, output_hw, up.device), up, radius, eps)


def soft_to_labels(soft: torch.Tensor, label_ids: Sequence[int], output_hw: tuple[int, int],
                   mode: UpsampleMode = "bilinear", frame: np.ndarray | None = None,
                   part_groups: PartGroups = (), background_bias: float = 0.0,
                   colour_grow: bool = False) -> np.ndarray:
    """Upsample soft labels (L, h, w) to ``output_hw`` and argmax them into a label map of object ids
    (:func:`soft_to_label_maps`, its first map)."""
    return soft_to_label_maps(soft, label_ids, output_hw, mode, frame, part_groups, background_bias, colour_grow)[0]


def soft_to_label_maps(soft: torch.Tensor, label_ids: Sequence[int], output_hw: tuple[int, int],
                       mode: UpsampleMode = "bilinear", frame: np.ndarray | None = None,
                       part_groups: PartGroups = (), background_bias: float = 0.0,
                       colour_grow: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Upsample soft labels (L, h, w) to ``output_hw`` and argmax them into a label map of object ids;
    returns it and, when the colour grow changed it, the map before the grow (else None).

    With ``colour_grow`` (which needs ``frame``) each object's mask then grows by colour where its
    probabilities are unsure (:func:`annotator.core.engine.colour_grow.grow_by_colour`).

    With ``part_groups`` the argmax is hierarchical (:func:`~annotator.core.engine.part_groups.grouped_argmax`).
    ``background_bias`` is added to the background's probability (label id 0, channel 0) first:
    below 0 a pixel goes to an object at less than half its probability
    (``PropagationParams.background_bias``).
    """
    # max().indices, not argmax(dim=0): same first-maximum rule, but torch's CPU argmax over the
    # outer dimension is ~40x slower (68 vs 1.6 ms for 2 x 480 x 854, measured), a third of a frame
    probs = upsample_soft(soft, output_hw, mode, frame)
    add_background_bias(probs, label_ids, background_bias)  # a new tensor: the caller's soft is untouched
    channels = grouped_argmax(probs, label_ids, part_groups).to(torch.uint8).cpu().numpy()  # (H, W)
    labels = np.asarray(label_ids, dtype=np.uint8)[channels]
    if not colour_grow:
        return labels, None
    if frame is None:
        raise ValueError("colour_grow needs the frame")
    grown = grow_by_colour(labels, probs, frame, label_ids)  # the objects' channels carry no bias
    return grown, (labels if (grown != labels).any() else None)


def add_background_bias(probs: torch.Tensor, label_ids: Sequence[int], background_bias: float) -> torch.Tensor:
    """``probs`` (L, ...) with ``background_bias`` added, in place, to the background's channel (label id 0,
    channel 0) when there is one beside objects: what the label maps' decision sees
    (``PropagationParams.background_bias``); returns ``probs``."""
    if background_bias and len(label_ids) > 1 and label_ids[0] == 0:
        probs[0] += background_bias
    return probs


def margin(soft: torch.Tensor) -> torch.Tensor:
    """(..., h, w) margin between the two most probable of the L channels of soft labels (L, h, w)."""
    if soft.shape[0] < 2:
        return torch.ones(soft.shape[1:], dtype=soft.dtype)
    top2 = soft.topk(2, dim=0).values
    return (top2[0] - top2[1]).clamp(0, 1)
