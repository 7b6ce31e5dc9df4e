"""Keypoints in the annotation model: names, reference and propagated points, events, errors, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.model.annotation import AnnotationModel, FramePoints, KeypointInfo
from annotator.core.errors import UsageError
from tests.fakes import ArrayVideo


@pytest.fixture
def model() -> AnnotationModel:
    m = AnnotationModel(ArrayVideo(np.zeros((6, 40, 60, 3), np.uint8)))
    m.add_keypoint("nose")
    m.add_keypoint("tail")
    m.history.clear()
    return m


def test_keypoint_names_add_rename_remove_and_stay_unique(model):
    seen = []
    model.events.keypoints_changed.connect(lambda: seen.append([k.name for k in model.keypoints]))
    assert [(k.id, k.name) for k in model.keypoints] == [(1, "nose"), (2, "tail")]
    assert model.active_keypoint == 2  # the newest is the one a click places
    model.update_keypoint(1, name="snout")
    assert seen[-1] == ["snout", "tail"]
    with pytest.raises(UsageError, match="already a keypoint named 'tail'"):
        model.update_keypoint(1, name="tail")
    assert model.add_keypoint("tail").after.name == "tail 2"  # a duplicate name gets a number
    model.remove_keypoint(2)
    assert [k.name for k in model.keypoints] == ["snout", "tail 2"]
    with pytest.raises(UsageError, match="there is no keypoint 7"):
        model.keypoint(7)


def test_placing_moving_and_deleting_points_make_the_frame_a_keypoint_reference(model):
    changed = []
    model.events.points_changed.connect(changed.append)
    model.place_point(2, 1, (10.0, 20.0))
    assert model.is_keypoint_reference(2) and changed == [2]
    model.place_point(2, 1, (11.5, 21.0))  # moved
    model.place_point(2, 2, (30.0, 5.0))
    assert dict(model.frame_points(2).points) == {1: (11.5, 21.0), 2: (30.0, 5.0)}
    assert model.keypoint_references() == {2: {1: (11.5, 21.0), 2: (30.0, 5.0)}}
    model.delete_point(2, 1)
    assert dict(model.frame_points(2).points) == {2: (30.0, 5.0)} and model.is_keypoint_reference(2)
    model.delete_point(2, 2)  # no point left: the frame has no keypoints, it is no reference any more
    assert model.frame_points(2) is None and not model.is_keypoint_reference(2)
    assert model.delete_point(2, 2) is None


def test_unknown_keypoint_and_points_off_the_frame_are_refused(model):
    with pytest.raises(UsageError, match="no keypoint 9"):
        model.place_point(0, 9, (1.0, 1.0))
    with pytest.raises(UsageError, match=r"'nose' at \(60.0, 3.0\) is outside the 60x40 frame"):
        model.place_point(0, 1, (60.0, 3.0))
    with pytest.raises(UsageError, match="outside"):
        model.set_propagated_points(1, {1: (3.0, -2.0)}, {1: 0.9})
    with pytest.raises(UsageError, match="no keypoint 5"):
        model.set_propagated_points(1, {5: (3.0, 2.0)}, {5: 0.9})
    with pytest.raises(UsageError, match="frame 6 is outside"):
        model.place_point(6, 1, (1.0, 1.0))
    model.place_point(0, 1, (59.5, 39.5))  # the outer edge of the last pixel is still on the frame
    assert model.frame_points(0).points[1] == (59.5, 39.5)


def test_propagated_points_never_overwrite_a_reference_and_editing_one_accepts_the_frame(model):
    model.place_point(0, 1, (5.0, 5.0))
    assert model.set_propagated_points(0, {1: (9.0, 9.0)}, {1: 0.5}) is None
    assert model.frame_points(0).points[1] == (5.0, 5.0)
    model.set_propagated_points(3, {1: (7.0, 8.0), 2: (20.0, 30.0)}, {1: 0.9, 2: 0.2})
    fp = model.frame_points(3)
    assert not fp.reference and fp.confidence_of(2) == pytest.approx(0.2)
    model.set_propagated_points(3, {1: (7.5, 8.0), 2: (21.0, 30.0)}, {1: 0.8, 2: 0.3})  # a new run replaces
    assert model.frame_points(3).points[2] == (21.0, 30.0)
    model.place_point(3, 2, (25.0, 31.0))  # a correction: the whole frame becomes the person's
    fp = model.frame_points(3)
    assert fp.reference and dict(fp.points) == {1: (7.5, 8.0), 2: (25.0, 31.0)} and fp.confidence_of(1) == 1.0


def test_a_drag_is_one_undo_step_and_undo_redo_restore_points_exactly(model):
    h = model.history
    txn = h.begin("Move nose")
    for x in range(10, 30):  # a drag: many moves
        txn.add(model.place_point(1, 1, (float(x), 12.0)))
    h.commit(txn)
    assert len(h.undo_stack) == 1 and len(h.undo_stack[0].changes) == 1
    h.push("Place tail", [model.place_point(1, 2, (40.0, 30.0))])
    h.push("Delete nose", [model.delete_point(1, 1)])
    assert dict(model.frame_points(1).points) == {2: (40.0, 30.0)}
    h.undo()
    assert dict(model.frame_points(1).points) == {1: (29.0, 12.0), 2: (40.0, 30.0)}
    h.undo()
    h.undo()
    assert model.frame_points(1) is None
    h.redo()
    assert dict(model.frame_points(1).points) == {1: (29.0, 12.0)}
    # a drag that comes back to where it started changes nothing and leaves no step
    txn = h.begin("Move nose")
    txn.add(model.place_point(1, 1, (5.0, 5.0)))
    txn.add(model.place_point(1, 1, (29.0, 12.0)))
    assert h.commit(txn) is None and h.undo_name() == "Move nose" and len(h.undo_stack) == 1


def test_adding_and_removing_a_keypoint_with_its_points_undo_and_redo(model):
    h = model.history
    h.push("Add", [model.add_keypoint("paw")])
    h.push("Place", [model.place_point(0, 3, (1.0, 2.0)), model.place_point(0, 1, (3.0, 4.0))])
    model.set_propagated_points(4, {1: (5.0, 5.0), 3: (6.0, 6.0)}, {1: 1.0, 3: 0.7})
    h.push("Delete paw", model.remove_keypoint(3))
    assert [k.name for k in model.keypoints] == ["nose", "tail"]
    assert dict(model.frame_points(0).points) == {1: (3.0, 4.0)}
    assert not model.frame_points(4).reference and set(model.frame_points(4).points) == {1}
    h.undo()
    assert model.keypoint(3).name == "paw"
    assert set(model.frame_points(0).points) == {1, 3} and set(model.frame_points(4).points) == {1, 3}
    assert model.frame_points(4).confidence_of(3) == pytest.approx(0.7)
    h.undo()
    h.undo()
    assert [k.name for k in model.keypoints] == ["nose", "tail"] and model.frame_points(0) is None
    h.redo()
    assert model.keypoint(3).name == "paw"


def test_opening_another_video_forgets_keypoints_and_load_restores_them(model):
    model.place_point(0, 1, (1.0, 2.0))
    model.set_video(ArrayVideo(np.zeros((3, 20, 30, 3), np.uint8)))
    assert model.keypoints == [] and model.all_frame_points() == {}
    model.load_keypoints([KeypointInfo(1, "a", (1, 2, 3))], {2: FramePoints({1: (3.0, 4.0)}, reference=True)})
    assert model.keypoint_references() == {2: {1: (3.0, 4.0)}} and model.active_keypoint == 1
