"""The next frame to correct, from uncertainty only."""

from __future__ import annotations

import math

import pytest

from annotator.core.errors import UsageError
from annotator.core.analysis.suggest import segments, suggest_frame


def ramp(start: int, stop: int, slope: float = 0.05, base: float = 0.05) -> dict[int, float]:
    """Uncertainty growing with the distance from the reference at ``start``."""
    return {f: base + slope * (f - start) for f in range(start + 1, stop)}


def test_segments_split_at_references():
    assert segments([1, 2, 4, 5, 8], [0, 3, 7]) == [[1, 2], [4, 5], [8]]
    assert segments([0, 1, 5], [3]) == [[0, 1], [5]]


def test_target_rule_picks_the_first_frame_estimated_below_the_target():
    u = ramp(0, 20)  # estimated J = 1 - u: 0.9 at frame 1, below 0.7 from frame 6 on
    assert suggest_frame(u, [0], rule="target", target=0.7) == 6
    assert suggest_frame(u, [0], rule="target", target=0.95) == 1
    # frames after a later reference are judged from theirs: the earlier stretch still comes first
    u2 = {**ramp(0, 10), **ramp(10, 20, slope=0.2)}
    assert suggest_frame(u2, [0, 10], rule="target", target=0.7) == 6
    u3 = {**ramp(0, 10, slope=0.01), **ramp(10, 20, slope=0.2)}
    assert suggest_frame(u3, [0, 10], rule="target", target=0.7) == 12


def test_both_ways_the_suggestion_leaps_past_the_first_failing_frame():
    """A both-ways correction re-fills its two sides: after the first failing frame d past the
    reference, the suggestion is 2d - 1 past it, within the run of failing frames."""
    u = ramp(0, 20)  # one way after reference 0: first frame below 0.7 is 6 (d = 6)
    assert suggest_frame(u, [0], rule="target", target=0.7) == 6  # one way: greedy covering
    assert suggest_frame(u, [0], rule="target", target=0.7, both_ways=True) == 11
    # the leap stops at the end of the failing run (the frames after it are good)
    short = {**u, **{f: 0.01 for f in range(9, 20)}}
    assert suggest_frame(short, [0], rule="target", target=0.7, both_ways=True) == 8
    # and at the end of the video
    assert suggest_frame(ramp(0, 9), [0], rule="target", target=0.7, both_ways=True) == 8
    # a failure next to the reference leaves nothing to leap over
    assert suggest_frame(u, [0], rule="target", target=0.95, both_ways=True) == 1
    # before the first reference (propagated backward from 10): outwards, 2d - 1 before it
    back = {f: 0.05 + 0.05 * (10 - f) for f in range(0, 10)}  # first below 0.7 going outwards: 4 (d = 6)
    assert suggest_frame(back, [10], rule="target", target=0.7, both_ways=True) == 0  # 10 - 11, clipped
    assert suggest_frame({f: 0.05 + 0.05 * (30 - f) for f in range(0, 30)}, [30], rule="target", target=0.7,
                         both_ways=True) == 19  # first failing 24 (d = 6): 30 - 11


def test_both_ways_between_two_references_the_middle_of_the_failing_run():
    # filled from both ends: uncertainty peaks in the middle; frames 6..14 below 0.7
    u = {f: 0.05 + 0.05 * min(f, 20 - f) for f in range(1, 20)}
    assert suggest_frame(u, [0, 20], rule="target", target=0.7) == 6
    assert suggest_frame(u, [0, 20], rule="target", target=0.7, both_ways=True) == 10


def test_target_rule_before_the_first_reference_goes_outwards():
    u = {f: 0.05 + 0.05 * (10 - f) for f in range(0, 10)}  # propagated backward from frame 10
    assert suggest_frame(u, [10], rule="target", target=0.7) == 4


def test_without_a_frame_below_target_the_fallback_rule():
    u = {**ramp(0, 10, slope=0.001), **ramp(10, 30, slope=0.01), 5: 0.3}
    # "max": frame 5 alone is the likeliest to be wrong
    assert suggest_frame(u, [0, 10], rule="target", target=0.1, fallback="max") == 5
    assert suggest_frame(u, [0, 10], rule="target", target=0.1, both_ways=True, fallback="max") == 5
    # "onset" (the default): the stretch after 10 holds most uncertainty; halfway from its min to its
    # max is reached at 20
    assert suggest_frame(u, [0, 10], rule="target", target=0.1) == 20
    assert suggest_frame(u, [0, 10], rule="onset") == 20
    with pytest.raises(UsageError, match="fallback rule"):
        suggest_frame(u, [0, 10], rule="target", target=0.1, fallback="distance")


