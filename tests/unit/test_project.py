"""Projects on disk: round trip, incremental and kill-safe saves, moved videos, migration, bad files."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import annotator.core.project.folder as project_mod
from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.errors import MaskError, ProjectError, SaveError
from annotator.core.io.labels import read_mask, write_mask
from annotator.core.project.folder import (ChangeTracker, migrate, open_project, parse_project, read_project,
                                    read_project_file, save_project)
from annotator.core.video import open_video
from tests.synthetic import moving_objects_clip, write_frames

HW = (64, 96)


@pytest.fixture()
def clip(tmp_path):
    frames, truth = moving_objects_clip(n_frames=6, hw=HW, n_objects=1, size=20, step=4)
    return write_frames(tmp_path / "frames", frames), truth


def annotated(folder: Path, truth) -> AnnotationModel:
    model = AnnotationModel(open_video(folder))
    model.add_object("car")
    model.add_object("dog", color=(1, 2, 3))
    model.paint(0, truth[0] == 1, 1)
    model.paint(0, np.ones((3, 3), bool), 2, origin=(50, 80))
    model.set_labels(1, truth[1], FrameState.PROPAGATED)
    model.set_labels(2, np.where(truth[2] == 1, 255, 0).astype(np.uint8), FrameState.EMPTY)  # labelled, no state
    model.set_frame_state(4, FrameState.REFERENCE)  # a reference saying "nothing here"
    model.update_object(2, visible=False)
    return model


def assert_same(a: AnnotationModel, b: AnnotationModel) -> None:
    assert a.objects == b.objects
    assert a.frame_states() == b.frame_states()
    for i in range(a.num_frames):
        assert np.array_equal(a.labels(i), b.labels(i)), f"frame {i} differs"


def test_round_trip_keeps_frames_states_objects_and_settings(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    settings = {"backbone": "lite0", "short_side": 480, "params": {"topk": 10}}
    result = save_project(model, tmp_path / "proj", propagation=settings)
    assert result.generation == 1 and result.frames_written == 4  # frames 0, 1, 2, 4
    reopened = open_project(tmp_path / "proj")
    assert_same(model, reopened)
    assert reopened.object(2).visible is False and reopened.object(2).color == (1, 2, 3)
    assert not reopened.history.can_undo  # opening is not an edit
    data = read_project_file(tmp_path / "proj")
    assert data.propagation == settings and data.video.hw == HW and data.video.frames == 6
    assert data.video.path == "../frames" and data.video.hash
    # masks are plain DAVIS PNGs: the folder is an Annotations folder
    assert sorted(p.name for p in (tmp_path / "proj" / "masks").iterdir()) == [
        "00000.png", "00001.png", "00002.png", "00004.png"]
    assert np.array_equal(read_mask(tmp_path / "proj" / "masks" / "00001.png"), truth[1])
    assert not (tmp_path / "proj" / ".pending").exists()


def test_round_trip_keeps_the_frames_fused_from_two_keyframes(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    model.set_labels(3, truth[3], FrameState.PROPAGATED, keyframes=2)
    save_project(model, tmp_path / "proj")
    text = json.loads((tmp_path / "proj" / "project.json").read_text())
    assert text["frames"]["two_keyframes"] == [3] and text["version"] == 2
    reopened = open_project(tmp_path / "proj")
    assert [reopened.keyframes(i) for i in range(6)] == [0, 1, 0, 2, 0, 0]
    # a project saved before the field existed: every propagated frame came from one keyframe
    del text["frames"]["two_keyframes"]
    (tmp_path / "proj" / "project.json").write_text(json.dumps(text))
    assert [open_project(tmp_path / "proj").keyframes(i) for i in range(6)] == [0, 1, 0, 1, 0, 0]


def grown_by_a_column(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object 1 of ``truth`` as propagation drew it, and as shown once the grow added a column to its right."""
    taught = np.where(truth == 1, 1, 0).astype(np.uint8)
    shown = taught.copy()
    shown[:, 1:][taught[:, :-1] == 1] = 1
    return taught, shown


