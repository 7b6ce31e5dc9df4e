"""DAVIS J and F on cases small enough to work out by hand, and the evaluation protocol."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.errors import MaskError, UsageError
from annotator.core.analysis.metrics import (
    SequenceScores,
    boundary_f,
    evaluate_sequence,
    jaccard,
    seg2bmap,
    summarize,
)


def _square(hw, top, left, size):
    mask = np.zeros(hw, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


# --------------------------------------------------------------------------- J


def test_jaccard_of_overlapping_squares():
    a = _square((8, 8), 0, 0, 4)
    b = _square((8, 8), 2, 2, 4)
    # intersection 2x2 = 4, union 16 + 16 - 4 = 28
    assert jaccard(a, b) == pytest.approx(4 / 28)
    assert jaccard(a, a) == 1.0


def test_jaccard_empty_union_is_one_and_disjoint_is_zero():
    empty = np.zeros((5, 5), bool)
    assert jaccard(empty, empty) == 1.0
    assert jaccard(empty, _square((5, 5), 1, 1, 2)) == 0.0


def test_jaccard_leaves_void_out():
    a = _square((8, 8), 0, 0, 4)
    b = _square((8, 8), 2, 2, 4)
    void = b & ~a  # the 12 pixels only b covers
    # intersection 4, union 28 - 12 = 16
    assert jaccard(a, b, void) == pytest.approx(4 / 16)
    assert jaccard(a, b, np.ones((8, 8), bool)) == 1.0  # everything void: empty union


# --------------------------------------------------------------------------- boundaries


def test_seg2bmap_marks_pixels_that_differ_from_right_or_below():
    mask = _square((5, 5), 1, 1, 2)
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=bool,
    )
    assert np.array_equal(seg2bmap(mask), expected)


def test_seg2bmap_image_border_is_not_a_boundary():
    assert not seg2bmap(np.ones((4, 6), bool)).any()
    last_column = np.zeros((5, 5), bool)
    last_column[:, 4] = True
    expected = np.zeros((5, 5), bool)
    expected[:, 3] = True  # the column left of it, down to the last row
    assert np.array_equal(seg2bmap(last_column), expected)


def test_seg2bmap_scales_down():
    mask = _square((8, 8), 2, 2, 2)
    small = seg2bmap(mask, (4, 4))
    full = seg2bmap(mask)
    ys, xs = np.nonzero(full)
    expected = np.zeros((4, 4), bool)
    expected[ys // 2, xs // 2] = True
    assert np.array_equal(small, expected)
    with pytest.raises(ValueError):
        seg2bmap(mask, (16, 16))


def test_boundary_f_one_pixel_shift_tolerance_zero_and_one():
    gt = _square((10, 10), 2, 2, 4)
    pred = _square((10, 10), 2, 3, 4)
    # Boundaries are 16-pixel outlines of 5x5 boxes one column apart: only the 4 + 4 pixels
    # of the top and bottom edges coincide, so P = R = 8/16 with no tolerance ...
    assert boundary_f(pred, gt, bound_th=0.0) == pytest.approx(0.5)
    # ... and every pixel has its counterpart one pixel away.
    assert boundary_f(pred, gt, bound_th=1) == pytest.approx(1.0)


def test_boundary_f_two_pixel_shift_and_diagonal_tolerance():
    gt = _square((10, 10), 2, 2, 4)
    pred = _square((10, 10), 2, 4, 4)
    # Radius 1 (a plus-shaped disk): of 16 pred pixels, top and bottom edges match 4 each
    # (3 coincide, 1 is a step away) and the left edge matches its 2 ends (next to gt's
    # top/bottom edges): P = R = 10/16.
    assert boundary_f(pred, gt, bound_th=1) == pytest.approx(10 / 16)
    assert boundary_f(pred, gt, bound_th=2) == pytest.approx(1.0)
    # Fractions of the diagonal (sqrt(200) = 14.14) are rounded up: 0.07 -> 1 px, 0.1 -> 2 px.
    assert boundary_f(pred, gt, bound_th=0.07) == pytest.approx(10 / 16)
    assert boundary_f(pred, gt, bound_th=0.1) == pytest.approx(1.0)


def test_boundary_f_empty_cases():
    empty = np.zeros((6, 6), bool)
    blob = _square((6, 6), 1, 1, 3)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, blob) == 0.0
    assert boundary_f(blob, empty) == 0.0
    full = np.ones((6, 6), bool)  # no boundary inside the image either
    assert boundary_f(full, full) == 1.0


def test_boundary_f_void_hides_a_wrong_region():
    gt = _square((12, 12), 1, 1, 4)
    extra = _square((12, 12), 7, 7, 3)
    pred = gt | extra
    assert boundary_f(pred, gt) < 1.0
    void = _square((12, 12), 6, 6, 5)  # covers the extra blob and its outline
    assert boundary_f(pred, gt, void) == pytest.approx(1.0)


# --------------------------------------------------------------------------- protocol


def _video(n, hw=(12, 12)):
    """n ground-truth frames: object 1 a moving square, object 2 a fixed square."""
    frames = []
    for t in range(n):
        labels = np.zeros(hw, np.uint8)
        labels[_square(hw, 1, 1 + t % 3, 3)] = 1
        labels[_square(hw, 7, 7, 4)] = 2
        frames.append(labels)
    return frames


def test_first_and_last_frames_are_not_scored():
    gt = _video(5)
    pred = [g.copy() for g in gt]
    pred[0][:] = 0  # wrong, but the first frame is the given reference
    pred[4][:] = 0
    scores = evaluate_sequence(pred, gt, name="s")
    assert scores.frames == (1, 2, 3)
    assert scores.object_ids == (1, 2)
    assert scores.J.shape == scores.F.shape == (2, 3)
    assert np.all(scores.J == 1.0) and np.all(scores.F == 1.0)
    assert scores.jf == 1.0

    every = evaluate_sequence(pred, gt, skip_first_last=False)
    assert every.frames == (0, 1, 2, 3, 4)
    assert np.array_equal(every.J[:, [0, 4]], np.zeros((2, 2)))


def test_scores_and_j_and_f_formula():
    gt = _video(4)
    pred = [g.copy() for g in gt]
    pred[1][pred[1] == 2] = 0  # object 2 lost on frame 1
    pred[2][_square((12, 12), 0, 8, 2)] = 1  # object 1 grows by 4 pixels on frame 2
    s = evaluate_sequence(pred, gt)
    assert s.J[0].tolist() == pytest.approx([1.0, 9 / 13])  # 9 pixels of 13
    assert s.J[1].tolist() == pytest.approx([0.0, 1.0])
    assert s.F[1].tolist() == pytest.approx([0.0, 1.0])
    j_obj = {1: (1 + 9 / 13) / 2, 2: 0.5}
    assert s.j_per_object == pytest.approx(j_obj)
    assert s.j_mean == pytest.approx((j_obj[1] + j_obj[2]) / 2)
    assert s.f_mean == pytest.approx(s.F.mean(axis=1).mean())
    assert s.jf == pytest.approx((s.j_mean + s.f_mean) / 2)
    assert 0 < s.f_per_object[1] < 1


def test_void_in_ground_truth_is_not_scored():
    gt = _video(3)
    gt[1][_square((12, 12), 6, 6, 3)] = 255  # void over 4 of object 2's 16 pixels and around
    pred = [g.copy() for g in gt]
    pred[1][gt[1] == 255] = 2  # void painted as object 2 costs nothing ...
    scores = evaluate_sequence(pred, gt)
    assert scores.J[:, 0].tolist() == [1.0, 1.0]
    assert scores.F[:, 0].tolist() == [1.0, 1.0]
    pred[1][gt[1] == 255] = 0  # ... and neither does void painted as background
    scores = evaluate_sequence(pred, gt)
    assert scores.J[:, 0].tolist() == [1.0, 1.0]
    assert scores.F[:, 0].tolist() == [1.0, 1.0]
    pred[1][gt[1] == 2] = 0  # but losing the 12 visible pixels does
    assert evaluate_sequence(pred, gt).J[1, 0] == 0.0


def test_objects_default_to_those_of_the_first_frame():
    gt = _video(4)
    gt[2][_square((12, 12), 9, 0, 2)] = 5  # object 5 shows up later
    pred = [g.copy() for g in gt]
    pred[2][pred[2] == 5] = 0
    assert evaluate_sequence(pred, gt).object_ids == (1, 2)
    explicit = evaluate_sequence(pred, gt, object_ids=[1, 2, 5])
    assert explicit.object_ids == (1, 2, 5)
    assert explicit.J[2].tolist() == [1.0, 0.0]  # absent in both on frame 1, missed on 2


def test_mappings_use_frame_numbers():
    frames = _video(6)
    gt = {0: frames[0], 3: frames[3], 5: frames[5]}  # sparse ground truth
    pred = dict(enumerate(frames))
    pred[4] = np.zeros_like(frames[4])  # unscored frame
    scores = evaluate_sequence(pred, gt)
    assert scores.frames == (3,)
    assert np.all(scores.J == 1.0)


def test_protocol_errors():
    gt = _video(3)
    with pytest.raises(MaskError, match="frame 1"):
        evaluate_sequence({0: gt[0], 2: gt[2]}, gt, name="bear")
    with pytest.raises(MaskError, match="5x5"):
        evaluate_sequence([gt[0], np.zeros((5, 5), np.uint8), gt[2]], gt)
    with pytest.raises(UsageError, match="scores none"):
        evaluate_sequence(gt[:2], gt[:2])
    with pytest.raises(UsageError, match="no objects"):
        evaluate_sequence(gt, [np.zeros((12, 12), np.uint8)] * 3)
    with pytest.raises(UsageError):
        evaluate_sequence(gt, gt, object_ids=[0])


# --------------------------------------------------------------------------- dataset


def _scores(name, per_object_j, per_object_f):
    j = np.array(per_object_j, dtype=float)[:, None].repeat(2, axis=1)
    f = np.array(per_object_f, dtype=float)[:, None].repeat(2, axis=1)
    ids = tuple(range(1, len(per_object_j) + 1))
    return SequenceScores(name=name, object_ids=ids, frames=(1, 2), J=j, F=f)


def test_dataset_means_weigh_objects_not_sequences():
    one = _scores("one", [1.0], [0.5])
    three = _scores("three", [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    total = summarize([one, three])
    assert total.n_objects == 4
    assert total.j_mean == pytest.approx(0.25)  # per-sequence averaging would give 0.5
    assert total.f_mean == pytest.approx((0.5 + 3) / 4)
    assert total.jf == pytest.approx((0.25 + 0.875) / 2)
    with pytest.raises(UsageError):
        summarize([])


def test_sequence_scores_are_frozen_and_checked():
    s = _scores("x", [0.5], [0.5])
    with pytest.raises(ValueError):
        s.J[0, 0] = 1.0  # read-only array
    with pytest.raises(AttributeError):
        s.name = "y"
    with pytest.raises(ValueError):
        SequenceScores(name="bad", object_ids=(1, 2), frames=(1,), J=np.zeros((1, 1)), F=np.zeros((1, 1)))
