"""Per-frame diagnostics: scores equal the sequence metrics, error classes, confidence, uncertainty, reports."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image

from annotator.cli import main
from annotator.core.analysis.diagnostics import (ErrorKind, GroundTruthTracker, confidence_map, error_map, frame_scores,
                                        frame_uncertainty)
from annotator.core.errors import MaskError, UsageError
from annotator.core.runs.experiments import RunRecord, axis_points, compare_runs, grid_points, parse_grid
from annotator.core.analysis.metrics import evaluate_sequence
from annotator.core.io.report import curves_png, metrics_csv_text, write_report
from tests.synthetic import make_davis_root, moving_objects_clip


def _noisy_predictions(truth: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for lab in truth:
        p = lab.copy()
        p[rng.random(p.shape) < 0.05] = 0
        p = np.roll(p, rng.integers(-3, 4), axis=1)
        out.append(p)
    return out


def test_tracker_scores_equal_evaluate_sequence():
    _, truth = moving_objects_clip(n_frames=6, hw=(64, 96), n_objects=2, size=20, step=4)
    pred = _noisy_predictions(truth)
    tracker = GroundTruthTracker(dict(enumerate(truth)))
    assert tracker.scored_frames == frozenset({1, 2, 3, 4})
    for i in (4, 0, 2, 1, 5, 3):  # any order, as results arrive
        tracker.update(i, pred[i])
    expected = evaluate_sequence(pred, truth)
    curves = tracker.curves()
    for row, obj in enumerate(expected.object_ids):
        frames, j, f = curves[obj]
        assert list(frames) == list(expected.frames)
        np.testing.assert_array_equal(j, expected.J[row])
        np.testing.assert_array_equal(f, expected.F[row])
    assert tracker.mean_jf() == pytest.approx(expected.jf)
    worst = tracker.worst_frame()
    per_frame = ((expected.J + expected.F) / 2).min(axis=0)
    assert worst == expected.frames[int(np.argmin(per_frame))]
    # a better prediction replaces the old score
    tracker.update(worst, truth[worst])
    assert min(s.j for s in tracker.scores(worst)) == 1.0


def test_frame_scores_refuse_mismatched_sizes():
    with pytest.raises(MaskError, match="frame 3"):
        frame_scores(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), [1], frame=3)


def test_error_map_classes():
    gt = np.array([[0, 1, 1, 2, 255]], np.uint8)
    pred = np.array([[1, 1, 0, 1, 1]], np.uint8)
    errors = error_map(pred, gt)
    assert list(errors[0]) == [ErrorKind.FALSE_POSITIVE, ErrorKind.CORRECT, ErrorKind.FALSE_NEGATIVE,
                               ErrorKind.WRONG_OBJECT, ErrorKind.VOID]


def test_confidence_is_low_on_the_boundary_between_two_labels():
    soft = torch.zeros(3, 4, 8)
    soft[1, :, :4] = 1.0  # object 1 on the left half of the grid
    soft[2, :, 4:] = 1.0  # object 2 on the right half
    conf = confidence_map(soft, (32, 64))
    assert conf.shape == (32, 64) and conf.dtype == np.float32
    assert conf[:, 31:33].max() < 0.2  # where they meet
    assert conf[:, :20].min() == pytest.approx(1.0) and conf[:, 44:].min() == pytest.approx(1.0)


def test_uncertainty_grows_with_doubt_and_ignores_absent_objects():
    certain = torch.zeros(2, 6, 6)
    certain[0] = 1
    certain[:, 2:4, 2:4] = torch.tensor([0.0, 1.0])[:, None, None]
    doubtful = certain * 0.6 + 0.2  # every cell 0.8 / 0.2
    assert frame_uncertainty(certain) == pytest.approx(0.0)
    assert frame_uncertainty(doubtful) > 0.3
    absent = torch.zeros(3, 6, 6)
    absent[:2] = certain
    assert frame_uncertainty(absent) == pytest.approx(0.0)  # channel 2 has no probability anywhere


def test_an_object_rightly_absent_is_not_doubtful_for_faint_probability_spread_over_the_frame():
    # the object left the frame: no cell labels it, every cell keeps a little of its probability
    gone = torch.zeros(2, 40, 60)
    gone[1] = 0.02
    gone[1, 10, 10] = 0.15  # the most object-like cell
    gone[0] = 1 - gone[1]
    assert frame_uncertainty(gone) == pytest.approx(0.15)  # the chance that cell is the object, not 1
    # a cell that nearly took the object's label is a real doubt
    gone[1, 20, 20], gone[0, 20, 20] = 0.45, 0.55
    assert frame_uncertainty(gone) == pytest.approx(0.45)
    # an object labelled somewhere is judged by its outline as before
    gone[1, 20, 20], gone[0, 20, 20] = 0.9, 0.1
    assert frame_uncertainty(gone) > 0.9  # 48 cells' worth of probability outside a one-cell mask


def test_grid_parsing_and_points():
    grid = parse_grid(["m=5,20", "tau=0.01,0.05", "radius_for_references=yes,no"])
    assert grid == {"context": [5, 20], "temperature": [0.01, 0.05], "radius_for_references": [True, False]}
    points = grid_points(grid)
    assert len(points) == 8 and points[1] == {"context": 5, "temperature": 0.01, "radius_for_references": False}
    for bad, message in ((["colour=1"], "FACTOR"), (["m=a"], "not a valid value"), (["m=1", "context=2"], "twice")):
        with pytest.raises(UsageError, match=message):
            parse_grid(bad)


def test_one_factor_at_a_time_points():
    grid = parse_grid(["m=10,20,30", "k=5,10", "flow=0.5"])
    points = axis_points(grid, {"context": 20, "topk": 10, "flow": 0.0, "temperature": 0.05})
    assert points[0] == {"context": 20, "topk": 10, "flow": 0.0}  # the reference settings first
    assert points[1:] == [{"context": 10, "topk": 10, "flow": 0.0}, {"context": 30, "topk": 10, "flow": 0.0},
                          {"context": 20, "topk": 5, "flow": 0.0}, {"context": 20, "topk": 10, "flow": 0.5}]


def test_compare_runs_on_common_frames():
    curves_a = {1: (np.array([1, 2, 3]), np.array([0.5, 0.5, 0.5]), np.array([0.5, 0.5, 0.5]))}
    curves_b = {1: (np.array([2, 3, 4]), np.array([0.7, 0.4, 1.0]), np.array([0.7, 0.4, 1.0]))}
    a = RunRecord.from_curves("a", {"topk": 10}, curves_a, n_frames=3, seconds=1.5)
    b = RunRecord.from_curves("b", {"topk": 5}, curves_b)
    frames, diff = compare_runs(a, b)
    assert list(frames) == [2, 3]
    np.testing.assert_allclose(diff, [0.2, -0.1])
    assert a.fps == pytest.approx(2.0) and a.jf == pytest.approx(0.5)


def test_report_csv_and_png(tmp_path):
    J = np.array([[0.9, 0.8, 0.7]])
    F = np.array([[0.6, 0.5, 0.4]])
    text = metrics_csv_text([1], [1, 2, 3], J, F)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["frame"] for r in rows] == ["1", "2", "3"] and float(rows[1]["J&F"]) == pytest.approx(0.65)
    csv_path, png_path = write_report(tmp_path / "rep", "seq", [1], [1, 2, 3], J, F)
    image = Image.open(png_path)
    assert image.size == (720, 360)
    pixels = np.asarray(image.convert("RGB"))
    assert (pixels != 255).any(axis=2).mean() > 0.01  # something is drawn
    blank = np.asarray(Image.open(io.BytesIO(curves_png({}))).convert("RGB"))
    assert (pixels != blank).any()  # the curves add to the empty axes


@pytest.fixture()
def davis_root(tmp_path):
    make_davis_root(tmp_path / "davis", ("alpha",), seed=1)
    return tmp_path / "davis"


def test_eval_grid_prints_an_ablation_table_and_csv(davis_root, tmp_path, capsys):
    out_csv = tmp_path / "grid.csv"
    argv = ["eval", str(davis_root), "--short-side", "0", "--stage", "s3", "-q",
            "--grid", "k=1,10", "--grid", "tau=0.05", "--csv", str(out_csv), "--report", str(tmp_path / "rep")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].split("|")[1].strip() == "topk" and "J&F" in table[0] and "frames/s" in table[0]
    assert len(table) == 4  # header, separator, two points
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["topk"] for r in rows] == ["1", "10"]
    assert all(0 <= float(r["J&F"]) <= 1 and float(r["frames/s"]) > 0 for r in rows)
    assert float(rows[0]["J&F"]) != float(rows[1]["J&F"])
    assert (tmp_path / "rep" / "topk=10_temperature=0.05" / "alpha.png").is_file()


def test_eval_grid_one_factor_at_a_time(davis_root, tmp_path):
    out_csv = tmp_path / "axes.csv"
    argv = ["eval", str(davis_root), "--short-side", "0", "--stage", "s3", "-q", "-k", "10", "--one-at-a-time",
            "--grid", "k=1,10", "--grid", "m=1,20", "--csv", str(out_csv), "--feature-cache", str(tmp_path / "fc")]
    assert main(argv) == 0
    rows = [(r["topk"], r["context"]) for r in csv.DictReader(out_csv.open())]
    assert rows == [("10", "20"), ("1", "20"), ("10", "1")]  # the reference first, then one change each
    assert any((tmp_path / "fc").iterdir())  # the features went to the cache


def test_eval_report_writes_csv_and_png_per_sequence(davis_root, tmp_path, capsys):
    assert main(["eval", str(davis_root), "--short-side", "0", "--stage", "s3", "-q", "--report", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "| alpha" in out and "| mean" in out  # the usual table is still printed
    rows = list(csv.DictReader((tmp_path / "r" / "alpha.csv").open()))
    assert [int(r["frame"]) for r in rows] == [1, 2, 3]
    assert (tmp_path / "r" / "alpha.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_grid_bad_factor_is_a_one_line_error(davis_root, capsys):
    assert main(["eval", str(davis_root), "-q", "--grid", "speed=1,2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("annotator: error: --grid 'speed=1,2'") and "\n" not in err.strip()


def test_correction_j_compares_a_result_with_the_painted_correction():
    from annotator.core.analysis.diagnostics import correction_j
    from annotator.core.engine.propagation import labels_to_grid

    truth = np.zeros((64, 64), np.uint8)
    truth[8:40, 8:40] = 1
    truth[40:60, 40:60] = 2
    soft = labels_to_grid(truth, (0, 1, 2), (8, 8))
    assert correction_j(soft, (0, 1, 2), truth) == 1.0
    shifted = np.zeros_like(truth)
    shifted[8:40, 24:56] = 1  # object 1 half off
    shifted[40:60, 40:60] = 2
    j = correction_j(labels_to_grid(shifted, (0, 1, 2), (8, 8)), (0, 1, 2), truth)
    assert 0.2 < j < 0.5  # the worst object counts
    # an object the person added in the correction is not held against the result
    added = truth.copy()
    added[0:8, 56:64] = 3
    assert correction_j(soft, (0, 1, 2), added) == 1.0


def test_kept_soft_labels_are_bounded_per_frame_whatever_the_label_grid():
    from annotator.core.analysis.diagnostics import kept_soft

    small = torch.rand(2, 60, 107)
    kept = kept_soft(small)
    assert kept.dtype == torch.float16 and kept.shape == small.shape  # the feature grid is kept whole
    fine = torch.zeros(2, 480, 856)
    fine[1, :, :428] = 1.0  # the left half is the object
    fine[0] = 1 - fine[1]
    kept = kept_soft(fine, max_cells=26_000)
    assert kept.shape[1] * kept.shape[2] <= 26_000
    assert kept.shape == (2, 120, 214)  # area-averaged by 4, the smallest whole factor that fits
    assert float(kept[1, :, :107].min()) == 1.0 and float(kept[1, :, 107:].max()) == 0.0