def test_max_and_distance_rules():
    u = {1: 0.1, 2: 0.5, 3: 0.4, 11: 0.3, 12: 0.45}
    assert suggest_frame(u, [0, 10], rule="max") == 2
    assert suggest_frame(u, [0, 10], rule="distance") == 3  # 0.4 * 3 beats 0.5 * 2 and 0.45 * 2


def test_references_and_unknown_frames_are_never_suggested():
    u = {0: 0.9, 1: 0.1, 2: math.nan, 3: 0.2}
    assert suggest_frame(u, [0], rule="max") == 3
    assert suggest_frame({}, [0]) is None
    assert suggest_frame({0: 1.0}, [0]) is None
    with pytest.raises(UsageError, match="unknown suggestion rule"):
        suggest_frame(u, [0], rule="random")  # type: ignore[arg-type]


def test_calibration_learns_how_much_error_an_uncertainty_means():
    from annotator.core.analysis.suggest import Calibration

    cal = Calibration()
    assert cal.scale == 1.0 and cal.estimate_j(0.2) == pytest.approx(0.8)
    # corrections keep showing twice the error the uncertainty says
    for u in (0.1, 0.15, 0.2, 0.25):
        cal.add(u, 1.0 - 2 * u)
    assert 1.8 < cal.scale < 2.0  # pulled slightly towards the prior 1
    assert cal.estimate_j(0.1) == pytest.approx(1 - cal.scale * 0.1)
    cal.add(float("nan"), 0.5)  # nothing learnt from a frame without an uncertainty
    assert len(cal) == 4
    with pytest.raises(UsageError):
        cal.add(0.1, 1.5)
    # the scale stays within bounds whatever the corrections say
    wild = Calibration()
    for _ in range(10):
        wild.add(0.01, 0.0)
    assert wild.scale == 4.0


def test_an_accepted_frame_bounds_the_calibration_instead_of_claiming_a_perfect_j():
    from annotator.core.analysis.suggest import Calibration

    # accepted at uncertainty 0.216 while aiming at J 0.8 (estimated 0.784): it was at least 0.8
    cal = Calibration()
    cal.accept(0.216, 0.8)
    assert len(cal) == 1 and cal.pairs == []
    assert 0.9 < cal.scale < 1.0  # a little more trust in the uncertainty...
    assert cal.estimate_j(0.3) < 0.8  # ...but a more doubtful frame is still worth a look
    # taken as J 1 (session 40's rule) the same acceptance sends the scale to its floor: nothing looks doubtful
    perfect = Calibration()
    perfect.add(0.216, 1.0)
    assert perfect.scale == 0.25 and perfect.estimate_j(0.3) > 0.9
    # an acceptance the fit already agrees with teaches nothing
    painted = Calibration()
    for u in (0.1, 0.2):
        painted.add(u, 1.0 - 2 * u)
    before = painted.scale
    painted.accept(0.02, 0.9)  # estimated 1 - 2 * 0.02 > 0.9 already
    assert painted.scale == pytest.approx(before)
    # one it contradicts pulls the scale down, but corrections still count
    painted.accept(0.2, 0.9)
    assert 1.0 < painted.scale < before
    painted.accept(float("nan"), 0.9)  # nothing learnt from a frame without an uncertainty
    assert len(painted) == 4
    with pytest.raises(UsageError):
        painted.accept(0.1, 1.5)


def test_target_rule_uses_the_calibration():
    from annotator.core.analysis.suggest import Calibration

    u = ramp(0, 20)  # 1 - u drops below 0.7 at frame 6
    cal = Calibration()
    for x in (0.1, 0.2, 0.3):
        cal.add(x, 1.0 - 2 * x)  # the propagation is twice as wrong as it thinks
    assert suggest_frame(u, [0], rule="target", target=0.7) == 6
    assert suggest_frame(u, [0], rule="target", target=0.7, calibration=cal) == 3
