"""Growing masks by colour (``PropagationParams.colour_grow``): a mask drawn too small reaches the edge of
its object's colour; no mask ever shrinks or takes another object's pixels; the engine applies it to the
label maps of one-way and both-ways frames only (soft labels and context untouched), and refuses to run
it without the frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.core.engine.colour_grow import grow_by_colour
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.propagation import PropagationParams
from annotator.core.errors import UsageError

RED, GREY = (200, 30, 30), (90, 100, 95)


def noisy(shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 6, (*shape, 3))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_a_mask_drawn_too_small_grows_to_its_colour_edge():
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - 60, xx - 80)
    disc = r <= 30
    frame = np.clip(np.where(disc[..., None], RED, GREY) + noisy((h, w), 0), 0, 255).astype(np.uint8)
    p = np.clip((38 - r) / 20, 0, 1)  # sure inside r 18.6, unsure out to r 38, as soft labels blur an outline
    labels = (r <= 22).astype(np.uint8)
    probs = torch.from_numpy(np.stack([1 - p, p]).astype(np.float32))
    grown = grow_by_colour(labels, probs, frame, (0, 1))
    assert iou(labels > 0, disc) < 0.6
    assert iou(grown > 0, disc) > 0.95
    assert (grown[labels > 0] == 1).all()  # never shrinks
    assert labels.max() == 1 and (labels[r > 22] == 0).all()  # the input is not written to


def test_no_mask_shrinks_and_none_takes_another_objects_pixels():
    h, w = 100, 160
    frame = np.full((h, w, 3), GREY, np.float64)
    frame[20:80, 20:140] = RED  # one red region holds object 1 (left) and object 2 (right)
    frame = np.clip(frame + noisy((h, w), 1), 0, 255).astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    labels[30:70, 10:50] = 1  # object 1 drawn too small on the red, and spilling onto the grey at the left
    labels[20:80, 100:140] = 2  # object 2 drawn as it is
    p1 = np.zeros((h, w), np.float32)
    p1[10:90, 0:150] = 0.5  # unsure everywhere around object 1, object 2's pixels included
    p1[40:60, 30:45] = 0.99
    p2 = np.zeros((h, w), np.float32)
    p2[20:80, 100:140] = 0.99
    probs = torch.from_numpy(np.stack([np.clip(1 - p1 - p2, 0, 1), p1, p2]))  # (need not sum to 1 here)
    grown = grow_by_colour(labels, probs, frame, (0, 1, 2))
    assert (grown[labels == 1] == 1).all()  # the grey spill stays: a grow never removes
    assert (grown[labels == 2] == 2).all()  # object 2 keeps every pixel, though it has object 1's colour
    added = (grown == 1) & (labels == 0)
    assert added[20:80, 50:100].mean() > 0.9  # object 1 grew over the red background next to it
    assert not added[:, 100:].any()


def test_a_cut_depends_on_its_inputs_alone_not_on_what_the_thread_drew_before():
    import cv2

    rng = np.random.default_rng(3)
    h, w = 90, 120
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # colours with no clear clusters: k-means
    p = np.clip(rng.normal(0.5, 0.3, (h, w)), 0, 1).astype(np.float32)  # seeds decide the models
    labels = (p > 0.5).astype(np.uint8)
    probs = torch.from_numpy(np.stack([1 - p, p]))
    cv2.setRNGSeed(1)
    first = grow_by_colour(labels, probs, frame, (0, 1))
    cv2.setRNGSeed(2)  # as after other OpenCV work on this thread (the read-ahead, a re-run)
    cv2.randu(np.zeros((7, 7)), 0, 1)
    np.testing.assert_array_equal(grow_by_colour(labels, probs, frame, (0, 1)), first)


H, W = 6, 8  # feature grid of the engine test; the output is 8 pixels per cell


def run(grow: bool, references: dict[int, np.ndarray], n: int, frames) -> tuple[dict, list]:
    seen: list[torch.Tensor] = []

    def engine(target, context, params, **_):
        seen.extend(frame.labels.clone() for frame in context if not frame.reference)
        soft = torch.full((2, H, W), 0.0)
        soft[1, :, :3] = 0.99  # surely the object
        soft[1, :, 3:5] = 0.3  # unsure, drawn as background
        soft[1, :, 5:] = 0.01
        soft[0] = 1 - soft[1]
        return soft

    params = PropagationParams(reference_flow=0, label_detail=1, islands=False, context=2, colour_grow=grow)
    results = {r.index: r for r in propagate_video(lambda i: torch.zeros(4, H, W), references, n, params,
                                                   engine=engine, frames=frames)}
    return results, seen


def test_the_engine_grows_the_label_maps_only_one_way_and_both_ways():
    frame = np.full((H * 8, W * 8, 3), GREY, np.float64)
    frame[:, :36] = RED  # the object's colour reaches column 36; the drawn masks stop near 28
    frame = np.clip(frame + noisy(frame.shape[:2], 2), 0, 255).astype(np.uint8)
    mask = np.zeros((H * 8, W * 8), np.uint8)
    mask[:, :36] = 1
    references = {1: mask, 5: mask}  # frames 2-4 are filled both ways, 0 and 6-7 one way
    plain, plain_context = run(False, references, 8, lambda i: frame)
    grown, grown_context = run(True, references, 8, lambda i: frame)
    assert sorted(plain) == sorted(grown) == [0, 2, 3, 4, 6, 7]
    assert {r.keyframes for r in grown.values()} == {1, 2}
    for t in plain:
        assert not plain[t].labels[:, 30:].any(), t
        assert grown[t].labels[:, :35].all() and not grown[t].labels[:, 38:].any(), t
        assert torch.equal(plain[t].soft, grown[t].soft)
        assert plain[t].taught is None  # nothing grew: the labels are what the frame teaches
        # what an accepted frame teaches is the map before the grow, both ways and one way
        np.testing.assert_array_equal(grown[t].taught, plain[t].labels)
    assert len(plain_context) == len(grown_context) > 0
    assert all(torch.equal(a, b) for a, b in zip(plain_context, grown_context))  # output only
    with pytest.raises(UsageError, match="needs the video frames"):
        run(True, {1: mask}, 4, None)
    with pytest.raises(UsageError, match="needs the video frames"):
        run(True, references, 8, None)


def test_an_accepted_frame_teaches_its_labels_before_the_grow():
    from annotator.core.model.annotation import AnnotationModel, FrameState

    class Clip:
        hw = (4, 6)

        def __len__(self) -> int:
            return 3

    model = AnnotationModel(Clip())
    model.add_object()
    before = np.zeros((4, 6), np.uint8)
    before[:, :2] = 1
    grown = before.copy()
    grown[:, 2:4] = 1  # the grow added two columns
    model.set_labels(1, grown, FrameState.PROPAGATED, taught=before)
    model.set_labels(2, grown, FrameState.PROPAGATED, taught=before)
    assert model.teaching_references() == {}  # nothing accepted yet
    for frame in (1, 2):
        model.set_frame_state(frame, FrameState.REFERENCE)  # Accept frame (R)
    taught = model.teaching_references()
    np.testing.assert_array_equal(model.labels(1), grown)  # it shows (and exports) the grown masks
    np.testing.assert_array_equal(taught[1], before)  # and hands on the map before the grow
    np.testing.assert_array_equal(model.reference_frames()[1], grown)
    model.paint(2, np.ones((1, 1), bool), 1, origin=(0, 5))  # a person's edit: the frame is theirs now
    expected = grown.copy()
    expected[0, 5] = 1
    np.testing.assert_array_equal(model.teaching_references()[2], expected)
    model.set_labels(1, grown, FrameState.PROPAGATED)  # re-propagated without a grow: nothing to undo
    model.set_frame_state(1, FrameState.REFERENCE)
    np.testing.assert_array_equal(model.teaching_references()[1], grown)
