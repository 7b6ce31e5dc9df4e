"""Keypoints in projects: saved in project.json, reopened, migrated from version 1, autosaved and recovered."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.project.autosave import Autosaver, find_recoverable, recover
from annotator.core.errors import ProjectError
from annotator.core.project.folder import ChangeTracker, open_project, parse_project, read_project_file, save_project
from annotator.core.video import open_video
from tests.synthetic import moving_objects_clip, write_frames

HW = (64, 96)


@pytest.fixture()
def folder(tmp_path):
    frames, _ = moving_objects_clip(n_frames=6, hw=HW, n_objects=1, size=20, step=4)
    return write_frames(tmp_path / "frames", frames)


def with_keypoints(folder) -> AnnotationModel:
    m = AnnotationModel(open_video(folder))
    m.add_object("car")
    m.paint(0, np.ones((4, 4), bool), 1, origin=(10, 10))
    m.add_keypoint("nose", color=(1, 2, 3))
    m.add_keypoint("tail")
    m.place_point(0, 1, (10.25, 20.5))
    m.place_point(0, 2, (95.5, 63.5))  # the frame's far corner
    m.set_propagated_points(1, {1: (12.123456, 21.0), 2: (90.0, 60.0)}, {1: 0.876543, 2: 0.1})
    m.place_point(4, 2, (50.0, 30.0))
    return m


def assert_same_keypoints(a: AnnotationModel, b: AnnotationModel) -> None:
    assert a.keypoints == b.keypoints
    pa, pb = a.all_frame_points(), b.all_frame_points()
    assert pa.keys() == pb.keys()
    for frame in pa:
        assert pa[frame].reference == pb[frame].reference, frame
        assert pa[frame].points.keys() == pb[frame].points.keys(), frame
        for i, (x, y) in pa[frame].points.items():
            assert pb[frame].points[i] == pytest.approx((x, y), abs=0.005), (frame, i)
            assert pb[frame].confidence_of(i) == pytest.approx(pa[frame].confidence_of(i), abs=5e-5)


def test_round_trip_keeps_keypoint_names_reference_and_propagated_points(folder, tmp_path):
    model = with_keypoints(folder)
    save_project(model, tmp_path / "proj")
    raw = json.loads((tmp_path / "proj" / "project.json").read_text())
    assert raw["version"] == 2
    assert raw["keypoints"][0] == {"id": 1, "name": "nose", "color": [1, 2, 3]}
    assert raw["points"]["reference"]["0"] == {"1": [10.25, 20.5], "2": [95.5, 63.5]}
    assert raw["points"]["propagated"]["1"] == {"1": [12.12, 21.0, 0.8765], "2": [90.0, 60.0, 0.1]}
    reopened = open_project(tmp_path / "proj")
    assert_same_keypoints(model, reopened)
    assert reopened.is_keypoint_reference(4) and not reopened.is_keypoint_reference(1)
    assert reopened.frame_state(0) is FrameState.REFERENCE  # masks still there
    assert not reopened.history.can_undo  # opening is no edit


def test_a_point_edit_alone_makes_the_project_dirty_and_is_saved(folder, tmp_path):
    model = with_keypoints(folder)
    changes = ChangeTracker(model)
    save_project(model, tmp_path / "proj", changes=changes)
    assert not changes.dirty
    model.place_point(2, 1, (5.0, 6.0))
    assert changes.dirty and not changes.frames  # no mask to write, but project.json must be
    result = save_project(model, tmp_path / "proj", changes=changes)
    assert result.frames_written == 0
    assert open_project(tmp_path / "proj").frame_points(2).points[1] == (5.0, 6.0)
    model.history.push("rename", [model.update_keypoint(1, name="snout")])
    assert changes.dirty


def test_version_1_projects_open_without_keypoints_and_save_as_version_2(folder, tmp_path):
    model = with_keypoints(folder)
    save_project(model, tmp_path / "proj")
    path = tmp_path / "proj" / "project.json"
    data = json.loads(path.read_text())
    for key in ("keypoints", "points"):  # what version 1 wrote
        del data[key]
    data["version"] = 1
    path.write_text(json.dumps(data))
    assert read_project_file(tmp_path / "proj").version == 2
    old = open_project(tmp_path / "proj")
    assert old.keypoints == [] and old.all_frame_points() == {}
    assert old.frame_state(0) is FrameState.REFERENCE and old.object(1).name == "car"
    old.add_keypoint("nose")
    save_project(old, tmp_path / "proj")
    assert json.loads(path.read_text())["version"] == 2
    assert open_project(tmp_path / "proj").keypoints[0].name == "nose"


VIDEO = '"video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6}'


@pytest.mark.parametrize("extra, message", [
    ('"keypoints": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]', "keypoint 2 needs a name of its own"),
    ('"keypoints": [{"id": 1, "name": "a"}], "points": {"reference": {"0": {"2": [1, 1]}}}',
     "point 2 of frame 0 is no keypoint"),
    ('"keypoints": [{"id": 1, "name": "a"}], "points": {"reference": {"0": {"1": [96, 1]}}}',
     r"point 1 of frame 0 at \(96.0, 1.0\) is outside the 96x64 frame"),
    ('"keypoints": [{"id": 1, "name": "a"}], "points": {"propagated": {"0": {"1": [1, 1]}}}',
     r"must be \[x, y, confidence\]"),
    ('"keypoints": [{"id": 1, "name": "a"}], "points": {"reference": {"6": {"1": [1, 1]}}}',
     "a frame in points.reference must be an integer 0..5"),
    ('"keypoints": [{"id": 1, "name": "a"}], "points": {"reference": {"0": {"1": [1, 1]}}, '
     '"propagated": {"0": {"1": [1, 1, 0.5]}}}', "frame 0 is listed twice in 'points'"),
])
def test_bad_keypoints_in_a_project_file_give_one_line(extra, message):
    raw = ("{" + f'"version": 2, {VIDEO}, {extra}' + "}").encode()
    with pytest.raises(ProjectError, match=message) as info:
        parse_project(raw, "p/project.json")
    assert "\n" not in str(info.value)


def test_autosave_covers_points_and_recovery_brings_them_back(folder, tmp_path):
    model = with_keypoints(folder)
    saver = Autosaver(model, tmp_path / "autosave" / "a", interval_s=0.0)
    saver.start()
    saver.flush()
    model.place_point(3, 1, (40.0, 41.0))  # only a point changed since the last autosave
    assert saver.due()
    saver.tick()
    saver.abandon()  # as if the app had died
    found = find_recoverable(tmp_path / "autosave")
    assert len(found) == 1
    recovered = AnnotationModel()
    recover(found[0], recovered)
    assert_same_keypoints(model, recovered)
    assert recovered.frame_points(3).points[1] == (40.0, 41.0)
