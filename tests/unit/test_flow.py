"""The optical-flow cue: warping follows known motion, unreliable flow is ignored, fusion keeps a fast object."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.errors import UsageError
from annotator.core.engine.flow import FlowCue, consistent, fuse
from annotator.core.engine.propagation import PropagationParams, labels_to_grid, propagate
from tests.synthetic import ground_texture, object_texture, tracking_clip


def colour_features(frame: np.ndarray) -> torch.Tensor:
    """A stand-in backbone: mean colour of each 8x8 cell plus a constant, L2-normalised (C=4, h, w)."""
    x = torch.from_numpy(frame).permute(2, 0, 1).float()[None] / 255.0
    x = F.avg_pool2d(x, 8)
    return F.normalize(torch.cat([x, torch.full_like(x[:, :1], 0.5)], dim=1), dim=1)[0]


def mean_iou(results, labels) -> float:
    scores = []
    for r in results:
        pred, true = r.labels == 1, labels[r.index] == 1
        scores.append((pred & true).sum() / max((pred | true).sum(), 1))
    return float(np.mean(scores))


def test_warp_moves_labels_with_the_frame_content():
    frames, labels = tracking_clip(n_frames=2, hw=(96, 192), size=40, motions=((0, 12),))
    cue = FlowCue(lambda i: frames[i], scale=8)
    grid = labels_to_grid(labels[0], (0, 1), (12, 24))
    warped, reliable = cue.warp(0, 1, labels[0], (0, 1), (12, 24))
    assert warped.shape == grid.shape and reliable.shape == (12, 24)
    truth = labels_to_grid(labels[1], (0, 1), (12, 24))
    # the warped labels sit where the object is now, far closer than the unmoved ones
    assert (warped - truth).abs().mean() < 0.3 * (grid - truth).abs().mean()
    torch.testing.assert_close(warped.sum(0), torch.ones(12, 24))
    assert reliable.min() >= 0 and reliable.max() <= 1
    assert reliable[truth[1] > 0.5].mean() > 0.8  # the object itself is textured and visible in both frames


def test_forward_backward_check_rejects_flows_that_disagree():
    backward = np.zeros((20, 30, 2), np.float32)
    backward[..., 0] = 3.0  # target pixels come from 3 px to the right
    agreeing = np.zeros_like(backward)
    agreeing[..., 0] = -3.0
    assert consistent(backward, agreeing)[:, :27].all()
    assert not consistent(backward, agreeing)[:, 27:].any()  # they land outside the previous frame
    assert not consistent(backward, np.zeros_like(backward)).any()


def test_fusion_only_where_reliable():
    soft = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])  # (L=2, 1, 2)
    warped = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]])
    out = fuse(soft, warped, torch.tensor([[0.0, 1.0]]), 0.5)
    torch.testing.assert_close(out, torch.tensor([[[1.0, 0.5]], [[0.0, 0.5]]]))


def test_flow_keeps_a_fast_object_that_features_alone_lose():
    # 14 px/frame (almost 2 feature cells) with a 1-cell radius: matching alone falls behind
    frames, labels = tracking_clip(n_frames=8, hw=(96, 192), size=40, motions=((0, 14),))
    features = [colour_features(f) for f in frames]

    def run(weight: float) -> float:
        params = PropagationParams(radius=1.0, radius_for_references=True, flow=weight)
        return mean_iou(propagate(features.__getitem__, {0: labels[0]}, 0, len(frames), params,
                                  frames=frames.__getitem__), labels)

    without, with_flow = run(0.0), run(0.8)
    assert with_flow > without + 0.3
    assert with_flow > 0.5


def test_flow_weight_is_validated_and_needs_frames():
    with pytest.raises(UsageError, match="flow weight"):
        PropagationParams(flow=1.5).validate()
    frames, labels = tracking_clip(n_frames=2, hw=(64, 96), size=24, motions=((0, 4),))
    with pytest.raises(UsageError, match="frames="):
        list(propagate(lambda i: colour_features(frames[i]), {0: labels[0]}, 0, 2, PropagationParams(flow=0.5)))
