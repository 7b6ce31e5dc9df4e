"""Propagation from the GUI: streamed into the model, cancellable at once, re-propagation after a fix."""

from __future__ import annotations


import numpy as np
import pytest

from annotator.core.model.annotation import FrameState
from annotator.core.errors import UsageError
from gui_helpers import run_propagation, run_propagation_timed, square_clip
from tests.fakes import ColourBackbone

pytestmark = pytest.mark.gui


def _iou(a, b) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_propagation_fills_the_following_frames_and_progress_advances(qtbot, make_window):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    progress, streamed = [], []
    w.propagation.progress.connect(lambda done, total, fps, left: progress.append((done, total)))
    # each result is in the model when its signal arrives: the view fills in frame by frame
    w.propagation.frame_done.connect(lambda i: streamed.append((i, w.model.frame_state(i))))
    applied, cancelled = run_propagation(qtbot, w)
    assert (applied, cancelled) == (5, False)
    assert progress == [(k, 5) for k in range(1, 6)]
    assert streamed == [(i, FrameState.PROPAGATED) for i in range(1, 6)]
    for t in range(1, 6):
        assert w.model.frame_state(t) is FrameState.PROPAGATED
    # the fake's colour features carry no layout inside a cell, so a block of sub-cells (label detail,
    # the default) can land mirrored at the square's edge: IoU 0.58-0.81 by frame (0.72-0.81 with one
    # label per cell); the first mask held still would score 0.67, 0.43, 0.25, 0.11, 0
    ious = [_iou(w.model.labels(t) == 1, truth[t] == 1) for t in range(1, 6)]
    assert min(ious) > 0.5 and np.mean(ious) > 0.6, ious
    assert w.model.current_frame == 5  # the view followed the run
    assert w.model.frame_state(0) is FrameState.REFERENCE
    assert not w.status.progress.isVisible()
    # the run is one undo step
    assert w.model.history.undo_name() == "Propagate forward"
    w.model.history.undo()
    assert all(w.model.frame_state(t) is FrameState.EMPTY for t in range(1, 6))


def test_backward_propagation_and_no_start_without_a_reference(qtbot, make_window):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {5: truth[5]})
    with pytest.raises(UsageError, match="not a reference"):
        w.propagation.start(1)
    w.model.set_current_frame(5)
    applied, _ = run_propagation(qtbot, w, direction=-1)
    assert applied == 5
    assert _iou(w.model.labels(0) == 1, truth[0] == 1) > 0.5


def test_cancel_stops_within_one_frame_and_puts_the_frames_back(qtbot, make_window):
    frames, truth = square_clip(n=16, step=2)
    backbone = ColourBackbone(delay_s=0.05)
    w = make_window(frames, {0: truth[0]}, backbone=backbone)
    shown = []
    w.propagation.frame_done.connect(lambda i: (shown.append((i, w.model.frame_state(i))),
                                                w.propagation.cancel() if i == 2 else None))
    applied, cancelled = run_propagation(qtbot, w)
    assert cancelled
    # frames 1 and 2 were shown; results computed after the cancel are dropped
    assert shown == [(1, FrameState.PROPAGATED), (2, FrameState.PROPAGATED)]
    assert applied == 0  # and the run is put back: the model is as before it, with no undo step
    assert [i for i, s in enumerate(w.model.frame_states()) if s is not FrameState.EMPTY] == [0]
    assert not w.model.history.can_undo
    assert backbone.frames_seen <= 8  # at most one more feature batch after the cancel


