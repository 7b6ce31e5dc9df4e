"""Batch propagation: a DAVIS root or a list of videos, in parallel, one broken video never stopping the rest."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.core.runs.batch import COMPLETE_MARKER, BatchJob, davis_jobs, list_jobs, run_batch
from annotator.core.errors import UsageError
from annotator.core.io.labels import read_mask_folder, write_mask
from annotator.core.runs.settings import RunSettings
from tests.synthetic import make_davis_root, moving_objects_clip, write_frames

FAST = ["--short-side", "0", "--stage", "s3", "-q"]


def test_davis_root_is_propagated_sequence_by_sequence_from_the_first_mask(tmp_path, capsys):
    root = tmp_path / "davis"
    truths = make_davis_root(root)
    out = tmp_path / "out"
    assert main(["propagate", str(root), "--out", str(out), "--jobs", "2", *FAST]) == 0
    for name, truth in truths.items():
        written = read_mask_folder(out / name)
        assert sorted(written) == list(range(5))
        np.testing.assert_array_equal(written[0], truth[0])
        # only frame 0 was a reference (the semi-supervised protocol), the rest was propagated
        assert not np.array_equal(written[4], truth[4]) or (written[4] == 1).sum() > 0
        assert (written[4] == 1).sum() > 0.5 * (truth[4] == 1).sum()
    # the same masks as one video at a time in this process
    single = tmp_path / "single"
    assert main(["propagate", str(root / "JPEGImages" / "480p" / "alpha"), "--masks",
                 str(root / "Annotations" / "480p" / "alpha" / "00000.png"), "--out", str(single), *FAST]) == 0
    batch, alone = read_mask_folder(out / "alpha"), read_mask_folder(single)
    assert all(np.array_equal(batch[t], alone[t]) for t in range(5))
    table = capsys.readouterr().out
    assert "alpha" in table and "beta" in table and "2/2 ok" in table
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["video"] for r in rows] == ["alpha", "beta", "total"]
    assert all(r["status"] == "ok" for r in rows[:2])


def test_a_broken_video_fails_alone_and_the_exit_code_says_so(tmp_path, capsys):
    root = tmp_path / "davis"
    make_davis_root(root, names=("good", "wrongsize"))
    bad = root / "Annotations" / "480p" / "wrongsize" / "00000.png"
    write_mask(bad, np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    assert main(["propagate", str(root), "--out", str(out), *FAST]) == 1
    assert len(read_mask_folder(out / "good")) == 5
    rows = {r["video"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["good"]["status"] == "ok"
    assert "mask of frame 0 is 32x32 but the video is 96x64" in rows["wrongsize"]["status"]
    assert "1 of 2 video(s) failed" in capsys.readouterr().err
    # nothing is overwritten without being asked, before any work starts
    assert main(["propagate", str(root), "--out", str(out), *FAST]) == 2


def test_a_davis_root_run_reads_only_the_first_mask(tmp_path):
    """A broken later mask (../shared/data/multi/judo has one 853 px wide) does not stop a run from frame 0."""
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",))
    write_mask(root / "Annotations" / "480p" / "alpha" / "00003.png", np.zeros((64, 95), np.uint8))
    [result] = run_batch(davis_jobs(root, tmp_path / "out"), RunSettings(short_side=None, stage="s3"))
    assert result.ok and result.frames == 5 and result.propagated == 4


def test_a_list_of_videos_with_relative_paths_and_quoting(tmp_path):
    frames, truth = moving_objects_clip(n_frames=4, hw=(64, 96), size=24, step=4)
    write_frames(tmp_path / "clips" / "my clip", frames)
    write_mask(tmp_path / "clips" / "first.png", truth[0])
    listing = tmp_path / "videos.txt"
    listing.write_text("# video masks\n'clips/my clip' clips/first.png\n\n'clips/my clip' clips/first.png  # again\n")
    jobs = list_jobs(listing, tmp_path / "out")
    assert [j.name for j in jobs] == ["my clip", "my clip-2"]
    assert jobs[0].source == tmp_path / "clips" / "my clip"
    seen = []
    results = run_batch(jobs, RunSettings(short_side=None, stage="s3"), workers=1,
                        on_frame=lambda name, i: seen.append((name, i)), on_total=lambda n: seen.append(("total", n)))
    assert seen[0] == ("total", 6) and len(seen) == 7
    assert all(r.ok and r.frames == 4 and r.propagated == 3 for r in results)
    assert len(read_mask_folder(tmp_path / "out" / "my clip-2")) == 4


def test_bad_batch_input_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(UsageError, match="cannot read the video list"):
        list_jobs(tmp_path / "missing.txt", tmp_path / "out")
    (tmp_path / "bad.txt").write_text("only-one-field\n")
    with pytest.raises(UsageError, match="bad.txt:1: expected 'VIDEO MASKS'"):
        list_jobs(tmp_path / "bad.txt", tmp_path / "out")
    (tmp_path / "davis" / "JPEGImages" / "480p").mkdir(parents=True)
    with pytest.raises(UsageError):
        davis_jobs(tmp_path / "davis", tmp_path / "out")
    job = BatchJob("x", tmp_path / "nowhere.mp4", tmp_path / "m.png", tmp_path / "out" / "x")
    [result] = run_batch([job], RunSettings(), workers=1)
    assert not result.ok and "nowhere.mp4" in result.error
    with pytest.raises(UsageError, match="--jobs"):
        run_batch([job], RunSettings(), workers=0)


def test_resume_on_this_machine_skips_the_complete_videos(tmp_path):
    """--resume is the batch's, not Ray's: the local batch skips a folder that holds its marker too."""
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",))
    out = tmp_path / "out"
    [first] = run_batch(davis_jobs(root, out), RunSettings(short_side=None, stage="s3"))
    assert first.ok and not first.resumed
    marker = out / "alpha" / COMPLETE_MARKER
    stamps = {p: p.stat().st_mtime_ns for p in (out / "alpha").iterdir()}
    assert marker in stamps
    done = []
    [again] = run_batch(davis_jobs(root, out), RunSettings(short_side=None, stage="s3"), resume=True,
                        on_total=done.append, on_done=done.append)
    assert again.resumed and again.ok and (again.frames, again.propagated) == (5, 4)
    assert done == [0, again]  # nothing left to propagate; the skipped video reported as done
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # a marker that cannot be read proves nothing: the video is run again and gets a whole one
    marker.write_text("{}")
    [redone] = run_batch(davis_jobs(root, out), RunSettings(short_side=None, stage="s3"), resume=True)
    assert not redone.resumed and redone.ok
    assert json.loads(marker.read_text())["frames"] == 5


def test_resume_replaces_no_masks_that_no_run_of_ours_left(tmp_path):
    """--resume redoes a video an interrupted run left (marker "complete": false), but a folder of masks
    with no marker is the user's: refused, untouched, unless --overwrite."""
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",))
    out = tmp_path / "out"
    settings = RunSettings(short_side=None, stage="s3")
    [first] = run_batch(davis_jobs(root, out), settings)
    marker = out / "alpha" / COMPLETE_MARKER
    marker.write_text(json.dumps({"video": "alpha", "complete": False}))  # killed before its last mask
    [redone] = run_batch(davis_jobs(root, out), settings, resume=True)
    assert redone.ok and not redone.resumed and json.loads(marker.read_text())["complete"] is True
    marker.unlink()  # masks nobody can tell from the user's own
    stamps = {p: p.stat().st_mtime_ns for p in (out / "alpha").iterdir()}
    with pytest.raises(UsageError, match="no run of annotator"):
        run_batch(davis_jobs(root, out), settings, resume=True)
    assert {p: p.stat().st_mtime_ns for p in (out / "alpha").iterdir()} == stamps
    [replaced] = run_batch(davis_jobs(root, out), settings, resume=True, overwrite=True)
    assert replaced.ok and not replaced.resumed and marker.is_file()
