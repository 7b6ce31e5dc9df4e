"""The propagation engine: the tiled engine equals the full-affinity reference, and runs behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.errors import UsageError
from annotator.core.engine.upsampling import soft_to_labels
from annotator.core.engine.propagation import (
    ContextFrame,
    PropagationParams,
    labels_to_grid,
    propagate,
    propagate_frame,
    propagate_frame_naive,
    propagate_frame_torch,
)
from tests.synthetic import unit_features




def random_context(n: int, h: int, w: int, n_labels: int, local: list[bool], seed: int) -> list[ContextFrame]:
    gen = torch.Generator().manual_seed(seed + 1)
    feats = unit_features(n, 16, h, w, seed)
    labels = torch.softmax(torch.randn(n, n_labels, h, w, generator=gen) * 3, dim=1)
    return [ContextFrame(i, feats[i], labels[i], local[i]) for i in range(n)]


@pytest.mark.parametrize(
    "h, w, radius, tile, topk, local",
    [
        (11, 13, 3.0, 4, 10, [True, True, True]),
        (9, 17, 2.5, 3, 5, [False, True, True, True]),
        (8, 8, 12.0, 8, 10, [True, True]),  # radius larger than the frame
        (10, 7, 0.0, 2, 10, [True, True]),  # radius 0: only the same cell, k > candidates
        (12, 15, 1.0, 5, 3, [False, False]),  # no frame restricted to the radius
        (7, 9, 4.2, 1, 20, [True, False, True]),
    ],
)
@pytest.mark.parametrize("reference_stride", [1, 2, 3])
@pytest.mark.parametrize("engine", [propagate_frame, propagate_frame_torch], ids=["compiled-topk", "torch-topk"])
def test_tiled_engine_equals_naive_reference(h, w, radius, tile, topk, local, engine, reference_stride):
    context = random_context(len(local), h, w, 4, local, seed=h * w)
    target = unit_features(1, 16, h, w, seed=99)[0]
    params = PropagationParams(radius=radius, tile=tile, topk=topk, temperature=0.07, precision="float32",
                               reference_stride=reference_stride)
    tiled_match, naive_match = torch.full((h, w), float("nan")), torch.full((h, w), float("nan"))
    tiled = engine(target, context, params, match=tiled_match)
    naive = propagate_frame_naive(target, context, params, match=naive_match)
    assert tiled.shape == (4, h, w)
    torch.testing.assert_close(tiled, naive, atol=1e-5, rtol=1e-5)
    assert torch.equal(tiled.argmax(0), naive.argmax(0))
    torch.testing.assert_close(tiled_match, naive_match, atol=1e-4, rtol=1e-5)  # the match strength too
    torch.testing.assert_close(torch.equal(engine(target, context, params), tiled), True)


def test_radius_restricts_where_labels_come_from():
    # A context frame whose features equal the target's, but shifted far to the right: with a small
    # radius the matching cells are out of reach, with a large one they are found.
    h, w = 6, 20
    target = unit_features(1, 8, h, w, seed=3)[0]
    shifted = torch.roll(target, shifts=8, dims=2)
    labels = torch.zeros(2, h, w)
    labels[1] = 1.0  # everything is object 1 ...
    labels[:, :, :8] = torch.tensor([1.0, 0.0])[:, None, None]  # ... except the left 8 columns
    context = [ContextFrame(0, shifted, labels, True)]
    near = propagate_frame(target, context, PropagationParams(radius=2, topk=1, tile=4))
    far = propagate_frame(target, context, PropagationParams(radius=10, topk=1, tile=4))
    # cell (y, x) of the target matches (y, x+8) of the context: labels of column x+8
    expected = labels[:, :, 8:].argmax(0)
    assert torch.equal(far.argmax(0)[:, :12], expected)
    assert not torch.equal(near.argmax(0)[:, :12], expected)


def test_temperature_sharpens_weights():
    context = random_context(2, 8, 8, 3, [True, True], seed=5)
    target = unit_features(1, 16, 8, 8, seed=6)[0]
    cold = propagate_frame(target, context, PropagationParams(temperature=1e-5, precision="float32"))
    hot = propagate_frame(target, context, PropagationParams(temperature=10.0, precision="float32"))
    top1 = propagate_frame(target, context, PropagationParams(topk=1, precision="float32"))
    torch.testing.assert_close(cold, top1, atol=1e-3, rtol=0)
    # a high temperature averages the k labels: farther from any single context label
    assert hot.max(0).values.mean() < cold.max(0).values.mean()


def test_labels_to_grid_and_back():
    labels = np.zeros((16, 24), np.uint8)
    labels[:8, :12] = 3
    labels[8:, 12:] = 255  # void: no label mass
    grid = labels_to_grid(labels, (0, 3), (2, 3))
    assert grid.shape == (2, 2, 3)
    torch.testing.assert_close(grid[:, 0, 0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(grid[:, 1, 2], torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(grid.sum(0)[0], torch.ones(3))
    back = soft_to_labels(labels_to_grid(labels, (0, 3), (4, 6)), (0, 3), (16, 24))
    assert back.dtype == np.uint8 and set(np.unique(back)) == {0, 3}


class FakeFeatures:
    """Features of a video where each frame is the previous one shifted one cell right."""

    def __init__(self, n: int, h: int = 8, w: int = 12) -> None:
        base = unit_features(1, 16, h, w + n, seed=1)[0]
        self.frames = [base[:, :, n - i: n - i + w].contiguous() for i in range(n)]
        self.calls: list[int] = []

    def __call__(self, i: int) -> torch.Tensor:
        self.calls.append(i)
        return self.frames[i]


def square_mask(h: int, w: int, x0: int, obj: int = 1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[16:48, x0: x0 + 32] = obj
    return m


def test_run_forward_tracks_moving_content_and_stops_at_next_reference():
    feats = FakeFeatures(10)
    refs = {0: square_mask(64, 96, 8), 6: square_mask(64, 96, 56)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3)
    results = list(propagate(feats, refs, 0, 10, params))
    assert [r.index for r in results] == [1, 2, 3, 4, 5]
    detail = params.label_detail  # soft labels are on the grid of sub-cells
    for r in results:
        assert r.labels.shape == (64, 96) and r.labels.dtype == np.uint8
        assert r.label_ids == (0, 1)
        assert r.soft.shape == (2, 8 * detail, 12 * detail)
        # the content moves one feature cell (8 px) to the right per frame
        expected = square_mask(64, 96, 8 + 8 * r.index)
        # judged where the content was already visible in frame 0 (new content enters on the left)
        seen, truth = r.labels[:, 8 * r.index:] == 1, expected[:, 8 * r.index:] == 1
        assert (seen & truth).sum() / (seen | truth).sum() > 0.9
    going_on = list(propagate(feats, refs, 0, 10, PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3),
                              stop_at_next_reference=False))
    assert [r.index for r in going_on] == [1, 2, 3, 4, 5, 7, 8, 9]


def test_run_backward_and_output_size():
    feats = FakeFeatures(6)
    refs = {5: square_mask(64, 96, 48, obj=2)}
    results = list(propagate(feats, refs, 5, -1, PropagationParams(reference_flow=0, colour_grow=False), output_hw=(32, 48)))
    assert [r.index for r in results] == [4, 3, 2, 1, 0]
    assert results[0].labels.shape == (32, 48)
    assert set(np.unique(results[-1].labels)) <= {0, 2}


def context_spy():
    """An engine that records the frame indices of each context it is given, and the list it fills."""
    seen: list[list[int]] = []

    def spy(target, context, params, **options):  # options: what propagate asks besides (references=...)
        seen.append([f.index for f in context])
        return propagate_frame(target, context, params, **options)

    return spy, seen


def test_context_holds_at_most_m_recent_frames():
    spy, seen = context_spy()
    feats = FakeFeatures(8)
    list(propagate(feats, {0: square_mask(64, 96, 8)}, 0, 8, PropagationParams(reference_flow=0, colour_grow=False, context=2), engine=spy))
    assert seen[0] == [0]
    assert seen[1] == [0, 1]
    assert seen[-1] == [0, 5, 6]
    assert all(len(c) <= 3 for c in seen)


def test_context_stride_spaces_the_recent_frames():
    spy, seen = context_spy()
    feats = FakeFeatures(12)
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, context_stride=2)
    list(propagate(feats, {0: square_mask(64, 96, 8)}, 0, 12, params, engine=spy))
    assert seen[1] == [0, 1]
    assert seen[2] == [0, 2]
    assert seen[3] == [0, 1, 3]
    assert seen[-1] == [0, 6, 8, 10]  # frame 11: t-1, t-3, t-5; m frames spanning m*s
    seen.clear()
    list(propagate(feats, {11: square_mask(64, 96, 8)}, 11, 4, params, engine=spy))
    assert seen[-1] == [11, 10, 8, 6]  # frame 5, going backward
    with pytest.raises(UsageError, match="stride"):
        PropagationParams(context_stride=0).validate()


def test_every_reference_behind_the_run_is_context_too():
    """Frame 0 (and earlier corrections) stay in the context of a run from a later correction."""
    spy, seen = context_spy()
    feats = FakeFeatures(10)
    refs = {0: square_mask(64, 96, 8), 2: square_mask(64, 96, 24), 5: square_mask(64, 96, 48)}
    list(propagate(feats, refs, 5, 8, PropagationParams(reference_flow=0, colour_grow=False, context=1), engine=spy))
    assert seen == [[5, 2, 0], [5, 2, 0, 6]]
    seen.clear()
    list(propagate(feats, refs, 2, -1, PropagationParams(reference_flow=0, colour_grow=False, context=1), engine=spy, stop_at_next_reference=False))
    assert seen == [[2, 5]]  # backward: the references after the start are behind the run (frame 0 is one)


def test_global_references_find_content_beyond_the_radius():
    """The default compares a reference over its whole extent: content that moved 5 cells away is
    found with a radius of 1 cell, where the CRW setting (references inside the radius) loses it."""
    feats = FakeFeatures(8)
    refs = {0: square_mask(64, 96, 8)}

    def iou_at_frame_5(restricted: bool) -> float:
        params = PropagationParams(reference_flow=0, colour_grow=False, context=0, radius=1, radius_for_references=restricted, precision="float32")
        r = next(r for r in propagate(feats, refs, 0, 8, params) if r.index == 5)
        seen, truth = r.labels[:, 40:] == 1, square_mask(64, 96, 48)[:, 40:] == 1
        return (seen & truth).sum() / max((seen | truth).sum(), 1)

    assert not PropagationParams().radius_for_references  # global is the default
    assert iou_at_frame_5(restricted=False) > 0.9
    assert iou_at_frame_5(restricted=True) < 0.5


def test_bad_runs_give_clear_errors():
    feats = FakeFeatures(4)
    with pytest.raises(UsageError, match="frame 2 is not a reference"):
        list(propagate(feats, {0: square_mask(64, 96, 8)}, 2, 4, PropagationParams(reference_flow=0, colour_grow=False)))
    # the default reference flow warps pixels: features alone are refused, saying how to go on
    with pytest.raises(UsageError, match=r"reference flow .*needs the video frames: pass frames= or reference_flow=0"):
        list(propagate(feats, {0: square_mask(64, 96, 8)}, 0, 4))
    # so does the default colour grow, which cuts the frame's colours
    with pytest.raises(UsageError, match=r"colour .*needs the video frames: pass frames= or colour_grow=False"):
        list(propagate(feats, {0: square_mask(64, 96, 8)}, 0, 4, PropagationParams(reference_flow=0)))
    with pytest.raises(UsageError, match="top-k"):
        list(propagate(feats, {0: square_mask(64, 96, 8)}, 0, 4, PropagationParams(topk=0)))
    with pytest.raises(UsageError, match="temperature"):
        PropagationParams(temperature=0).validate()


def test_confidence_is_low_where_labels_compete():
    soft = torch.tensor([[[0.5, 0.9]], [[0.5, 0.1]]])  # (L=2, h=1, w=2)
    from annotator.core.engine.upsampling import margin

    torch.testing.assert_close(margin(soft), torch.tensor([[0.0, 0.8]]))
    torch.testing.assert_close(margin(soft[:1]), torch.ones(1, 2))  # one label: nothing competes


def test_bfloat16_matmuls_stay_close_to_float32():
    context = random_context(3, 12, 16, 3, [True, False, True], seed=11)
    target = unit_features(1, 16, 12, 16, seed=12)[0]
    exact = propagate_frame(target, context, PropagationParams(radius=4, tile=4))
    fast = propagate_frame(target, context, PropagationParams(radius=4, tile=4, precision="bfloat16"))
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    assert (fast.argmax(0) == exact.argmax(0)).float().mean() > 0.9
    assert (fast - exact).abs().mean() < 0.05
    with pytest.raises(UsageError, match="precision"):
        PropagationParams(precision="float8").validate()  # type: ignore[arg-type]


SPAN_STEP = 2.0 ** -11
"""Two float16 steps between 0.5 and 1: how far a span's fused soft labels may move when its runs differ in rounding."""


