"""Projects in the window: save / open / moved video / bad projects as one-line dialogs, autosave, recovery."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from annotator.core.model.annotation import FrameState
from annotator.core.project.autosave import LOCK_FILE, find_recoverable
from annotator.core.project.folder import read_project_file
from gui_helpers import run_propagation, square_clip, window_on_frame_folder
from tests.synthetic import write_frames

pytestmark = pytest.mark.gui


@pytest.fixture()
def window(make_window, tmp_path):
    """A window over a real frame folder (projects need a video on disk), with frame 0 painted."""
    frames, truth = square_clip(n=6)
    w = window_on_frame_folder(make_window, tmp_path / "frames", frames)
    m = w.model
    m.history.push("add", [m.add_object("square")])
    m.history.push("paint", [m.paint(0, truth[0] == 1, 1)])
    w.truth = truth
    return w


@pytest.fixture()
def dialogs(monkeypatch):
    """Records every warning dialog and answers questions and file dialogs as the test says."""
    shown: list[str] = []
    answers = {"question": QMessageBox.StandardButton.Yes, "save": "", "folder": "", "file": ""}
    monkeypatch.setattr(QMessageBox, "open", lambda box: shown.append(box.text()))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers["question"])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (answers["save"], ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: answers["folder"])
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (answers["file"], ""))
    return shown, answers


def same_annotation(a, b) -> bool:
    return (a.objects == b.objects and a.frame_states() == b.frame_states()
            and all(np.array_equal(a.labels(i), b.labels(i)) for i in range(a.num_frames)))


def test_save_as_then_save_writes_only_changes_and_reopens_in_another_window(window, make_window, dialogs, tmp_path):
    shown, answers = dialogs
    w = window
    answers["save"] = str(tmp_path / "proj")
    w.projects.actions["save_project"].trigger()  # no project yet: asks where
    assert shown == [] and read_project_file(tmp_path / "proj").states == {0: FrameState.REFERENCE}
    assert "proj" in w.windowTitle() and "*" not in w.windowTitle()
    w.model.history.push("paint", [w.model.paint(3, np.ones((4, 4), bool), 1)])
    assert w.windowTitle().count("*") == 1
    w.projects.actions["save_project"].trigger()
    assert "1 frame(s) written" in w.statusBar().currentMessage() and "*" not in w.windowTitle()
    other = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    answers["folder"] = str(tmp_path / "proj")
    other.projects.actions["open_project"].trigger()
    assert shown == [] and same_annotation(other.model, w.model)
    assert other.projects.folder == tmp_path / "proj" and not other.model.history.can_undo


def test_save_as_into_a_folder_of_the_users_masks_is_refused_and_touches_nothing(window, dialogs, tmp_path):
    shown, answers = dialogs
    theirs = tmp_path / "groundtruth"
    (theirs / "masks").mkdir(parents=True)
    for i in range(40):  # a user's own ground truth, in a folder named like a project's
        (theirs / "masks" / f"{i:05d}.png").write_bytes(b"mine %d" % i)
    answers["save"] = str(theirs)
    assert not window.projects.save_as_dialog()
    assert len(shown) == 1 and "\n" not in shown[0] and "not empty and not a project" in shown[0]
    assert sorted(p.relative_to(theirs).as_posix() for p in theirs.rglob("*")) == ["masks", *(f"masks/{i:05d}.png" for i in range(40))]
    assert all((theirs / "masks" / f"{i:05d}.png").read_bytes() == b"mine %d" % i for i in range(40))
    assert window.projects.folder is None and "*" in window.windowTitle()


def test_bad_projects_show_one_line_and_the_window_keeps_its_video(window, dialogs, tmp_path):
    shown, answers = dialogs
    w = window
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "project.json").write_text('{"version": 1, "video": ')
    assert not w.projects.open_project(bad)
    assert len(shown) == 1 and "\n" not in shown[0] and "corrupt project file" in shown[0]
    assert w.model.num_frames == 6 and w.model.is_reference(0)
    (bad / "project.json").write_text(json.dumps({"version": 7}))
    assert not w.projects.open_project(bad)
    assert "newer annotator" in shown[1]
    # the file actions (open dialog, drag and drop) point to "Open project"
    assert not w.files.open_path(str(bad))
    assert "is an annotation project" in shown[2] and "Open project" in shown[2]
    assert w.model.num_frames == 6


def test_moved_video_is_located_with_a_dialog_and_a_different_one_needs_a_yes(window, make_window, dialogs, tmp_path):
    shown, answers = dialogs
    w = window
    assert w.projects.save_to(tmp_path / "proj")
    shutil.move(str(tmp_path / "frames"), tmp_path / "moved")
    other = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    answers["folder"] = ""  # the user cancels the locate dialog
    assert not other.projects.open_project(tmp_path / "proj")
    assert "video of" in shown[-1] and "is missing" in shown[-1]
    answers["folder"] = str(tmp_path / "moved")
    assert other.projects.open_project(tmp_path / "proj")
    assert "the video moved" in other.statusBar().currentMessage() and "*" in other.windowTitle()
    assert same_annotation(other.model, w.model)
    assert other.projects.save()  # remembers where the video is now
    assert read_project_file(tmp_path / "proj").video.path == "../moved"
    # another clip put in its place: refused unless the user says yes
    frames, _ = square_clip(n=6, seed=5)
    write_frames(tmp_path / "moved", list(frames))
    answers["question"] = QMessageBox.StandardButton.No
    count = len(shown)
    assert not other.projects.open_project(tmp_path / "proj")
    assert len(shown) == count + 1 and "not the video this project was made on" in shown[-1]
    answers["question"] = QMessageBox.StandardButton.Yes
    assert other.projects.open_project(tmp_path / "proj")


def test_full_disk_during_save_is_a_dialog_and_the_previous_save_stays(window, dialogs, tmp_path, monkeypatch):
    shown, _ = dialogs
    w = window
    assert w.projects.save_to(tmp_path / "proj")
    before = (tmp_path / "proj" / "project.json").read_bytes()
    w.model.history.push("paint", [w.model.paint(2, np.ones((4, 4), bool), 1)])
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    assert not w.projects.save()
    monkeypatch.undo()
    assert len(shown) == 1 and "No space left on device" in shown[0] and "\n" not in shown[0]
    assert (tmp_path / "proj" / "project.json").read_bytes() == before
    assert "*" in w.windowTitle() and w.isVisible()
    assert w.projects.save()  # the disk has room again: the change is saved
    assert 2 in read_project_file(tmp_path / "proj").states


def test_autosave_during_propagation_and_recovery_after_a_crash(qtbot, window, make_window, dialogs, tmp_path):
    shown, answers = dialogs
    w = window
    root = tmp_path / "autosave"
    w.projects.enable_autosave(root, chunk_frames=2)
    saver = w.projects.autosaver
    assert saver is not None and saver.folder.parent == root
    saves = []
    w.propagation.frame_done.connect(lambda _i: saves.append(saver.saves))
    applied, cancelled = run_propagation(qtbot, w)
    assert applied == 5 and not cancelled
    assert saves[-1] >= 2  # saved during the run, chunk by chunk, not only at the end
    assert sorted(read_project_file(saver.folder).states) == list(range(6))
    # the process dies: the system drops its session lock, nothing was closed
    saver.session_lock.release()
    w.projects.autosaver = None  # this window must not tidy up what the "crash" left
    w.projects.timer.stop()
    assert len(find_recoverable(root)) == 1
    # the next start offers it
    fresh = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    fresh.projects.enable_autosave(root)
    answers["question"] = QMessageBox.StandardButton.Yes
    fresh.projects.startup(None)
    assert shown == [] and same_annotation(fresh.model, w.model)
    assert "Recovered" in fresh.statusBar().currentMessage() and "*" in fresh.windowTitle()
    left = find_recoverable(root)
    assert left == []  # the old copy is gone, the new session autosaves in its own folder
    assert fresh.projects.autosaver is not None and fresh.projects.autosaver.folder.exists()


def test_declined_recovery_is_deleted_and_clean_close_leaves_nothing(window, make_window, dialogs, tmp_path):
    shown, answers = dialogs
    w = window
    root = tmp_path / "autosave"
    w.projects.enable_autosave(root)
    w.projects.autosave_flush()
    w.close()  # unsaved work: kept, flagged as left on purpose
    found = find_recoverable(root)
    assert len(found) == 1 and not found[0].crashed
    fresh = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    fresh.projects.enable_autosave(root)
    answers["question"] = QMessageBox.StandardButton.No
    fresh.projects.startup(None)  # declines, then opens the sample clip
    assert find_recoverable(root) == [] and fresh.model.num_frames == 40
    assert fresh.projects.save_to(tmp_path / "sample-proj")
    fresh.close()  # everything saved: the autosave folder goes
    assert not any(root.iterdir()), [(p, sorted(x.name for x in p.iterdir()), (p / LOCK_FILE).read_text() if (p / LOCK_FILE).exists() else None) for p in root.iterdir()]



def test_ctrl_q_with_unsaved_changes_asks_save_discard_or_cancel(qtbot, window, dialogs, tmp_path, monkeypatch):
    shown, answers = dialogs
    w = window
    asked: list[str] = []
    buttons = QMessageBox.StandardButton
    reply = {"answer": buttons.Cancel}

    def question(_parent, _title, text, *_a, **_k):
        asked.append(text)
        return reply["answer"]

    monkeypatch.setattr(QMessageBox, "question", question)
    qtbot.keyClick(w.canvas, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert len(asked) == 1 and "unsaved changes" in asked[0] and w.isVisible()  # Cancel: still open
    reply["answer"] = buttons.Save
    answers["save"] = str(tmp_path / "proj")
    w.actions_by_name["quit"].trigger()
    assert len(asked) == 2 and not w.isVisible() and read_project_file(tmp_path / "proj").states
    w.show()
    w.model.history.push("paint", [w.model.paint(2, np.ones((3, 3), bool), 1)])
    reply["answer"] = buttons.Discard
    w.actions_by_name["quit"].trigger()
    assert len(asked) == 3 and not w.isVisible() and 2 not in read_project_file(tmp_path / "proj").states


def test_ctrl_q_without_changes_quits_without_asking(qtbot, make_window, monkeypatch):
    w = make_window(np.zeros((3, 16, 16, 3), np.uint8))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked with nothing unsaved"))
    w.actions_by_name["quit"].trigger()
    assert not w.isVisible()


def test_start_with_a_video_offers_its_own_recovery_and_lists_the_others(qtbot, make_window, dialogs, tmp_path,
                                                                          monkeypatch):
    import time

    from annotator.core.model.annotation import AnnotationModel
    from annotator.core.project.autosave import Autosaver, autosave_folder
    from annotator.core.video import open_video
    from tests.synthetic import write_frames

    shown, answers = dialogs
    root = tmp_path / "autosave"
    frames, truth = square_clip(n=4)
    crashed = {}
    for name in ("wanted", "other"):  # "other" crashes last: it is the newest autosave
        folder = write_frames(tmp_path / name, list(frames))
        model = AnnotationModel(open_video(folder))
        model.add_object(name)
        model.paint(0, truth[0] == 1, 1)
        saver = Autosaver(model, autosave_folder(root, str(folder)))
        saver.start()
        saver.flush()
        saver.session_lock.release()  # the process "dies"
        crashed[name] = folder
        time.sleep(1.1)  # autosaves are ordered by their save time, to the second
    asked: list[str] = []
    fresh = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    fresh.projects.enable_autosave(root)

    def question(_parent, _title, text, *_a, **_k):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", question)
    fresh.projects.startup(str(crashed["wanted"]))
    assert len(asked) == 1 and "wanted" in asked[0] and "other" not in asked[0]
    assert [o.name for o in fresh.model.objects] == ["wanted"] and fresh.model.num_frames == 4
    assert "other" in fresh.statusBar().currentMessage()
    left = find_recoverable(root)
    assert [r.name for r in left] == ["other"]  # kept, and offered when "other" is opened
    asked.clear()
    assert fresh.files.open_path(str(crashed["other"]))
    assert len(asked) == 1 and "other" in asked[0] and [o.name for o in fresh.model.objects] == ["other"]
