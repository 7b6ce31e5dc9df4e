"""keypoints.json from a model or a saved project: the format of ``annotator keypoints``, names as keys."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.core.model.annotation import AnnotationModel
from annotator.core.errors import UsageError
from annotator.core.io.export import write_keypoints_json
from annotator.core.project.folder import save_project
from annotator.core.video import open_video
from tests.synthetic import moving_objects_clip, write_frames


@pytest.fixture()
def model(tmp_path) -> AnnotationModel:
    frames, _ = moving_objects_clip(n_frames=5, hw=(48, 80), size=16, step=4)
    m = AnnotationModel(open_video(write_frames(tmp_path / "frames", frames)))
    for name in ("head", "gone", "foot"):
        m.add_keypoint(name)
    m.remove_keypoint(2)  # ids 1 and 3 are left: the file must still name them right
    m.place_point(0, 1, (10.0, 12.5))
    m.place_point(0, 3, (30.25, 40.0))
    m.set_propagated_points(2, {1: (11.111, 13.0), 3: (31.0, 41.0)}, {1: 0.91234, 3: 0.25})
    return m


EXPECTED_FRAMES = {
    "0": {"head": {"x": 10.0, "y": 12.5, "confidence": 1.0, "reference": True},
          "foot": {"x": 30.25, "y": 40.0, "confidence": 1.0, "reference": True}},
    "2": {"head": {"x": 11.11, "y": 13.0, "confidence": 0.9123, "reference": False},
          "foot": {"x": 31.0, "y": 41.0, "confidence": 0.25, "reference": False}},
}


def test_model_keypoints_are_written_in_the_cli_format(model, tmp_path):
    out = tmp_path / "keypoints.json"
    assert write_keypoints_json(model, out) == 2
    data = json.loads(out.read_text())
    assert data == {"image_size": [80, 48], "points": ["head", "foot"], "frames": EXPECTED_FRAMES}


def test_nothing_to_export_is_a_clear_error(tmp_path):
    m = AnnotationModel(open_video(write_frames(tmp_path / "f", moving_objects_clip(n_frames=2)[0])))
    m.add_keypoint("head")
    with pytest.raises(UsageError, match="no keypoints to export"):
        write_keypoints_json(m, tmp_path / "k.json")
    assert not (tmp_path / "k.json").exists()


def test_cli_export_writes_a_projects_keypoints(model, tmp_path, capsys):
    model.add_object("car")
    model.paint(0, np.ones((3, 3), bool), 1)
    save_project(model, tmp_path / "proj")
    out = tmp_path / "k.json"
    assert main(["export", str(tmp_path / "proj"), "--out", str(tmp_path / "davis"), "--keypoints", str(out), "-q"]) == 0
    assert json.loads(out.read_text())["frames"] == EXPECTED_FRAMES
    assert (tmp_path / "davis" / "Annotations" / "480p").is_dir()
    # asked again: refuses to replace the file unless --overwrite
    assert main(["export", str(tmp_path / "proj"), "--out", str(tmp_path / "d2"), "--keypoints", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
