"""Undo/redo stores changed regions: strokes are one step, aborts put pixels back, redo replays exactly."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.model.annotation import AnnotationModel, FrameState
from tests.fakes import ArrayVideo


@pytest.fixture
def model() -> AnnotationModel:
    m = AnnotationModel(ArrayVideo(np.zeros((5, 40, 60, 3), np.uint8)))
    m.add_object()
    m.add_object()
    m.history.clear()
    return m


def _disc(hw, cy, cx, r):
    yy, xx = np.mgrid[: hw[0], : hw[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_a_stroke_of_many_dabs_is_one_step_that_undoes_and_redoes_exactly(model):
    before = np.array(model.labels(1))
    txn = model.history.begin("Brush")
    for cx in range(10, 40, 3):  # overlapping dabs
        txn.add(model.paint(1, _disc((40, 60), 20, cx, 4), 1))
    txn.add(model.paint(1, _disc((40, 60), 20, 25, 3), 2))
    model.history.commit(txn)
    after = np.array(model.labels(1))
    assert len(model.history.undo_stack) == 1
    assert (after == 1).sum() > 0 and (after == 2).sum() > 0
    step = model.history.undo_stack[0]
    assert len(step.changes) == 1  # dabs merged into one region of frame 1
    assert step.changes[0].old.shape[0] < 40  # a region, not the whole frame
    assert model.frame_state(1) is FrameState.REFERENCE
    model.history.undo()
    np.testing.assert_array_equal(model.labels(1), before)
    assert model.frame_state(1) is FrameState.EMPTY
    model.history.redo()
    np.testing.assert_array_equal(model.labels(1), after)
    assert model.frame_state(1) is FrameState.REFERENCE


def test_abort_puts_pixels_back_and_leaves_no_step(model):
    model.history.push("first", [model.paint(0, _disc((40, 60), 10, 10, 5), 1)])
    before = np.array(model.labels(0))
    txn = model.history.begin("Brush")
    txn.add(model.paint(0, _disc((40, 60), 12, 12, 6), 2))
    assert not np.array_equal(model.labels(0), before)
    model.history.abort(txn)
    np.testing.assert_array_equal(model.labels(0), before)
    assert len(model.history.undo_stack) == 1


def test_new_step_clears_redo_and_undo_order_is_last_first(model):
    maps = [np.array(model.labels(2))]
    for k in range(3):
        model.history.push(f"s{k}", [model.paint(2, _disc((40, 60), 20, 10 + 15 * k, 6), 1 + k % 2)])
        maps.append(np.array(model.labels(2)))
    for k in range(3, 0, -1):
        model.history.undo()
        np.testing.assert_array_equal(model.labels(2), maps[k - 1])
    model.history.redo()
    np.testing.assert_array_equal(model.labels(2), maps[1])
    model.history.push("other", [model.paint(3, _disc((40, 60), 5, 5, 2), 1)])
    assert not model.history.can_redo


def test_propagation_run_is_one_step_over_several_frames(model):
    maps = {}
    txn = model.history.begin("Propagate")
    for f in (1, 2, 3):
        labels = np.zeros((40, 60), np.uint8)
        labels[f * 5:f * 5 + 10, 10:30] = 1
        maps[f] = labels
        txn.add(model.set_labels(f, labels, FrameState.PROPAGATED))
    model.history.commit(txn)
    assert model.history.undo_name() == "Propagate"
    model.history.undo()
    for f in (1, 2, 3):
        assert not model.labels(f).any()
        assert model.frame_state(f) is FrameState.EMPTY
    model.history.redo()
    for f in (1, 2, 3):
        np.testing.assert_array_equal(model.labels(f), maps[f])
        assert model.frame_state(f) is FrameState.PROPAGATED


def test_two_keyframe_marks_follow_the_steps(model):
    """A provisional one-way result replaced by a fused one in the same run: one step, and undo,
    redo and painting keep or drop the frame's two-keyframe mark with its pixels."""
    one_way = np.zeros((40, 60), np.uint8)
    one_way[5:15, 10:30] = 1
    fused = one_way.copy()
    fused[15:20, 10:30] = 1
    changed = []
    model.events.frame_state_changed.connect(lambda f, s: changed.append((f, s, model.keyframes(f))))
    txn = model.history.begin("Fill")
    txn.add(model.set_labels(2, one_way, FrameState.PROPAGATED, 1))
    txn.add(model.set_labels(2, fused, FrameState.PROPAGATED, 2))
    txn.add(model.set_labels(3, one_way, FrameState.PROPAGATED, 1))
    txn.add(model.set_labels(3, one_way, FrameState.PROPAGATED, 2))  # same pixels: only the mark changes
    model.history.commit(txn)
    assert (model.keyframes(2), model.keyframes(3), model.keyframes(0)) == (2, 2, 0)
    assert (2, FrameState.PROPAGATED, 2) in changed and (3, FrameState.PROPAGATED, 2) in changed  # views hear it
    model.history.push("Brush", [model.paint(2, np.ones((2, 2), bool), 1)])
    assert model.keyframes(2) == 0  # a reference came from a person
    model.history.undo()
    assert model.keyframes(2) == 2
    model.history.undo()
    assert (model.keyframes(2), model.keyframes(3)) == (0, 0) and not model.labels(2).any()
    model.history.redo()
    assert (model.keyframes(2), model.keyframes(3)) == (2, 2)
    np.testing.assert_array_equal(model.labels(2), fused)
    # filled again (provisional, then fused): undo puts back the first fill's fused frame, mark included
    txn = model.history.begin("Fill again")
    txn.add(model.set_labels(2, one_way, FrameState.PROPAGATED, 1))
    txn.add(model.set_labels(2, np.roll(fused, 3, axis=1), FrameState.PROPAGATED, 2))
    model.history.commit(txn)
    model.history.undo()
    assert model.keyframes(2) == 2
    np.testing.assert_array_equal(model.labels(2), fused)


def test_deleting_an_object_is_undoable_with_its_pixels(model):
    model.history.push("p", [model.paint(0, _disc((40, 60), 20, 20, 8), 2),
                             model.paint(3, _disc((40, 60), 20, 40, 8), 2)])
    before0, before3 = np.array(model.labels(0)), np.array(model.labels(3))
    model.history.push("Delete", model.remove_object(2))
    assert [o.id for o in model.objects] == [1]
    assert not (model.labels(0) == 2).any()
    model.history.undo()
    assert [o.id for o in model.objects] == [1, 2]
    np.testing.assert_array_equal(model.labels(0), before0)
    np.testing.assert_array_equal(model.labels(3), before3)
    model.history.redo()
    assert [o.id for o in model.objects] == [1]
    assert not (model.labels(3) == 2).any()


def test_history_listeners_hear_each_change(model):
    calls = []
    model.history.on_changed(lambda: calls.append(model.history.can_undo))
    model.history.push("p", [model.paint(0, _disc((40, 60), 5, 5, 3), 1)])
    model.history.undo()
    assert calls == [True, False]
