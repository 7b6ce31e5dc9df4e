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


def test_reference_flow_puts_outlines_where_the_object_moved_within_a_cell():
    # 3 px a frame: less than a feature cell, so the matched cells (and their sub-cell labels) stay
    # where they were; the reference's own mask carried by flow moves with the object
    frames, labels = tracking_clip(n_frames=3, hw=(96, 192), size=40, motions=((0, 3),))
    features = [colour_features(f) for f in frames]

    def run(weight: float) -> list[float]:
        params = PropagationParams(label_detail=8, reference_flow=weight)
        results = list(propagate(features.__getitem__, {0: labels[0]}, 0, len(frames), params,
                                 frames=frames.__getitem__))
        return [mean_iou([r], labels) for r in results]

    without, with_flow = run(0.0), run(1.0)
    assert with_flow[0] > 0.95  # one frame away: the weight is whole where the flow is reliable
    assert with_flow[0] > without[0] + 0.03
    assert with_flow[1] >= without[1]  # two frames away: half the weight, still no worse


def test_reference_flow_warps_the_nearest_reference_and_stops_far_from_it(monkeypatch):
    frames, labels = tracking_clip(n_frames=8, hw=(64, 160), size=24, motions=((0, 4),))
    features = [colour_features(f) for f in frames]
    calls = []
    real = FlowCue.fuse

    def spy(self, previous, target, previous_labels, label_ids, soft, weight):
        calls.append((previous, target, round(weight, 3)))
        return real(self, previous, target, previous_labels, label_ids, soft, weight)

    monkeypatch.setattr(FlowCue, "fuse", spy)
    params = PropagationParams(reference_flow=0.2)  # 0.2 / d >= 0.05 for d <= 4
    refs = {0: labels[0], 5: labels[5]}
    list(propagate(features.__getitem__, refs, 0, len(frames), params, frames=frames.__getitem__,
                   stop_at_next_reference=False))
    # frames 1-4 from reference 0 (0.2 / d), then the reference passed at 5 is the one warped
    assert calls == [(0, 1, 0.2), (0, 2, 0.1), (0, 3, 0.067), (0, 4, 0.05), (5, 6, 0.2), (5, 7, 0.1)]
    calls.clear()
    list(propagate(features.__getitem__, {0: labels[0]}, 0, len(frames), PropagationParams(reference_flow=0.1),
                   frames=frames.__getitem__))
    assert [c[1] for c in calls] == [1, 2]  # 0.1 / 3 is below REFERENCE_FLOW_MIN: no flow computed


def test_reference_flow_is_validated_and_needs_frames():
    with pytest.raises(UsageError, match="reference flow weight"):
        PropagationParams(reference_flow=-0.1).validate()
    frames, labels = tracking_clip(n_frames=2, hw=(64, 96), size=24, motions=((0, 4),))
    with pytest.raises(UsageError, match="frames="):
        list(propagate(lambda i: colour_features(frames[i]), {0: labels[0]}, 0, 2,
                       PropagationParams(reference_flow=0.5)))


def test_the_flow_preset_is_validated_and_reaches_the_flow(monkeypatch):
    with pytest.raises(UsageError, match="flow preset must be one of ultrafast, fast, medium, fine"):
        PropagationParams(flow_preset="slow").validate()  # type: ignore[arg-type]
    frames, labels = tracking_clip(n_frames=4, hw=(64, 96), size=24, motions=((0, 4),))
    features = [colour_features(f) for f in frames]
    built = []
    real = FlowCue.__init__

    def spy(self, *args, **kwargs):
        built.append(kwargs.get("preset"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(FlowCue, "__init__", spy)
    runs = {}
    for preset in ("fast", "medium"):
        params = PropagationParams(reference_flow=1.0, label_detail=8, flow_preset=preset)
        runs[preset] = [r.soft for r in propagate(features.__getitem__, {0: labels[0]}, 0, 4, params,
                                                 frames=frames.__getitem__)]
    assert built == ["fast", "medium"]
    # the two presets' flows differ, so the mixed soft labels do somewhere
    assert any(not torch.equal(a, b) for a, b in zip(runs["fast"], runs["medium"]))


def test_reference_flow_shapes_the_results_not_what_the_context_carries():
    # fed back, a flow error near the reference stayed for the rest of a run (DAVIS motocross-bumps)
    from annotator.core.engine.propagation import propagate_frame

    frames, labels = tracking_clip(n_frames=4, hw=(96, 192), size=40, motions=((0, 3),))
    features = [colour_features(f) for f in frames]

    def run(weight: float):
        handed_on = []

        def engine(target, context, params, **extra):
            handed_on.append([frame.labels.clone() for frame in context if not frame.reference])
            return propagate_frame(target, context, params, **extra)

        params = PropagationParams(label_detail=8, reference_flow=weight)
        results = list(propagate(features.__getitem__, {0: labels[0]}, 0, len(frames), params, engine=engine,
                                 frames=frames.__getitem__))
        return results, handed_on

    plain, plain_context = run(0.0)
    mixed, mixed_context = run(1.0)
    assert not torch.equal(plain[0].soft, mixed[0].soft)  # the result takes the mix
    assert len(mixed_context[-1]) == 2
    for a, b in zip(plain_context[-1], mixed_context[-1]):
        torch.testing.assert_close(a, b)  # the context does not


def test_a_feature_store_brings_its_videos_frames_to_the_reference_flow():
    frames, labels = tracking_clip(n_frames=3, hw=(96, 192), size=40, motions=((0, 3),))

    class Store:  # what propagate reads of a FeatureStore: features by index and the video
        class video:
            frame = staticmethod(frames.__getitem__)

        def __call__(self, index: int) -> torch.Tensor:
            return colour_features(frames[index])

    params = PropagationParams(label_detail=8, reference_flow=1.0)
    given = list(propagate(Store(), {0: labels[0]}, 0, 3, params, frames=frames.__getitem__))
    found = list(propagate(Store(), {0: labels[0]}, 0, 3, params))
    for a, b in zip(given, found):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert mean_iou(found[:1], labels) > 0.95


def test_the_fine_preset_is_medium_down_to_full_resolution():
    from annotator.core.engine.flow import make_dis

    fine, medium = make_dis("fine"), make_dis("medium")
    assert (fine.getFinestScale(), medium.getFinestScale()) == (0, 1)
    assert fine.getPatchSize() == medium.getPatchSize()
    with pytest.raises(ValueError, match="unknown DIS preset"):
        make_dis("slow")  # type: ignore[arg-type]
