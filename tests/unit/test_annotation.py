"""The annotation model: objects in palette order, label maps at original size, frame states, events."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.model.annotation import AnnotationModel, FrameState, palette_color
from annotator.core.errors import UsageError
from annotator.core.io.labels import DAVIS_PALETTE
from tests.fakes import ArrayVideo


def _model(n=4, hw=(30, 50)) -> AnnotationModel:
    return AnnotationModel(ArrayVideo(np.zeros((n, *hw, 3), np.uint8)))


def test_objects_take_ids_in_palette_order_and_reuse_free_ids():
    m = _model()
    for _ in range(3):
        m.add_object()
    assert [o.id for o in m.objects] == [1, 2, 3]
    assert m.object(1).color == tuple(int(c) for c in DAVIS_PALETTE[1]) == (128, 0, 0)
    assert m.active_object == 3
    m.remove_object(2)
    assert m.add_object().after.id == 2
    assert palette_color(2) == m.object(2).color


def test_events_fire_with_their_arguments():
    m = _model()
    seen = []
    m.events.labels_changed.connect(lambda f, box: seen.append(("labels", f, box)))
    m.events.frame_state_changed.connect(lambda f, s: seen.append(("state", f, s)))
    m.events.objects_changed.connect(lambda: seen.append(("objects",)))
    m.events.current_frame_changed.connect(lambda f: seen.append(("frame", f)))
    m.add_object()
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    m.paint(2, mask, 1, origin=(10, 20))
    m.set_current_frame(3)
    m.set_current_frame(99)  # clamped to the last frame: no event, already there
    assert seen == [("objects",), ("labels", 2, (11, 21, 13, 23)), ("state", 2, FrameState.REFERENCE),
                    ("frame", 3)]


def test_painting_a_propagated_frame_makes_it_a_reference_and_erase_only_touches_one_object():
    m = _model()
    m.add_object()
    m.add_object()
    labels = np.zeros((30, 50), np.uint8)
    labels[:, :25] = 1
    labels[:, 25:] = 2
    m.set_labels(1, labels, FrameState.PROPAGATED)
    assert m.frame_state(1) is FrameState.PROPAGATED
    m.paint(1, np.ones((30, 50), bool), 0, only=2)
    assert m.frame_state(1) is FrameState.REFERENCE
    assert (m.labels(1)[:, :25] == 1).all() and not m.labels(1)[:, 25:].any()
    assert m.reference_frames().keys() == {1}


def test_counts_and_label_ids_follow_edits():
    m = _model()
    m.add_object()
    m.add_object()
    m.paint(0, np.ones((2, 2), bool), 1)
    m.paint(2, np.ones((2, 2), bool), 1)
    m.paint(2, np.ones((2, 2), bool), 2, origin=(5, 5))
    assert m.object_frame_counts() == {1: 2, 2: 1}
    m.clear_frame(2)
    assert m.object_frame_counts() == {1: 1, 2: 0}
    assert m.frame_state(2) is FrameState.EMPTY
    assert m.label_ids() == (0, 1, 2)


def test_loaded_references_create_their_objects_and_bad_input_is_refused():
    m = _model()
    ref = np.zeros((30, 50), np.uint8)
    ref[5:10, 5:10] = 3
    m.set_video(m.video, {0: ref})
    assert [o.id for o in m.objects] == [3] and m.active_object == 3
    assert m.frame_state(0) is FrameState.REFERENCE
    with pytest.raises(UsageError, match="must be 50x30 uint8"):
        m.set_labels(1, np.zeros((10, 10), np.uint8), FrameState.REFERENCE)
    with pytest.raises(UsageError, match="frame 9"):
        m.labels(9)
    with pytest.raises(UsageError, match="add the object"):
        m.paint(0, np.ones((2, 2), bool), 7)
    assert not m.labels(1).flags.writeable


def test_hide_rename_recolour_are_undoable_object_changes():
    m = _model()
    m.add_object()
    m.history.push("edit", [m.update_object(1, name="car", color=(1, 2, 3), visible=False)])
    o = m.object(1)
    assert (o.name, o.color, o.visible) == ("car", (1, 2, 3), False)
    m.history.undo()
    o = m.object(1)
    assert (o.name, o.color, o.visible) == ("object 1", (128, 0, 0), True)
