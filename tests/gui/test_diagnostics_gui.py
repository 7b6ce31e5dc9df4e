"""Diagnostics in the main window: ground-truth plot, clicks that seek, run list, confidence and error layers."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QLabel

from annotator.core.analysis.diagnostics import ErrorKind
from annotator.core.analysis.metrics import evaluate_sequence
from annotator.gui.diagnostic_overlay import ERROR_COLORS, DiagnosticMode
from gui_helpers import run_propagation, square_clip

pytestmark = pytest.mark.gui


def two_objects_clip(n: int = 5, hw=(64, 96), seed: int = 0):
    """A red and a blue textured square side by side, touching, moving right together."""
    rng = np.random.default_rng(seed)
    h, w = hw
    frames = np.empty((n, h, w, 3), np.uint8)
    truth = np.zeros((n, h, w), np.uint8)
    bg = np.clip(rng.normal(110, 10, (h, w, 3)), 0, 255).astype(np.uint8)
    for t in range(n):
        f = bg.copy()
        y0, x0 = 16, 12 + 3 * t
        f[y0:y0 + 32, x0:x0 + 24] = np.clip(rng.normal((210, 40, 40), 8, (32, 24, 3)), 0, 255)
        f[y0:y0 + 32, x0 + 24:x0 + 48] = np.clip(rng.normal((40, 60, 220), 8, (32, 24, 3)), 0, 255)
        frames[t] = f
        truth[t, y0:y0 + 32, x0:x0 + 24] = 1
        truth[t, y0:y0 + 32, x0 + 24:x0 + 48] = 2
    return frames, truth


def _settle(qtbot, window) -> None:
    """Let the debounced redraw of the diagnostics run."""
    d = window.diagnostics
    qtbot.waitUntil(lambda: not d._refresh.isActive() and not d._rescore.isActive(), timeout=3000)


def test_ground_truth_fills_the_plot_with_the_core_metrics(qtbot, make_window):
    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    d.set_ground_truth(dict(enumerate(truth)))
    assert not d.gt_panel.curves  # nothing propagated yet: nothing scored
    run_propagation(qtbot, w)
    _settle(qtbot, w)
    expected = evaluate_sequence([np.asarray(w.model.labels(i)) for i in range(6)], list(truth))
    assert expected.frames == (1, 2, 3, 4)  # DAVIS: first and last frame not scored
    for row, obj in enumerate((1, 2)):
        for kind, values in (("J", expected.J[row]), ("F", expected.F[row])):
            x, y = d.gt_panel.curves[(obj, kind)].getData()
            assert list(x) == [1, 2, 3, 4]
            np.testing.assert_allclose(y, values)
    assert f"{expected.jf:.3f}" in d.gt_panel.plot.plotItem.titleLabel.text
    # painting the ground truth onto a frame rescores it to a perfect J
    m = w.model
    m.history.push("Fix", [m.set_labels(2, truth[2], m.frame_state(2))])
    _settle(qtbot, w)
    _, y = d.gt_panel.curves[(1, "J")].getData()
    assert y[1] == 1.0


def test_clicking_a_plot_point_makes_its_frame_current(qtbot, make_window):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    d.set_ground_truth(dict(enumerate(truth)))
    d.docks["groundtruth"].show()
    d.docks["groundtruth"].raise_()
    run_propagation(qtbot, w)
    _settle(qtbot, w)
    w.model.set_current_frame(0)
    plot = d.gt_panel.plot
    qtbot.waitUntil(lambda: plot.isVisible() and plot.width() > 50, timeout=3000)
    plot.plotItem.vb.autoRange()
    x, y = d.gt_panel.curves[(1, "J")].getData()
    target = 3
    scene_pos = plot.plotItem.vb.mapViewToScene(QPointF(float(x[target - 1]), float(y[target - 1])))
    pos = plot.mapFromScene(scene_pos)
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: w.model.current_frame == target, timeout=3000)
    # and the worst-frame key goes to the frame with the lowest J&F
    w.model.set_current_frame(0)
    d.actions["worst_frame"].trigger()
    assert w.model.current_frame == d.tracker.worst_frame()


def test_the_run_list_keeps_two_runs_with_different_factors(qtbot, make_window):
    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    d.set_ground_truth(dict(enumerate(truth)))
    run_propagation(qtbot, w)
    panel = d.factors_panel
    panel.fields.topk.setValue(1)  # live: the settings change at once
    panel.fields.temperature.setValue(1.0)
    panel.fields.radius.setValue(1.0)
    assert w.propagation.settings.params.topk == 1
    panel.fields.context_stride.setValue(2)
    panel.fields.reference_stride.setValue(2)
    assert (w.propagation.settings.params.context_stride, w.propagation.settings.params.reference_stride) == (2, 2)
    with qtbot.waitSignal(w.propagation.finished, timeout=20_000):
        panel.rerun.click()
    _settle(qtbot, w)
    runs = d.runs
    assert len(runs) == 2 and d.runs_panel.table.rowCount() == 2
    assert runs[0].settings["topk"] == 10 and runs[1].settings["topk"] == 1
    assert runs[0].frames == runs[1].frames == (1, 2, 3, 4)
    # the second record holds its own scores, not a copy of the first's: its per-frame curves differ
    # (their means may nearly tie on this toy clip: 0.90232 and 0.90224 in float32 matmuls)
    assert not (np.allclose(runs[0].J, runs[1].J) and np.allclose(runs[0].F, runs[1].F))
    assert all(r.fps > 0 for r in runs)
    d.runs_panel.select([0, 1])
    assert "better on" in d.runs_panel.summary.text()
    assert len(d.runs_panel._items) == 3  # two curves and the difference bars


def test_confidence_is_low_where_two_objects_meet(qtbot, make_window):
    frames, truth = two_objects_clip(n=5)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    run_propagation(qtbot, w)
    frame = 3
    w.model.set_current_frame(frame)
    d.set_mode(DiagnosticMode.CONFIDENCE)
    conf = d.confidence(frame)
    assert conf.shape == (64, 96)
    seam_x = 12 + 3 * frame + 24  # where object 1 ends and object 2 starts
    seam = conf[24:40, seam_x - 1:seam_x + 1]
    inside = np.concatenate([conf[24:40, seam_x - 14:seam_x - 10].ravel(), conf[24:40, seam_x + 10:seam_x + 14].ravel()])
    assert seam.mean() < 0.5 < inside.mean()
    alpha = d.layer.rgba[..., 3]
    assert alpha[24:40, seam_x - 1:seam_x + 1].mean() > alpha[24:40, seam_x - 14:seam_x - 10].mean() + 50
    # the timeline's uncertainty curve has a value for every propagated frame, none for the reference
    _settle(qtbot, w)
    values = d.strip.values
    assert np.isnan(values[0]) and np.isfinite(values[1:]).all()


def test_error_layer_colours_false_positives_and_wrong_objects(qtbot, make_window):
    frames, truth = two_objects_clip(n=4)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    d.set_ground_truth(dict(enumerate(truth)))
    m = w.model
    wrong = truth[1].copy()
    wrong[0:4, 0:4] = 1  # object where the truth has background
    wrong[truth[1] == 2] = 1  # object 2 labelled as object 1
    m.set_current_frame(1)
    m.history.push("Paint", [m.set_labels(1, wrong, m.frame_state(1))])
    d.set_mode(DiagnosticMode.ERRORS)
    rgba = d.layer.rgba
    assert tuple(rgba[1, 1]) == ERROR_COLORS[ErrorKind.FALSE_POSITIVE]
    ys, xs = np.nonzero(truth[1] == 2)
    assert tuple(rgba[ys[0], xs[0]]) == ERROR_COLORS[ErrorKind.WRONG_OBJECT]
    assert rgba[truth[1] == 1][:, 3].max() == 0  # correct pixels stay clear
    d.set_mode(DiagnosticMode.SPLIT)
    assert d.layer.rgba[:, -1, 3].min() == 255 and d.layer.rgba[:, 0, 3].max() == 0


def test_next_frame_to_correct_goes_to_an_uncertain_propagated_frame(qtbot, make_window, tmp_path):
    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d = w.diagnostics
    d.set_ground_truth(dict(enumerate(truth)))
    run_propagation(qtbot, w)
    w.model.set_current_frame(0)
    d.target = 1.0  # every propagated frame misses a perfect J: the first one is suggested
    d.actions["suggest_frame"].trigger()
    assert w.model.current_frame == 1
    d.target = 0.0  # none misses it: the onset of the most uncertain stretch
    d.go_to_suggestion()
    assert w.model.current_frame in range(1, 6)
    csv_path, png_path = d.export_report(tmp_path)
    assert csv_path.read_text().splitlines()[0] == "frame,object,J,F,J&F"
    assert png_path.read_bytes()[:4] == b"\x89PNG"


def test_a_suggested_frame_that_is_right_is_accepted_as_it_is_and_the_suggestion_learns_it(qtbot, make_window):
    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d, m = w.diagnostics, w.model
    run_propagation(qtbot, w)
    d.target = 1.0  # every propagated frame misses a perfect J: the first one is suggested
    d.go_to_suggestion()
    frame, u = m.current_frame, d.uncertainty[m.current_frame]
    assert frame == 1 and "accept it as it is (R)" in w.statusBar().currentMessage()
    labels = np.asarray(m.labels(frame)).copy()
    w.actions_by_name["mark_reference"].trigger()  # R: the person finds it right
    assert m.is_reference(frame) and np.array_equal(np.asarray(m.labels(frame)), labels)
    assert frame not in d.uncertainty and d.suggestion() != frame
    run_propagation(qtbot, w)  # from the accepted frame; the acceptance is learnt when the next run starts
    # kept as it was: its J met the person's target (a bound), not a J of 1 (which would tell the suggestion
    # that such uncertainty never means an error)
    assert d.calibration.bounds == [(u, d.target)] and d.calibration.pairs == []
    # a frame made a reference and then painted over is a correction: what it showed is compared
    d.go_to_suggestion()
    other, u_other = m.current_frame, d.uncertainty[m.current_frame]
    w.actions_by_name["mark_reference"].trigger()
    m.history.push("Correct", [m.paint(other, np.ones(m.hw, bool), 1)])  # all of it object 1: far off
    run_propagation(qtbot, w)
    assert [pair[0] for pair in d.calibration.pairs] == [u_other] and d.calibration.pairs[0][1] < 0.6
    assert len(d.calibration.bounds) == 1


def test_the_suggestion_says_when_no_frame_is_estimated_below_the_persons_target(qtbot, make_window, qsettings,
                                                                                 monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    from annotator.core.errors import UsageError

    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d, m = w.diagnostics, w.model
    run_propagation(qtbot, w)
    estimates = {f: d.calibration.estimate_j(u) for f, u in d.uncertainty.items()}
    low, high = min(estimates.values()), max(estimates.values())
    assert high < 0.99  # the clip is not perfect, so a strict target finds frames below it
    d.set_target(0.99)
    d.go_to_suggestion()
    assert "accept it as it is (R)" in w.statusBar().currentMessage()
    assert "you may be done" not in w.statusBar().currentMessage()
    # a target below every estimate: the person is told so, and still shown the least certain frame
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (round(low, 2) - 0.05, True))
    d.actions["suggest_target"].trigger()  # Diagnostics > Quality target…
    assert d.target == pytest.approx(round(low, 2) - 0.05)
    d.go_to_suggestion()
    message = w.statusBar().currentMessage()
    assert "No frame is estimated below your target" in message and "you may be done" in message
    assert "not yet checked against your corrections" in message  # nothing learnt from this video yet
    d.calibration.add(0.01, 0.99)  # one correction that found the estimate right
    d.go_to_suggestion()
    assert "you may be done" in w.statusBar().currentMessage()
    assert "not yet checked" not in w.statusBar().currentMessage()
    assert f"frame {m.current_frame} " in message and m.current_frame in d.uncertainty
    assert f"J {d.target:.2f}" in d.next_button.toolTip()
    with pytest.raises(UsageError, match="quality target"):
        d.set_target(1.0)
    # the target is the person's standard: a new window starts with it
    w2 = make_window(frames, {0: truth[0]})
    assert w2.diagnostics.target == pytest.approx(d.target)
    qsettings.setValue("suggestion/target", "not a number")
    w3 = make_window(frames, {0: truth[0]})
    assert w3.diagnostics.target == pytest.approx(0.9)


def test_a_correction_teaches_the_suggestion_how_far_to_trust_the_uncertainty(qtbot, make_window):
    from annotator.core.model.annotation import FrameState
    from annotator.core.analysis.diagnostics import correction_j
    from annotator.gui.opening import Opened
    from tests.fakes import ArrayVideo

    frames, truth = two_objects_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    d, m = w.diagnostics, w.model
    run_propagation(qtbot, w)
    assert len(d.calibration) == 0
    soft, ids, u = d.soft[3], d._label_ids[3], d.uncertainty[3]
    wrong = truth[3].copy()
    wrong[wrong == 2] = 1  # the person says: all of it is object 1
    m.history.push("Correct", [m.set_labels(3, wrong, FrameState.REFERENCE)])
    assert 3 not in d.uncertainty  # a person's frame is never suggested
    m.set_current_frame(3)
    run_propagation(qtbot, w)  # the correction is finished when the next run starts
    assert d.calibration.pairs == [(u, correction_j(soft, ids, wrong))]
    assert d.calibration.pairs[0][1] < 0.6  # the propagation had object 2 where the person says 1
    # a video change forgets what was learnt (it was about that video)
    w.files.set_opened(Opened(ArrayVideo(frames), {0: truth[0]}))
    assert len(d.calibration) == 0


def test_runs_tab_headers_fit_a_narrow_dock_and_the_placeholder_goes_once_runs_are_listed(qtbot):
    from annotator.core.runs.experiments import RunRecord
    from annotator.gui.runs_panel import RunsPanel

    panel = RunsPanel()
    qtbot.addWidget(panel)
    panel.resize(260, 500)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.summary.text().startswith("Runs appear here")
    run = RunRecord("run 1", {"backbone": "lite0", "radius": 12}, (1,), (1, 2), np.full((1, 2), 0.8),
                    np.full((1, 2), 0.7), 2, 1.0)
    panel.set_runs([run])
    assert not panel.summary.text().startswith("Runs appear here") and "select one" in panel.summary.text()
    header = panel.table.horizontalHeader()
    viewport = panel.table.viewport().width()
    sizes = [header.sectionSize(i) for i in range(4)]
    assert sum(sizes) <= viewport, sizes  # no header scrolled out of view ("etting")
    assert sizes[1] >= header.fontMetrics().horizontalAdvance("settings")


def test_the_empty_ground_truth_plot_shows_the_videos_frames_not_a_scaled_axis(make_window):
    frames, _ = square_clip(n=6)
    w = make_window(frames)
    panel = w.diagnostics.gt_panel
    (x0, x1), _ = panel.plot.viewRange()
    assert -0.5 < x0 <= 0 and 5 <= x1 < 5.5  # frames 0..5, not -0.5..0.5 shown as -500..500
    assert "x0.001" not in panel.plot.getAxis("bottom").labelString()


def test_the_uncertainty_label_and_button_sit_beside_the_curve_not_in_its_frames(make_window, qtbot):
    from annotator.gui.diagnostic_overlay import UNCERTAINTY_LABEL, UncertaintyStrip

    strip = UncertaintyStrip()
    qtbot.addWidget(strip)
    strip.resize(300, 22)
    strip.set_values(np.ones(10))  # the highest curve: it fills the strip's whole height
    image = strip.grab().toImage()
    orange = {x for x in range(300) for y in range(22)
              if image.pixelColor(x, y).red() > 200 and image.pixelColor(x, y).blue() < 100}
    assert min(orange) <= 16 and max(orange) >= 283  # from the first frame's middle to the last's
    assert strip.frame_at(0) == 0 and strip.frame_at(299) == 9  # clicks reach every frame
    # in the window, the name and the button are right of the curve, in the legend's column
    frames, _ = square_clip(n=6)
    w = make_window(frames)
    d = w.diagnostics
    label = next(lb for lb in w.timeline.findChildren(QLabel) if lb.text() == UNCERTAINTY_LABEL)
    right = d.strip.mapTo(w, QPoint(d.strip.width(), 0)).x()
    for widget in (label, d.next_button):
        assert widget.isVisible() and widget.mapTo(w, QPoint(0, 0)).x() >= right


def test_the_confidence_zero_line_is_the_drawn_boundary_under_a_background_bias(qtbot, make_window):
    """The kept soft labels carry the run's background bias, so their argmax is the mask on screen."""
    from dataclasses import replace

    import torch.nn.functional as F

    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    s = w.propagation.settings
    w.propagation.set_settings(replace(s, params=replace(s.params, background_bias=-0.5, islands=False)))
    run_propagation(qtbot, w)
    d = w.diagnostics
    frame = 4
    labels = np.asarray(w.model.labels(frame))
    ids = np.asarray(d._label_ids[frame])
    soft = F.interpolate(d.soft[frame][None].float(), size=labels.shape, mode="bilinear", align_corners=False)[0]
    kept = ids[soft.max(0).indices.numpy()]
    unbiased = soft.clone()
    unbiased[0] += 0.5  # the soft labels as propagated, before the decision's bias
    plain = ids[unbiased.max(0).indices.numpy()]
    assert (kept != labels).sum() <= 2  # float16 ties at most
    assert (plain != labels).sum() > 10  # a bias this large moves the boundary: the test can tell