def test_round_trip_keeps_what_the_colour_grow_added_so_an_accepted_frame_still_teaches_less(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    taught, shown = grown_by_a_column(truth[3])
    model.set_labels(3, shown, FrameState.PROPAGATED, taught=taught)
    model.set_frame_state(3, FrameState.REFERENCE)  # accepted as it was (R)
    model.set_labels(5, shown, FrameState.PROPAGATED, taught=taught)  # not accepted (yet)
    save_project(model, tmp_path / "proj")
    text = json.loads((tmp_path / "proj" / "project.json").read_text())
    assert sorted(text["grown"]) == ["3", "5"]
    reopened = open_project(tmp_path / "proj")
    np.testing.assert_array_equal(reopened.labels(3), shown)  # it shows and exports the grown masks
    np.testing.assert_array_equal(reopened.teaching_references()[3], taught)
    reopened.set_frame_state(5, FrameState.REFERENCE)
    np.testing.assert_array_equal(reopened.teaching_references()[5], taught)
    # a mask changed outside the app (an added pixel no longer an object's): the frame teaches what it shows
    edited = shown.copy()
    edited[np.argwhere(shown != taught)[0][0], np.argwhere(shown != taught)[0][1]] = 0
    write_mask(tmp_path / "proj" / "masks" / "00003.png", edited)
    np.testing.assert_array_equal(open_project(tmp_path / "proj").teaching_references()[3], edited)
    # a project saved before the key existed: the same
    write_mask(tmp_path / "proj" / "masks" / "00003.png", shown)
    del text["grown"]
    (tmp_path / "proj" / "project.json").write_text(json.dumps(text))
    np.testing.assert_array_equal(open_project(tmp_path / "proj").teaching_references()[3], shown)


def test_a_later_save_writes_the_grown_pixels_of_a_re_propagated_frame_not_the_earlier_ones(clip, tmp_path):
    # saves keep the text of unchanged entries (autosave would deflate every frame again otherwise):
    # a frame grown differently inside the same box must not get its earlier text
    folder, truth = clip
    model = annotated(folder, truth)
    taught, shown = grown_by_a_column(truth[3])
    model.set_labels(5, shown, FrameState.PROPAGATED, taught=taught)
    save_project(model, tmp_path / "proj")
    added = np.argwhere(shown != taught)
    assert len(added) >= 3
    y, x = added[len(added) // 2]  # not a corner: the box of the added pixels stays the same
    taught_again = taught.copy()
    taught_again[y, x] = 1  # this time propagation itself reached that pixel
    model.set_labels(5, shown, FrameState.PROPAGATED, taught=taught_again)
    save_project(model, tmp_path / "proj")
    saved = json.loads((tmp_path / "proj" / "project.json").read_text())["grown"]["5"]
    reopened = open_project(tmp_path / "proj")
    reopened.set_frame_state(5, FrameState.REFERENCE)
    np.testing.assert_array_equal(reopened.teaching_references()[5], taught_again)
    assert saved["box"] == list(model.grown_pixels()[5][0])


def test_second_save_writes_only_changed_frames_and_deletes_cleared_ones(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    changes = ChangeTracker(model)
    proj = tmp_path / "proj"
    save_project(model, proj, changes=changes)
    created = read_project_file(proj).created
    untouched = (proj / "masks" / "00001.png").stat().st_ino
    assert not changes.dirty
    model.paint(3, np.ones((4, 4), bool), 1)
    model.clear_frame(2)
    assert changes.frames == {2, 3}
    result = save_project(model, proj, changes=changes)
    assert result.frames_written == 1 and result.generation == 2  # frame 3; frame 2 is gone
    assert (proj / "masks" / "00001.png").stat().st_ino == untouched  # not rewritten
    assert not (proj / "masks" / "00002.png").exists()
    assert read_project_file(proj).created == created
    assert_same(model, open_project(proj))
    # "save as" elsewhere writes everything, whatever the tracker says
    other = save_project(model, tmp_path / "copy", changes=changes)
    assert other.frames_written == 4 and other.generation == 1  # frames 0, 1, 3, 4
    assert_same(model, open_project(tmp_path / "copy"))


def test_failed_save_keeps_the_previous_save_intact(clip, tmp_path, monkeypatch):
    folder, truth = clip
    model = annotated(folder, truth)
    proj = tmp_path / "proj"
    changes = ChangeTracker(model)
    save_project(model, proj, changes=changes)
    before = open_project(proj)
    index_bytes = (proj / "project.json").read_bytes()
    model.paint(5, np.ones((5, 5), bool), 1)
    model.paint(1, np.ones((5, 5), bool), 2)
    real_write, calls = os.write, []

    def write_until_full(fd, data):  # the second file written fills the disk
        calls.append(fd)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_until_full)
    with pytest.raises(SaveError, match="No space left on device"):
        save_project(model, proj, changes=changes)
    monkeypatch.setattr(os, "write", real_write)
    assert (proj / "project.json").read_bytes() == index_bytes
    assert_same(before, open_project(proj))
    assert not (proj / ".pending").exists() or not any((proj / ".pending").rglob("*.png"))
    assert changes.frames == {1, 5}  # still to save
    save_project(model, proj, changes=changes)
    assert_same(model, open_project(proj))


def test_kill_between_commit_and_tidy_reads_pending_masks(clip, tmp_path, monkeypatch):
    folder, truth = clip
    model = annotated(folder, truth)
    proj = tmp_path / "proj"
    changes = ChangeTracker(model)
    save_project(model, proj, changes=changes)
    model.paint(1, np.ones((6, 6), bool), 2)
    monkeypatch.setattr(project_mod, "_tidy_after_commit", lambda *a: None)  # "killed" right after the commit
    save_project(model, proj, changes=changes)
    monkeypatch.undo()
    assert (proj / ".pending" / "2" / "00001.png").is_file()
    assert_same(model, open_project(proj))  # the pending mask wins over the older one in masks/
    model.paint(3, np.ones((2, 2), bool), 1)
    save_project(model, proj, changes=changes)  # finishes the move, then saves
    assert not (proj / ".pending").exists()
    assert np.array_equal(read_mask(proj / "masks" / "00001.png"), model.labels(1))
    assert_same(model, open_project(proj))


def test_moved_video_is_found_relative_absolute_or_located(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    proj = tmp_path / "proj"
    save_project(model, proj)
    # project and video moved together: the relative path finds it
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(proj), moved / "proj")
    shutil.move(str(folder), moved / "frames")
    content = read_project(moved / "proj")
    assert Path(content.video.path) == moved / "frames" and not content.relocated
    content.video.close()
    # the video went elsewhere: ask, and remember
    shutil.move(str(moved / "frames"), tmp_path / "elsewhere")
    asked = []
    with pytest.raises(ProjectError, match="video of .* is missing"):
        read_project(moved / "proj")
    with pytest.raises(ProjectError, match="is missing"):
        read_project(moved / "proj", locate_video=lambda rec: asked.append(rec) or None)
    assert asked and asked[0].kind == "folder" and asked[0].hw == HW
    content = read_project(moved / "proj", locate_video=lambda rec: tmp_path / "elsewhere")
    assert content.relocated and Path(content.video.path) == tmp_path / "elsewhere"
    content.video.close()


def test_video_with_other_content_is_refused_unless_confirmed(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    save_project(model, tmp_path / "proj")
    frames, _ = moving_objects_clip(n_frames=6, hw=HW, size=20, step=4, seed=7)
    write_frames(folder, frames)  # same names and size, other pictures
    with pytest.raises(ProjectError, match="not the video this project was made on"):
        read_project(tmp_path / "proj")
    seen = []
    content = read_project(tmp_path / "proj", confirm_mismatch=lambda p: seen.append(p) or True)
    assert seen == [folder] and content.video_hash != content.data.video.hash
    content.video.close()


def test_video_of_other_size_or_too_short_is_refused(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    save_project(model, tmp_path / "proj")
    data = json.loads((tmp_path / "proj" / "project.json").read_text())
    data["video"]["hash"] = None  # no hash to compare: the size check must still catch it
    data["video"]["hw"] = [32, 48]
    (tmp_path / "proj" / "project.json").write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="is 96x64 but the project's masks are 48x32"):
        read_project(tmp_path / "proj")


def test_masks_that_do_not_fit_the_project_are_named(clip, tmp_path):
    folder, truth = clip
    model = annotated(folder, truth)
    proj = tmp_path / "proj"
    save_project(model, proj)
    write_mask(proj / "masks" / "00001.png", np.full(HW, 7, np.uint8))
    with pytest.raises(MaskError, match=r"00001\.png: mask has object id 7 but the project has 2 objects"):
        read_project(proj)
    write_mask(proj / "masks" / "00001.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(MaskError, match="mask is 10x10 but the video is 96x64"):
        read_project(proj)
    (proj / "masks" / "00001.png").unlink()
    with pytest.raises(MaskError, match="mask file not found"):
        read_project(proj)


def test_version_0_projects_are_migrated(clip, tmp_path):
    folder, truth = clip
    proj = tmp_path / "old"
    (proj / "masks").mkdir(parents=True)
    write_mask(proj / "masks" / "00000.png", truth[0])
    write_mask(proj / "masks" / "00003.png", truth[3])
    old = {"video": str(folder), "size": [96, 64], "num_frames": 6,
           "objects": {"1": {"name": "car", "color": "#00ff80"}}, "references": [0], "propagated": [3]}
    (proj / "project.json").write_text(json.dumps(old))
    data = read_project_file(proj)
    assert data.version == 2 and data.video.hw == (64, 96) and data.video.hash is None
    model = open_project(proj)
    assert model.object(1).name == "car" and model.object(1).color == (0, 255, 128)
    assert model.frame_state(0) is FrameState.REFERENCE and model.frame_state(3) is FrameState.PROPAGATED
    assert np.array_equal(model.labels(3), truth[3])
    # saving writes the current version, with a hash from now on
    save_project(model, proj)
    assert json.loads((proj / "project.json").read_text())["version"] == 2
    assert read_project_file(proj).video.hash


def test_migrate_refuses_newer_and_nonsense_versions():
    with pytest.raises(ProjectError, match="newer annotator"):
        migrate({"version": 99})
    with pytest.raises(ProjectError, match="invalid format version"):
        migrate({"version": "1"})
    with pytest.raises(ProjectError, match="expected a JSON object"):
        migrate([1, 2])
    with pytest.raises(ProjectError, match="no video or size"):
        migrate({"objects": {}})


@pytest.mark.parametrize("raw, message", [
    (b"", "corrupt project file"),
    (b"{\"version\": 1,", "corrupt project file"),
    (b"\xff\xfe\x00", "not UTF-8"),
    (b"{\"version\": 1, \"video\": 3}", "'video' must be an object"),
    (b'{"version": 1, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [0, 6]}}', "frames.reference must be an integer 0..5, got 6"),
    (b'{"version": 1, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "objects": [{"id": 300}]}', "object id must be an integer 1..254, got 300"),
    (b'{"version": 1, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1], "propagated": [1]}}', "frame 1 is listed twice"),
    (b'{"version": 2, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1], "two_keyframes": [1]}}', "frame 1 is in frames.two_keyframes but not"),
    (b'{"version": 2, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1]}, "grown": {"2": {"box": [0, 0, 1, 1], "added": "eJxjAAAAAQAB"}}}',
     "grown: '2' is not a stored frame"),
    (b'{"version": 2, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1]}, "grown": {"1": {"box": [0, 0, 70, 1], "added": "eJxjAAAAAQAB"}}}',
     "is not a box inside the 96x64 frame"),
    (b'{"version": 2, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1]}, "grown": {"1": {"box": [0, 0, 1, 1], "added": "not base64!"}}}',
     "grown.1.added is not a packed mask"),
    (b'{"version": 2, "video": {"path": "a", "absolute": "/a", "hw": [64, 96], "frames": 6},'
     b' "frames": {"reference": [1]}, "grown": {"1": {"box": [0, 0, 4, 4], "added": "eJxjAAAAAQAB"}}}',
     "grown.1.added does not fit its box"),
])
def test_bad_project_files_give_one_line(raw, message):
    with pytest.raises(ProjectError, match=message) as info:
        parse_project(raw, "p/project.json")
    assert "\n" not in str(info.value) and str(info.value).startswith("p/project.json")


def test_not_a_project_and_unsafe_targets(clip, tmp_path):
    folder, truth = clip
    with pytest.raises(ProjectError, match="is not an annotation project"):
        open_project(tmp_path)
    model = annotated(folder, truth)
    with pytest.raises(ProjectError, match="is not empty and not a project"):
        save_project(model, folder)  # would mix masks into the user's frame folder
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ProjectError, match="is a file"):
        save_project(model, tmp_path / "afile")


def tree(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("contents", [
    {"masks/00000.png": b"gt0", **{f"masks/{i:05d}.png": b"gt" for i in range(1, 40)}},  # the user's own masks
    {"masks/readme.txt": b"x"},
    {".pending/notes.txt": b"x"},
    {".pending/1/00000.png": b"x", ".pending/1/other.jpg": b"y"},
    {"lock.json": b"{}"},  # an autosave area's lock: only the autosaver may bring one
    {".hidden": b"x"},
    {"masks": None},  # an empty masks folder with something else beside it
])
def test_save_as_into_a_folder_that_is_not_a_project_is_refused_whatever_it_holds(clip, tmp_path, contents):
    folder, truth = clip
    model = annotated(folder, truth)
    target = tmp_path / "target"
    for name, data in contents.items():
        path = target / name
        if data is None:
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    if list(contents) == ["masks"]:
        (target / "notes.txt").write_text("mine")
    before = tree(target)
    with pytest.raises(ProjectError, match="is not empty and not a project") as info:
        save_project(model, target)
    assert "\n" not in str(info.value)
    assert tree(target) == before  # nothing written, nothing deleted


def test_a_first_save_killed_before_its_commit_can_be_saved_again(clip, tmp_path, monkeypatch):
    folder, truth = clip
    model = annotated(folder, truth)
    target = tmp_path / "proj"
    real = project_mod.atomic_write_text
    monkeypatch.setattr(project_mod, "atomic_write_text", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        save_project(model, target)
    monkeypatch.setattr(project_mod, "atomic_write_text", real)
    # what a SIGKILL at that moment leaves: the pending masks, an atomic write's temp file
    (target / ".pending" / "1").mkdir(parents=True)
    write_mask(target / ".pending" / "1" / "00000.png", truth[0])
    (target / ".pending" / "1" / ".00001.png.0a1b2c3d.tmp").write_bytes(b"half")
    (target / ".project.json.0a1b2c3d.tmp").write_bytes(b"half")
    save_project(model, target)
    assert_same(model, open_project(target))
    assert {p.name for p in target.iterdir()} == {"project.json", "masks"}


# --------------------------------------------------------------------------------------------- kills

KILLS = 50




def test_sigkill_during_edit_and_save_loop_never_loses_a_saved_edit(fork_server, tmp_path):
    from tests.crash_worker import apply_edit

    frames, truth = moving_objects_clip(n_frames=5, hw=HW, size=20, step=4)
    folder = write_frames(tmp_path / "frames", frames)
    model = AnnotationModel(open_video(folder))
    model.add_object("a")
    model.add_object("b")
    model.paint(0, truth[0] == 1, 1)
    proj = tmp_path / "proj"
    save_project(model, proj)
    rng = np.random.default_rng(0)
    saves_seen, mid_save = 0, 0
    for trial in range(KILLS):
        base = open_project(proj)  # the state the child starts from
        pid, seen = fork_server.start({"job": "edit", "project": str(proj), "seed": trial})
        time.sleep(float(rng.uniform(0.0, 0.12)))
        lines = fork_server.kill_and_collect(pid, seen)
        saved = [int(line.split()[1]) for line in lines if line.startswith("saved ")]
        last = max(saved, default=0)
        saves_seen += len(saved)
        reopened = open_project(proj)  # must open, after every kill
        for png in proj.rglob("*.png"):  # no damaged file, in masks/ or .pending/
            read_mask(png)
        # the reopened project is exactly the last reported save, or the one the kill interrupted
        # after its commit point; never anything older
        for step in range(last):
            apply_edit(base, trial, step)
        try:
            assert_same(reopened, base)
        except AssertionError:
            for step in range(last, last + 2):
                apply_edit(base, trial, step)
            assert_same(reopened, base)
            mid_save += 1
    print(f"{KILLS} kills, {saves_seen} saves reported, {mid_save} kills after a commit before its report")
    assert saves_seen > KILLS  # the kills did land between saves, not only before the first one