def test_one_way_correction_then_repropagation_changes_only_frames_up_to_the_next_reference(qtbot, make_window):
    """With "both ways" off, P goes forward from the correction to the next reference only."""
    from dataclasses import replace

    frames, truth = square_clip(n=10, step=3)
    ref8 = truth[8].copy()
    w = make_window(frames, {0: truth[0], 8: ref8})
    settings = w.propagation.settings
    w.propagation.set_settings(replace(settings, params=replace(settings.params, both_ways=False)))
    m = w.model
    applied, _ = run_propagation(qtbot, w)
    assert applied == 7  # frames 1..7: stops at the reference frame 8
    assert m.frame_state(9) is FrameState.EMPTY
    store = w.propagation.store_for_current_video()
    computed_after_first = store.computed
    before = {i: np.array(m.labels(i)) for i in range(10)}
    # a correction on frame 3: paint a blob of object 1 that is not in the propagated map
    m.set_current_frame(3)
    m.history.push("Brush", [m.paint(3, np.ones((16, 16), bool), 1, origin=(44, 72))])
    assert m.frame_state(3) is FrameState.REFERENCE
    computed_at_first_frame = []
    w.propagation.frame_done.connect(
        lambda i: computed_at_first_frame.append(store.computed) if not computed_at_first_frame else None)
    applied, _ = run_propagation(qtbot, w)
    assert applied == 4  # frames 4..7
    assert computed_at_first_frame == [computed_after_first]  # cached features: the first frame needs no backbone
    assert store.computed == computed_after_first  # no frame went through the backbone again
    for i in (0, 1, 2, 8, 9):
        np.testing.assert_array_equal(m.labels(i), before[i])
    np.testing.assert_array_equal(m.labels(8), ref8)  # the next reference is never overwritten
    assert any(not np.array_equal(m.labels(i), before[i]) for i in range(4, 8))


def test_go_on_propagates_through_references_without_overwriting_them(qtbot, make_window):
    frames, truth = square_clip(n=8)
    ref4 = truth[4].copy()
    w = make_window(frames, {0: truth[0], 4: ref4})
    applied, _ = run_propagation(qtbot, w, go_on=True)
    assert applied == 6
    np.testing.assert_array_equal(w.model.labels(4), ref4)
    assert w.model.frame_state(7) is FrameState.PROPAGATED


def test_painting_during_a_run_is_never_overwritten(qtbot, make_window):
    frames, truth = square_clip(n=10, step=2)
    w = make_window(frames, {0: truth[0]}, backbone=ColourBackbone(delay_s=0.03))
    m = w.model
    painted = {}

    def paint_frame_7(i: int) -> None:
        if i == 1:
            w.model.history.push("Brush", [m.paint(7, np.ones((4, 4), bool), 1, origin=(0, 0))])
            painted[7] = np.array(m.labels(7))

    w.propagation.frame_done.connect(paint_frame_7)
    run_propagation(qtbot, w, go_on=False)
    np.testing.assert_array_equal(m.labels(7), painted[7])
    assert m.frame_state(7) is FrameState.REFERENCE


def test_event_loop_stays_responsive_during_propagation(qtbot, make_window):
    frames, truth = square_clip(n=24, hw=(96, 128), step=2)
    w = make_window(frames, {0: truth[0]}, backbone=ColourBackbone(delay_s=0.02))
    applied, _, stamps = run_propagation_timed(qtbot, w)
    assert applied == 23
    gaps = np.sort(np.diff(stamps))
    assert len(stamps) > 20  # the run on the GUI thread would leave no stamps at all (tried)
    # one pause is tolerated: a CI run once saw a single 150 ms gap, not reproduced here in 15 runs
    # (idle, loaded, cold numba cache); full collections, one possible cause, now wait for the run's
    # end (gui_thread_gc). Work on the GUI thread would show as a gap per frame or batch
    assert gaps[-2] < 0.100, f"GUI event loop blocked for {gaps[-2] * 1000:.0f} ms"
    assert gaps[-1] < 0.400, f"GUI event loop blocked for {gaps[-1] * 1000:.0f} ms"


def test_factors_that_read_the_frames_run_from_the_gui(qtbot, make_window):
    from dataclasses import replace

    frames, truth = square_clip(n=4)
    w = make_window(frames, {0: truth[0]})
    settings = w.propagation.settings
    w.propagation.set_settings(replace(settings, params=replace(settings.params, upsample="guided", flow=0.5)))
    errors = []
    w.propagation.failed.connect(errors.append)
    applied, cancelled = run_propagation(qtbot, w)
    assert errors == [] and (applied, cancelled) == (3, False)
    assert all(w.model.frame_state(t) is FrameState.PROPAGATED for t in range(1, 4))


