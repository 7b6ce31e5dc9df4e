"""Keyframe spans filled from both ends: the split into spans, the fusion, bounded memory, and that
a span filled both ways beats either end alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.engine.keyframes import SoftBuffer, Span, fill_span, fuse, span_context, span_results, spans
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.propagation import PropagationParams, propagate

H, W, CELL = 8, 12, 8  # feature grid and pixels per cell


def test_spans_cut_the_video_at_its_references():
    assert spans([3, 7], 10) == [Span(None, 3, 10), Span(3, 7, 10), Span(7, None, 10)]
    assert [list(s.frames) for s in spans([3, 7], 10)] == [[0, 1, 2], [4, 5, 6], [8, 9]]
    assert [s.both_ways for s in spans([3, 7], 10)] == [False, True, False]
    # adjacent references, a reference on the first and on the last frame: no empty span
    assert spans([0, 1, 5, 9], 10) == [Span(1, 5, 10), Span(5, 9, 10)]


def test_fusion_weights():
    fw = torch.tensor([[[0.9]], [[0.1]]])  # forward: background, decided
    bw = torch.tensor([[[0.3]], [[0.7]]])  # backward: object, less decided
    assert torch.allclose(fuse(fw, bw, 1.0, "distance"), fw)
    assert torch.allclose(fuse(fw, bw, 0.0, "distance"), bw)
    assert torch.allclose(fuse(fw, bw, 0.25, "distance"), 0.25 * fw + 0.75 * bw)
    # confidence: the decided direction outweighs the undecided one although it is further away
    assert fuse(fw, bw, 0.25, "confidence")[0, 0, 0] > 0.5
    assert fuse(fw, bw, 0.25, "distance")[0, 0, 0] < 0.5
    # match: where one run found the cell much better in its context, it wins the cell
    strong, weak = torch.full((1, 1), 20.0), torch.full((1, 1), 14.0)
    assert torch.allclose(fuse(fw, bw, 0.5, "match", strong, strong), 0.5 * fw + 0.5 * bw)
    assert torch.allclose(fuse(fw, bw, 0.3, "match", strong, strong), 0.3 * fw + 0.7 * bw)  # distance weights
    assert fuse(fw, bw, 0.3, "match", strong, weak)[0, 0, 0] > 0.8
    assert fuse(fw, bw, 0.7, "match", weak, strong)[1, 0, 0] > 0.6
    with pytest.raises(ValueError, match="match strengths"):
        fuse(fw, bw, 0.5, "match")
    with pytest.raises(ValueError, match="fusion"):
        fuse(fw, bw, 0.5, "vote")


def test_soft_buffer_spills_to_a_file_beyond_its_budget():
    frames = range(10, 20)
    soft = [torch.rand(3, 4, 5) for _ in frames]
    small, big = SoftBuffer(frames, (3, 4, 5), max_bytes=100), SoftBuffer(frames, (3, 4, 5))
    assert small.on_disk and not big.on_disk
    for buffer in (small, big):
        assert buffer.get(12) is None
        for i, s in zip(frames, soft):
            buffer.put(i, s)
        for i, s in zip(frames, soft):
            assert torch.allclose(buffer.get(i), s, atol=1e-3)  # float16
        buffer.close()


class SwitchingFeatures:
    """Features of a clip whose object changes its look half-way through a span.

    Background cells keep one random code each; the object (a block of cells moving one cell right
    per frame) has code ``u`` before frame ``switch`` and an unrelated code ``v`` from it on. A run
    from the first frame cannot recognise the object after the switch, a run from the last frame not
    before it; only both together label every frame.
    """

    def __init__(self, n: int, switch: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.background = F.normalize(torch.randn(16, H, W, generator=gen), dim=0)
        self.u, self.v = F.normalize(torch.randn(2, 16, generator=gen), dim=1)
        self.n, self.switch = n, switch

    def box(self, t: int) -> tuple[slice, slice]:
        return slice(2, 6), slice(1 + t // 2, 4 + t // 2)

    def __call__(self, t: int) -> torch.Tensor:
        feats = self.background.clone()
        ys, xs = self.box(t)
        code = self.u if t < self.switch else self.v
        feats[:, ys, xs] = code[:, None, None] + 0.05 * torch.randn(16, 4, 3, generator=torch.Generator().manual_seed(t))
        return F.normalize(feats, dim=0)

    def mask(self, t: int) -> np.ndarray:
        m = np.zeros((H * CELL, W * CELL), np.uint8)
        ys, xs = self.box(t)
        m[ys.start * CELL: ys.stop * CELL, xs.start * CELL: xs.stop * CELL] = 1
        return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("fusion", ["distance", "confidence", "match"])
def test_a_span_filled_from_both_ends_beats_either_end_alone(fusion):
    clip = SwitchingFeatures(n=12, switch=6)
    refs = {0: clip.mask(0), 11: clip.mask(11)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3, fusion=fusion)
    one_way = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3, both_ways=False)

    def mean_iou(results) -> float:
        got = {r.index: r.labels for r in results}
        assert sorted(got) == list(range(1, 11))
        return float(np.mean([iou(got[t] == 1, clip.mask(t) == 1) for t in range(1, 11)]))

    forward = mean_iou(propagate(clip, refs, 0, 11, one_way, context_references=[]))
    backward = mean_iou(propagate(clip, refs, 11, 0, one_way, context_references=[]))
    both = mean_iou(fill_span(clip, refs, 0, 11, params))
    assert forward < 0.75 and backward < 0.75  # each end alone loses the object on half the span
    assert both > 0.9
    assert both > max(forward, backward) + 0.2
    # the whole-video run fills the span the same way, and marks the frames as from two keyframes
    video = list(propagate_video(clip, refs, 12, params))
    assert all(r.keyframes == 2 for r in video)
    assert mean_iou(video) == pytest.approx(both)


def test_a_correction_changes_only_the_frames_of_its_span():
    """With each span's context its own keyframes (``ends``); the app re-fills only the split span
    whatever the rule (tests/gui/test_keyframes_gui.py)."""
    clip = SwitchingFeatures(n=16, switch=6)
    refs = {2: clip.mask(2), 9: clip.mask(9), 13: clip.mask(13)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3, span_references="ends")
    before = {r.index: r for r in propagate_video(clip, refs, 16, params)}
    corrected = {**refs, 5: clip.mask(5)}
    after = {r.index: r for r in propagate_video(clip, corrected, 16, params)}
    assert sorted(before) == sorted(set(range(16)) - {2, 9, 13})
    assert sorted(after) == sorted(set(before) - {5})
    for t in after:
        same = np.array_equal(before[t].labels, after[t].labels) and torch.equal(before[t].soft, after[t].soft)
        assert same == (not 2 < t < 9), t  # the span (2, 9) is re-filled, every other frame is as before
    # one-way frames before the first and after the last reference come from one keyframe
    assert {t for t, r in after.items() if r.keyframes == 1} == {0, 1, 14, 15}


def test_span_context_rules():
    refs = [0, 20, 40, 60, 79]
    assert span_context(refs, 20, 40, "ends") == [20, 40]
    assert span_context(refs, 20, 40, "behind") == [20, 40, 0]
    assert span_context(refs, 40, 20, "behind") == [40, 20, 60, 79]
    assert span_context(refs, 40, 20, "all") == [40, 20, 60, 79, 0]  # nearest to the run's start first
    assert span_context(refs, 79, None, "behind") == [79, 60, 40, 20, 0]  # after the last: forward
    assert span_context([10, 30], 10, None, "behind") == [10, 30]  # before the first: backward
    assert span_context([10, 30], 10, None, "ends") == [10]
    # earlier: both runs of a span hold the references before it, neither those after it
    assert span_context(refs, 20, 40, "earlier") == [20, 40, 0]
    assert span_context(refs, 40, 20, "earlier") == [40, 20, 0]
    assert span_context(refs, 79, None, "earlier") == [79, 60, 40, 20, 0]  # one-way spans as behind
    assert span_context([10, 30], 10, None, "earlier") == [10, 30]


class Returning(SwitchingFeatures):
    """The object has look ``v`` on frames 0-2 and 11-13 and look ``u`` on every other frame."""

    def __call__(self, t: int) -> torch.Tensor:
        feats = self.background.clone()
        ys, xs = self.box(t)
        code = self.v if t <= 2 or 11 <= t <= 13 else self.u
        feats[:, ys, xs] = code[:, None, None] + 0.05 * torch.randn(16, 4, 3, generator=torch.Generator().manual_seed(t))
        return F.normalize(feats, dim=0)


@pytest.mark.parametrize("rule", ["ends", "behind", "earlier", "all"])
def test_references_beyond_the_span_find_an_object_back_in_an_earlier_look(rule):
    """Keyframes 0, 8 and 16: in the span (8, 16) the object takes again on frames 11-13 the look it
    had on frame 0, which only a context holding reference 0 recognises."""
    clip = Returning(n=17, switch=0)
    refs = {0: clip.mask(0), 8: clip.mask(8), 16: clip.mask(16)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3, span_references=rule)
    got = {r.index: r.labels for r in propagate_video(clip, refs, 17, params)}
    returned = [iou(got[t] == 1, clip.mask(t) == 1) for t in (11, 12, 13)]
    elsewhere = [iou(got[t] == 1, clip.mask(t) == 1) for t in (9, 10, 14, 15)]
    assert min(elsewhere) > 0.9
    if rule == "ends":
        assert max(returned) < 0.1  # neither keyframe of the span has the look
    elif rule == "behind":  # the forward run holds frame 0 and finds it; the distance weights favour it near 8
        assert returned[0] > 0.5 and returned[2] < 0.1
    else:  # both runs hold frame 0
        assert min(returned) > 0.9


def test_provisional_results_come_first_and_are_flagged():
    clip = SwitchingFeatures(n=8, switch=4)
    refs = {0: clip.mask(0), 7: clip.mask(7)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=2, radius=3)
    results = list(fill_span(clip, refs, 0, 7, params, provisional=True))
    assert len(results) == span_results(6, provisional=True)
    assert [r.index for r in results] == [6, 5, 4, 3, 2, 1] + [1, 2, 3, 4, 5, 6] * 2
    assert [r.provisional for r in results] == [True] * 12 + [False] * 6
    assert [r.keyframes for r in results] == [1] * 12 + [2] * 6
    assert len(list(fill_span(clip, refs, 0, 7, params))) == span_results(6, False)
