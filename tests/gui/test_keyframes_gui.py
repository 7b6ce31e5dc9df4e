"""Keyframes both ways from the GUI: spans filled from both ends, corrections splitting a span,
one progress bar, cancel, one undo step and the timeline's two-keyframe shade."""

from __future__ import annotations

import numpy as np
import pytest

from annotator.core.model.annotation import FrameState
from annotator.gui.propagation import Leg, plan_legs
from gui_helpers import run_propagation, square_clip
from tests.fakes import ColourBackbone

pytestmark = pytest.mark.gui

REFS = (0, 6, 12)
N = 16
BLOB = (np.ones((16, 16), bool), (44, 72))
"""A correction: object 1 painted on background, where the propagated maps have none."""


def _snapshot(m) -> dict[int, tuple[np.ndarray, FrameState, int]]:
    return {i: (np.array(m.labels(i)), m.frame_state(i), m.keyframes(i)) for i in range(m.num_frames)}


def _assert_same(m, snapshot, frames=None) -> None:
    for i in frames if frames is not None else range(m.num_frames):
        labels, state, keyframes = snapshot[i]
        np.testing.assert_array_equal(m.labels(i), labels, err_msg=f"frame {i}")
        assert (m.frame_state(i), m.keyframes(i)) == (state, keyframes), f"frame {i}"


def _filled_window(qtbot, make_window, backbone=None):
    """References on 0, 6 and 12 of a 16-frame clip, every other frame filled with Alt+P from 0."""
    frames, truth = square_clip(n=N, step=3)
    w = make_window(frames, {i: truth[i] for i in REFS}, backbone=backbone)
    applied, cancelled = run_propagation(qtbot, w, go_on=True)
    assert (applied, cancelled) == (N - len(REFS), False)
    return w


def _correct_frame_3(w) -> None:
    m = w.model
    m.set_current_frame(3)
    mask, origin = BLOB
    m.history.push("Brush", [m.paint(3, mask, 1, origin=origin)])
    assert m.is_reference(3)


def test_plan_of_p_shift_p_and_alt_p():
    refs = [2, 6, 12]
    assert plan_legs(refs, 6, N, 1, False) == [Leg(2, 6, True), Leg(6, 12, True)]  # P: both sides
    assert plan_legs(refs, 6, N, -1, False) == [Leg(2, 6, True)]  # Shift+P: the side before
    assert plan_legs(refs, 6, N, 1, True) == [Leg(6, 12, True), Leg(12, N)]  # Alt+P: on to the end
    assert plan_legs(refs, 2, N, 1, False) == [Leg(2, -1), Leg(2, 6, True)]  # no reference before: one way to 0
    assert plan_legs([0], 0, N, 1, False) == [Leg(0, N)]  # the first P after painting frame 0, as before
    assert plan_legs([0, 1], 1, N, -1, False) == []  # nothing between two adjacent references
    assert plan_legs(refs, 6, N, 1, False, both_ways=False) == [Leg(6, 12)]  # "both ways" off: as before


def test_spans_are_filled_from_both_ends_and_the_timeline_marks_them(qtbot, make_window):
    from annotator.gui.timeline import STATE_COLORS, TWO_KEYFRAMES_COLOR

    w = _filled_window(qtbot, make_window)
    m = w.model
    assert [m.keyframes(i) for i in range(N)] == [0, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 0, 1, 1, 1]
    strip = w.timeline.strip
    strip.resize(N * 10, strip.height())  # 10 px a frame
    image = strip.grab().toImage()
    y = strip.height() // 2
    colour = {i: image.pixelColor(i * 10 + 2, y).name() for i in (3, 9, 14)}  # clear of the cursor on frame 0
    assert colour == {3: TWO_KEYFRAMES_COLOR.name(), 9: TWO_KEYFRAMES_COLOR.name(),
                      14: STATE_COLORS[FrameState.PROPAGATED].name()}
    # the mark lives in the model: a reference made of a fused frame loses it, undo puts it back
    m.history.push("Brush", [m.paint(4, BLOB[0], 1, origin=BLOB[1])])
    assert m.keyframes(4) == 0 and 4 not in strip._two_keyframes
    m.history.undo()
    assert m.keyframes(4) == 2 and 4 in strip._two_keyframes


def test_correction_inside_a_span_refills_both_halves_only_with_cached_features(qtbot, make_window):
    backbone = ColourBackbone()
    w = _filled_window(qtbot, make_window, backbone)
    m = w.model
    store = w.propagation.store_for_current_video()
    computed, seen = store.computed, backbone.frames_seen
    _correct_frame_3(w)
    before = _snapshot(m)
    shown, progress = [], []
    w.propagation.frame_done.connect(lambda i: shown.append((i, m.keyframes(i))))
    w.propagation.progress.connect(lambda done, total, _fps, _left: progress.append((done, total)))
    applied, cancelled = run_propagation(qtbot, w)  # P on the correction
    assert (applied, cancelled) == (4, False)
    assert w.propagation.run_info.legs == (Leg(0, 3, True), Leg(3, 6, True))
    # one progress bar: each half's provisional frames (backward run, then forward run) are shown,
    # then replaced by the fused ones
    assert shown == [(2, 1), (1, 1), (1, 1), (2, 1), (1, 2), (2, 2), (5, 1), (4, 1), (4, 1), (5, 1), (4, 2), (5, 2)]
    assert progress == [(k, 12) for k in range(1, 13)]
    # no frame went through the backbone again: the video's feature store was reused
    assert w.propagation.store_for_current_video() is store and store.computed == computed
    assert backbone.frames_seen == seen
    _assert_same(m, before, [0, 3, *range(6, N)])  # outside the span nothing changed
    for half in ((1, 2), (4, 5)):  # both halves were filled again (the frames before the correction too)
        assert any(not np.array_equal(m.labels(i), before[i][0]) for i in half), half
        assert all(m.keyframes(i) == 2 for i in half)


def test_a_fill_is_one_undo_step(qtbot, make_window):
    w = _filled_window(qtbot, make_window)
    m = w.model
    _correct_frame_3(w)
    before = _snapshot(m)
    depth = len(m.history.undo_stack)
    run_propagation(qtbot, w)
    after = _snapshot(m)
    assert len(m.history.undo_stack) == depth + 1
    assert m.history.undo_name() == "Propagate between keyframes"
    m.history.undo()
    _assert_same(m, before)
    assert m.history.undo_name() == "Brush"
    m.history.redo()
    _assert_same(m, after)


def test_cancel_of_a_both_ways_fill_leaves_the_model_as_before(qtbot, make_window):
    w = _filled_window(qtbot, make_window)
    m = w.model
    _correct_frame_3(w)
    before = _snapshot(m)
    undo_stack = list(m.history.undo_stack)
    uncertainty = dict(w.diagnostics.uncertainty)
    seen = []

    def cancel_mid_span(i: int) -> None:
        seen.append((i, m.keyframes(i)))
        if len(seen) == 5:  # the first half fused up to frame 1, frame 2 still provisional
            assert m.keyframes(1) == 2 and m.keyframes(2) == 1
            w.propagation.cancel()

    w.propagation.frame_done.connect(cancel_mid_span)
    applied, cancelled = run_propagation(qtbot, w)
    assert (applied, cancelled) == (0, True)
    assert len(seen) == 5
    _assert_same(m, before)  # no provisional nor half-fused frame is left
    assert m.history.undo_stack == undo_stack and not m.history.can_redo  # and no undo step
    assert w.diagnostics.uncertainty == uncertainty  # the suggestion reads the frames as they are again
    assert not w.propagation.running and not w.status.progress.isVisible()