def test_a_run_that_fails_reports_it_and_leaves_the_window_idle(qtbot, make_window):
    from annotator.core.errors import BackboneError

    class BrokenBackbone(ColourBackbone):
        def __call__(self, frames):
            raise BackboneError("backbone exploded on frame batch")

    frames, truth = square_clip(n=5)
    w = make_window(frames, {0: truth[0]}, backbone=BrokenBackbone())
    errors = []
    w.propagation.failed.connect(errors.append)
    applied, cancelled = run_propagation(qtbot, w)  # returns: the error box does not block the loop
    assert (applied, cancelled) == (0, False)
    assert errors == ["backbone exploded on frame batch"]
    assert not w.propagation.running and not w.status.progress.isVisible()
    assert w.error_box is not None and w.error_box.isVisible()
    assert "Propagation failed: backbone exploded" in w.error_box.text()
    assert all(w.model.frame_state(t) is not FrameState.PROPAGATED for t in range(1, 5))
    w.error_box.close()
    # the window works again: a good backbone propagates the same clip
    w.propagation._factory = lambda _s: ColourBackbone()
    w.propagation._backbones.clear()
    w.propagation._stores.clear()
    assert run_propagation(qtbot, w) == (4, False)


def test_p_after_esc_runs_again_and_on_a_propagated_frame_offers_to_go_on_from_it(qtbot, make_window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    frames, truth = square_clip(n=10, step=2)
    w = make_window(frames, {0: truth[0]})
    w.propagation.frame_done.connect(lambda i: w.propagation.cancel() if i == 3 else None)
    applied, cancelled = run_propagation(qtbot, w)
    # Esc puts the frames back and the view back on the frame where P was pressed: P runs again at once
    assert cancelled and w.model.current_frame == 0 and w.model.frame_state(3) is FrameState.EMPTY
    w.propagation.frame_done.disconnect()
    with qtbot.waitSignal(w.propagation.finished, timeout=20_000):
        w.actions_by_name["propagate_forward"].trigger()
    assert all(w.model.frame_state(i) is FrameState.PROPAGATED for i in range(1, 10))
    # P on a propagated frame (here 3) offers to accept it as a reference and go on from it
    w.model.set_current_frame(3)
    errors, asked = [], []
    monkeypatch.setattr(QMessageBox, "open", lambda box: errors.append(box.text()))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(w.propagation.finished, timeout=20_000):
        w.actions_by_name["propagate_forward"].trigger()
    assert errors == [] and len(asked) == 1 and "Frame 3" in asked[0]
    assert w.model.is_reference(3)
    assert all(w.model.frame_state(i) is FrameState.PROPAGATED for i in range(4, 10))


def test_an_accepted_frame_shows_its_grown_masks_and_hands_on_the_ones_before_the_grow(qtbot, make_window,
                                                                                         monkeypatch):
    from dataclasses import replace

    import annotator.core.engine.upsampling as upsampling
    import annotator.gui.propagation as controller

    def grow(labels, probs, frame, label_ids, **_):  # a stand-in for the colour cut: one column more
        out = labels.copy()
        right = np.zeros_like(labels, bool)
        right[:, 1:] = (labels[:, :-1] == 1) & (labels[:, 1:] == 0)
        out[right] = 1
        return out

    monkeypatch.setattr(upsampling, "grow_by_colour", grow)
    handed: list[dict] = []
    real = controller.propagate_span

    def spy(store, references, *args, **kwargs):
        handed.append({i: np.array(lab) for i, lab in references.items()})
        return real(store, references, *args, **kwargs)

    monkeypatch.setattr(controller, "propagate_span", spy)
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    settings = w.propagation.settings
    w.propagation.set_settings(replace(settings, params=replace(settings.params, colour_grow=True)))
    run_propagation(qtbot, w)  # frame 0 to the end: one way, the pipeline's span
    m = w.model
    m.set_current_frame(3)
    shown = np.array(m.labels(3))
    w.actions_by_name["mark_reference"].trigger()  # R: accepted as it is
    assert m.is_reference(3)
    np.testing.assert_array_equal(m.labels(3), shown)  # it keeps (and exports) the grown masks
    run_propagation(qtbot, w)  # on from the accepted frame
    assert len(handed) == 2
    before = handed[1][3]
    np.testing.assert_array_equal(handed[1][0], truth[0])  # a painted frame hands on what it has
    assert (before <= shown).all() and (shown == 1).sum() > (before == 1).sum()  # less than it shows
    np.testing.assert_array_equal(grow(before, None, None, None), shown)  # exactly the grow less
