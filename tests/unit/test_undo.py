"""Undo/redo stores changed regions: strokes are one step, aborts put pixels back, redo replays exactly."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.annotation import AnnotationModel, FrameState
from tests.synthetic import ArrayVideo


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
