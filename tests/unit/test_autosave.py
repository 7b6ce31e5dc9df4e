"""Autosave and recovery: when it saves, what a crash leaves, and a SIGKILL during propagation."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.project.autosave import (LOCK_FILE, Autosaver, autosave_folder, discard, find_recoverable,
                                     pid_alive, recover)
from annotator.core.io.labels import read_mask
from annotator.core.project.folder import read_project_file, save_project
from annotator.core.video import open_video
from tests.synthetic import moving_objects_clip, write_frames

HW = (32, 48)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def model(tmp_path):
    frames, truth = moving_objects_clip(n_frames=12, hw=HW, size=12, step=2)
    m = AnnotationModel(open_video(write_frames(tmp_path / "frames", frames)))
    m.add_object("car")
    m.paint(0, truth[0] == 1, 1)
    m.truth = truth  # type: ignore[attr-defined]
    return m


def dead_pid() -> int:
    pid = os.fork() if hasattr(os, "fork") else None
    if pid is None:
        pytest.skip("needs fork")
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def test_saves_after_the_interval_or_a_chunk_of_frames_and_only_when_changed(model, tmp_path):
    clock = Clock()
    saver = Autosaver(model, tmp_path / "auto" / "s1", interval_s=5, chunk_frames=3, clock=clock)
    saver.start()
    assert saver.tick() is False  # everything is marked, but the interval has not passed
    clock.now += 5
    assert saver.tick() is True and saver.saves == 1
    assert read_project_file(saver.folder).states == {0: FrameState.REFERENCE}
    clock.now += 60
    assert saver.tick() is False  # nothing changed
    model.paint(9, np.ones((2, 2), bool), 1)
    assert saver.tick() is True  # the first change after a quiet minute is saved at once
    clock.now += 1
    for i in (1, 2):
        model.set_labels(i, model.truth[i], FrameState.PROPAGATED)
    assert saver.tick() is False  # 2 frames < chunk of 3, interval not over
    model.set_labels(3, model.truth[3], FrameState.PROPAGATED)
    assert saver.pending == 3 and saver.tick() is True  # a propagation chunk
    assert sorted(read_project_file(saver.folder).states) == [0, 1, 2, 3, 9]


def test_crash_leaves_recoverable_work_and_recovery_restores_it(model, tmp_path, monkeypatch):
    root = tmp_path / "auto"
    project = tmp_path / "proj"
    saver = Autosaver(model, autosave_folder(root, str(project)), project=project)
    saver.start()
    model.paint(5, np.ones((4, 4), bool), 1)
    saver.flush()
    lock = json.loads((saver.folder / LOCK_FILE).read_text())
    assert lock["pid"] == os.getpid() and lock["project"] == str(project.absolute()) and not lock["closed"]
    assert find_recoverable(root) == []  # our own session is alive
    saver.session_lock.release()  # the process "dies": the system drops its session lock
    found = find_recoverable(root)
    assert len(found) == 1 and found[0].crashed and found[0].project == project.absolute()
    assert found[0].frames == 2 and "after a crash" in found[0].describe()
    assert find_recoverable(root, project=tmp_path / "other") == []
    fresh = AnnotationModel()
    recover(found[0], fresh)
    assert fresh.frame_states() == model.frame_states()
    assert np.array_equal(fresh.labels(5), model.labels(5)) and fresh.objects == model.objects
    discard(found[0])
    assert find_recoverable(root) == [] and not saver.folder.exists()


def test_a_crash_is_offered_when_its_pid_runs_again_and_a_live_session_never_is(model, tmp_path):
    root = tmp_path / "auto"
    folder = autosave_folder(root, "video-key")
    pid = os.fork()
    if pid == 0:  # a session that autosaves, then dies without closing
        code = 1
        try:
            saver = Autosaver(model, folder)
            saver.start()
            saver.flush()
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    lock = json.loads((folder / LOCK_FILE).read_text())
    assert lock["pid"] == pid and not lock["closed"]
    for reused in (1, os.getpid()):  # its pid given to another process: PID 1 in a container, or us
        lock["pid"] = reused
        (folder / LOCK_FILE).write_text(json.dumps(lock))
        found = find_recoverable(root)
        assert [f.folder for f in found] == [folder] and found[0].crashed
        assert autosave_folder(root, "video-key") != folder  # its work is not overwritten either
    # a running session is never offered, whatever pid its lock names
    live = Autosaver(model, root / "live")
    live.start()
    live.flush()
    lock = json.loads((live.folder / LOCK_FILE).read_text())
    lock["pid"] = dead_pid()
    (live.folder / LOCK_FILE).write_text(json.dumps(lock))
    assert [f.folder for f in find_recoverable(root)] == [folder]
    live.close(unsaved=False)
    assert not live.folder.exists() and not live.session_lock.held


def test_clean_close_removes_the_folder_or_keeps_unsaved_work(model, tmp_path):
    root = tmp_path / "auto"
    saver = Autosaver(model, root / "a")
    saver.start()
    saver.close(unsaved=False)
    assert not (root / "a").exists() and not saver.running
    saver = Autosaver(model, root / "b")
    saver.start()
    model.paint(2, np.ones((3, 3), bool), 1)
    saver.close(unsaved=True)  # quit without saving: kept, flagged as not a crash
    found = find_recoverable(root)
    assert len(found) == 1 and not found[0].crashed and found[0].frames == 2


def test_folders_in_use_or_holding_recoverable_work_are_not_taken(model, tmp_path):
    root = tmp_path / "auto"
    folder = autosave_folder(root, "video-key")
    assert autosave_folder(root, "video-key") == folder  # stable from session to session
    folder.mkdir(parents=True)
    (folder / "junk.txt").write_text("old")
    saver = Autosaver(model, folder)
    saver.start()
    assert not (folder / "junk.txt").exists()  # start() takes the folder over
    assert autosave_folder(root, "video-key") == folder  # ours, nothing saved yet
    saver.flush()
    own = folder.with_name(f"{folder.name}-{os.getpid()}")
    assert autosave_folder(root, "video-key") == own  # holds work now
    lock = json.loads((folder / LOCK_FILE).read_text())
    lock["pid"] = 1  # another live process (pid 1 always runs)
    (folder / LOCK_FILE).write_text(json.dumps(lock))
    assert autosave_folder(root, "video-key") == own
    assert pid_alive(1) and pid_alive(os.getpid())


def test_autosave_failure_is_an_error_of_ours_and_keeps_the_last_autosave(model, tmp_path, monkeypatch):
    import errno

    from annotator.core.errors import SaveError

    saver = Autosaver(model, tmp_path / "auto" / "x")
    saver.start()
    saver.flush()
    model.paint(7, np.ones((3, 3), bool), 1)
    monkeypatch.setattr(os, "write", lambda fd, data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(SaveError, match="No space left on device"):
        saver.flush()
    monkeypatch.undo()
    assert sorted(read_project_file(saver.folder).states) == [0]
    saver.flush()
    assert sorted(read_project_file(saver.folder).states) == [0, 7]


def test_unrecoverable_folders_are_skipped(tmp_path):
    root = tmp_path / "auto"
    (root / "no-lock").mkdir(parents=True)
    (root / "bad-lock").mkdir()
    (root / "bad-lock" / LOCK_FILE).write_text("{not json")
    (root / "no-project").mkdir()
    (root / "no-project" / LOCK_FILE).write_text(json.dumps({"pid": 999999999, "closed": False}))
    assert find_recoverable(root) == [] and find_recoverable(tmp_path / "missing") == []


# --------------------------------------------------------------------------------------------- kills

PROPAGATION_KILLS = 50


def _last_saved(lines: list[str]) -> int:
    """The last frame a crash-worker child reported saved (-1: none yet)."""
    return max((int(line.split()[1]) for line in lines if line.startswith("saved ")), default=-1)




def test_sigkill_during_propagation_keeps_every_autosaved_frame(fork_server, tmp_path):
    frames, truth = moving_objects_clip(n_frames=24, hw=HW, size=12, step=1)
    model = AnnotationModel(open_video(write_frames(tmp_path / "frames", frames)))
    model.add_object("car")
    model.paint(0, truth[0] == 1, 1)
    project = tmp_path / "proj"
    save_project(model, project)
    root = tmp_path / "auto"
    job = {"job": "propagate", "project": str(project), "autosave": str(root / "run"), "chunk": 2, "delay": 0.004}
    # an uninterrupted run gives the expected label maps (same code, same process kind)
    pid, seen = fork_server.start(job)
    started = time.monotonic()
    while "finished" not in seen:
        seen.append(fork_server.next_line())
    step_seconds = (time.monotonic() - started) / len(frames)
    fork_server.kill_and_collect(pid, seen)
    expected = AnnotationModel()
    recover(root / "run", expected)
    assert all(s is FrameState.PROPAGATED for s in expected.frame_states()[1:])
    rng = np.random.default_rng(1)
    killed_mid_run, last_saved = 0, []
    for _ in range(PROPAGATION_KILLS):
        pid, seen = fork_server.start(job)
        # Each kill lands a random moment (up to three frames' time) after the child reported a random
        # frame saved (0: straight after it started). Timed by the child's own progress, not by a clock,
        # so the kills land mid-run on a loaded machine too (a clock missed the saves there once).
        after = int(rng.integers(0, len(frames) - 4))
        while after and "finished" not in seen and _last_saved(seen) < after:
            seen.append(fork_server.next_line())
        time.sleep(float(rng.uniform(0.0, 3 * step_seconds)))
        lines = fork_server.kill_and_collect(pid, seen)
        killed_mid_run += "finished" not in lines
        last_saved.append(max(_last_saved(lines), 0))
        for png in (root / "run").rglob("*.png"):  # no corrupt file anywhere
            read_mask(png)
        found = find_recoverable(root)
        assert len(found) == 1 and found[0].crashed
        reopened = AnnotationModel()
        recover(found[0], reopened)
        for i in range(1, last_saved[-1] + 1):  # every frame reported saved is there
            assert reopened.frame_state(i) is FrameState.PROPAGATED, f"frame {i} lost"
        for i in range(reopened.num_frames):  # and whatever is there is right
            if reopened.frame_state(i) is not FrameState.EMPTY:
                assert np.array_equal(reopened.labels(i), expected.labels(i)), f"frame {i} differs"
    print(f"{PROPAGATION_KILLS} kills during propagation, {killed_mid_run} before the run finished, "
          f"last frame reported saved per kill: {sorted(last_saved)}")
    assert killed_mid_run >= PROPAGATION_KILLS // 2
    assert sum(k >= 2 for k in last_saved) >= PROPAGATION_KILLS // 3  # kills landed mid-run, after saves
