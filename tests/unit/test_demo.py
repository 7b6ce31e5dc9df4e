"""``annotator demo`` and the bundled sample clip's ground truth: the README's first command.

The demo propagates the bundled clip from its first mask and scores it against the true label map
of every frame, which the clip's generator drew. Its score must stay above a floor that it really
reaches and that a broken propagation does not.
"""

from __future__ import annotations

import importlib.util
import types
from collections.abc import Iterator

import numpy as np
import pytest

from annotator.cli import main
from annotator.core.io.labels import read_mask_folder
from annotator.core.analysis.metrics import evaluate_sequence
from annotator.core.runs.sample import SAMPLE_GROUNDTRUTH, SAMPLE_MASKS, SAMPLE_VIDEO
from annotator.core.video import open_video
from tests.conftest import REPO

DEMO_JF_FLOOR = 0.92
"""Measured with the defaults on 2 CPU cores: J 0.896, F 0.978, J&F 0.937 (session 48: island pruning on the label
map as drawn, background bias -0.1; with the bias -0.2 of session 47 J 0.883, F 0.958, J&F 0.921; radius 20 since
session 39, 0.937 at 16; label detail 8 with island pruning,
reference flow 0.75; 0.935 without the reference flow; without the bias 0.945: this clip's compact shapes are masks the bias grows past their
outline, as DAVIS hike; one label per cell gave 0.964; the box loses from frame 1 on: a block of sub-cells copied from a matching cell
places the edge where that cell had it, a few pixels off where the texture does not tell). A bit lower, so that
real regressions fail it: masks one frame late give 0.70, the first mask held still 0.07 (checked below)."""


def _demo_row(stdout: str) -> dict[str, float]:
    """J, F and J&F of the sample's row of the printed table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "sample":
            return {"J": float(cells[1]), "F": float(cells[2]), "J&F": float(cells[3])}
    raise AssertionError(f"no row for the sample in:\n{stdout}")


def _generator():
    """``resources/make_sample_clip.py`` as a module (it is a script, outside the package)."""
    spec = importlib.util.spec_from_file_location("make_sample_clip", REPO / "resources" / "make_sample_clip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundled_ground_truth_is_what_the_generator_draws(tmp_path):
    truth = read_mask_folder(SAMPLE_GROUNDTRUTH)
    with open_video(SAMPLE_VIDEO) as video:
        assert sorted(truth) == list(range(len(video)))
        assert all(labels.shape == tuple(video.hw) for labels in truth.values())
        bundled_frames = [video.frame(i).astype(np.int16) for i in (0, len(video) - 1)]
    first = read_mask_folder(SAMPLE_MASKS)
    assert list(first) == [0] and np.array_equal(first[0], truth[0])
    assert all(set(np.unique(labels)) == {0, 1, 2} for labels in truth.values())  # both shapes on every frame

    _generator().make_clip(tmp_path)  # regenerated: the same label maps, the same pictures
    again = read_mask_folder(tmp_path / "groundtruth")
    assert sorted(again) == sorted(truth) and all(np.array_equal(again[i], truth[i]) for i in truth)
    assert np.array_equal(read_mask_folder(tmp_path / "masks")[0], truth[0])
    with open_video(tmp_path / "sample.mp4") as video:
        regenerated = [video.frame(i).astype(np.int16) for i in (0, len(video) - 1)]
    for a, b in zip(bundled_frames, regenerated):  # same encoder: identical; another OpenCV: close
        assert np.abs(a - b).mean() < 2.0


@pytest.mark.slow
def test_demo_writes_the_masks_and_reaches_its_floor(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    row = _demo_row(printed)
    assert row["J&F"] >= DEMO_JF_FLOOR, printed
    assert str(out) in printed and "frames/s" in printed
    truth = read_mask_folder(SAMPLE_GROUNDTRUTH)
    written = read_mask_folder(out)
    assert sorted(written) == sorted(truth) and np.array_equal(written[0], truth[0])
    # the printed scores are those of the masks written
    scores = evaluate_sequence(written, truth)
    assert scores.jf == pytest.approx(row["J&F"], abs=1e-3) and scores.j_mean == pytest.approx(row["J"], abs=1e-3)

    # a second run into the same folder refuses before any work, unless asked to overwrite
    assert main(["demo", "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err


@pytest.mark.parametrize("broken", ["first mask held still", "one frame late"])
def test_a_broken_propagation_falls_below_the_floor(broken, tmp_path, capsys, monkeypatch):
    """The demo's code path with the engine replaced by a broken one: the floor catches it."""
    truth = read_mask_folder(SAMPLE_GROUNDTRUTH)

    def broken_propagation(store, references, n_frames, params, **_kwargs) -> Iterator[types.SimpleNamespace]:
        for t in range(1, n_frames):
            labels = references[0] if broken == "first mask held still" else truth[t - 1]
            yield types.SimpleNamespace(index=t, labels=labels)

    monkeypatch.setattr("annotator.core.runs.runner.propagate_video", broken_propagation)
    assert main(["demo", "--out", str(tmp_path / "demo"), "-q"]) == 0
    assert _demo_row(capsys.readouterr().out)["J&F"] < DEMO_JF_FLOOR


def test_demo_without_out_writes_to_a_new_folder_it_names(tmp_path, capsys, monkeypatch):
    """Each run gets a new folder under the temp dir (never a user's files); a perfect engine scores 1."""
    truth = read_mask_folder(SAMPLE_GROUNDTRUTH)
    monkeypatch.setattr("annotator.core.runs.runner.propagate_video",
                        lambda store, references, n_frames, params, **_kw:
                        (types.SimpleNamespace(index=t, labels=truth[t]) for t in range(1, n_frames)))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    for run in (1, 2):
        assert main(["demo", "-q"]) == 0
        printed = capsys.readouterr().out
        folders = sorted(tmp_path.glob("annotator-demo-*"), key=lambda f: str(f) not in printed)
        assert len(folders) == run and str(folders[0]) in printed
        assert _demo_row(printed) == {"J": 1.0, "F": 1.0, "J&F": 1.0}
        assert sorted(read_mask_folder(folders[0])) == sorted(truth)