@pytest.mark.parametrize("reference_stride", [1, 2])
def test_a_candidate_memo_gives_the_same_labels_and_a_rerun_computes_only_the_new_pairs(reference_stride):
    from annotator.core.engine.candidates import CandidateMemo
    from annotator.core.engine.keyframes import fill_span

    feats = FakeFeatures(12)
    # a little noise per frame: shifted copies of one map give equal affinities in several frames, and
    # which of equal k-th values is kept may differ between the two ways of selecting
    feats.frames = [F.normalize(f + 0.05 * unit_features(1, 16, 8, 12, seed=50 + i)[0], dim=0)
                    for i, f in enumerate(feats.frames)]
    refs = {0: square_mask(64, 96, 8), 11: square_mask(64, 96, 96 - 8)}
    params = PropagationParams(reference_flow=0, colour_grow=False, context=3, radius=3, precision="float32", reference_stride=reference_stride)
    plain = list(fill_span(feats, refs, 0, 11, params))
    # the memo merges per-frame selections where a plain run keeps one running selection: the same
    # candidates, summed in another order (a few 1e-7 apart), and the span keeps its runs in float16
    # (SoftBuffer), where such a difference can round to one step of 2**-12 either way
    memo = CandidateMemo()
    first = list(fill_span(feats, refs, 0, 11, params, memo=memo))
    for a, b in zip(plain, first):
        assert a.index == b.index
        torch.testing.assert_close(a.soft, b.soft, atol=SPAN_STEP, rtol=0)
        assert np.array_equal(a.labels, b.labels)
    # each pair computed once; the two runs both compare every frame of the span with both keyframes
    assert memo.misses == len(memo) > 0 and memo.hits == 2 * 10
    # a memo smaller than one frame's context (two pairs) still gives the same labels
    tiny = CandidateMemo(max_bytes=2 * 8 * 12 * 10 * 8)
    for a, b in zip(plain, fill_span(feats, refs, 0, 11, params, memo=tiny)):
        torch.testing.assert_close(a.soft, b.soft, atol=SPAN_STEP, rtol=0)
    assert len(tiny) == 2
    # a correction at 5 splits the span: the runs compare the same frames again, plus the new reference
    corrected = {**refs, 5: square_mask(64, 96, 48)}
    before = set(memo.keys())
    again = [*fill_span(feats, corrected, 0, 5, params, memo=memo),
             *fill_span(feats, corrected, 5, 11, params, memo=memo)]
    fresh = [*fill_span(feats, corrected, 0, 5, params), *fill_span(feats, corrected, 5, 11, params)]
    for a, b in zip(fresh, again):
        torch.testing.assert_close(a.soft, b.soft, atol=SPAN_STEP, rtol=0)
    new = set(memo.keys()) - before
    assert memo.hits > 2 * len(new) > 0  # most of the re-run was looked up
    # the only new pairs are those with the correction (frame 5) as their context frame
    assert {key[1] for key in new} == {5}


def test_a_candidate_memo_stays_within_its_bound():
    from annotator.core.engine.candidates import CandidateMemo

    memo = CandidateMemo(max_bytes=3 * (10 * 4 * 8))  # three entries of 10 cells, k = 4 (float32 + int32)
    for i in range(5):
        memo.put(i, torch.zeros(10, 4), torch.zeros(10, 4, dtype=torch.int64))
    assert len(memo) == 3 and memo.bytes <= memo.max_bytes
    assert memo.get(0) is None and memo.get(4) is not None  # the oldest went first
