"""Which frame to correct next, from the propagation's own per-frame uncertainty (never ground truth).

A correction on frame c turns it into a reference; re-propagating forward from it replaces the
frames up to the next reference. So a correction pays off when it lands where propagation
*starts* to go wrong in a long stretch of doubtful frames: everything after it in the stretch is
propagated again from a perfect mask. Correcting the single most uncertain frame (rule
``"max"``) tends to land at the end of such a stretch, where only a few frames follow.

Rules (``rule=``):

* ``"max"``: the most uncertain frame.
* ``"distance"``: uncertainty times the distance from the previous reference (errors accumulate
  with distance, so a far frame of the same uncertainty is the better bet).
* ``"onset"``: take the stretch between two references whose uncertainty, summed, is
  largest; correct the first frame of it where the uncertainty reaches halfway between the
  stretch's smallest and largest value, i.e. where the failure sets in.
* ``"target"`` (default): the per-frame uncertainty estimates ``1 - J`` (see
  :func:`annotator.core.analysis.diagnostics.frame_uncertainty`), so with the quality the person needs
  (``target``, a J) the first frame estimated to miss it is where propagation stops being good
  enough: correcting exactly there lets the new run cover the most frames (greedy covering,
  which is optimal when quality only decays with distance from a reference). Frames are taken
  in time order; before the first reference (propagated backward) from the reference outwards.
  When no frame is estimated to miss the target it falls back to ``fallback``: ``"onset"`` (the
  default) or ``"max"``, the frame estimated worst.

  **Both ways** (``both_ways=True``; an option, not what the app asks for): a correction that is
  re-propagated to both its sides (keyframes both ways) re-fills the frames before it too, so
  correcting the first failing frame wastes half its reach. If the first frame to miss the target is
  ``d`` frames past the reference its stretch hangs from (one way: after the last reference, before
  the first), the frames ``d - 1`` on either side of a new reference are good, so the suggestion
  leaps to ``2d - 1`` past that reference, never beyond the run of failing frames that starts there.
  Between two references (frames filled from both ends) it takes the middle of the failing run.

  Measured with ``bench/bench_effort.py --strategies both --goal 0.8`` (bench/RESULTS.md, session
  35), frames painted per 100, original ten / ten added later: the app's rule 17.9 / 26.7; leap
  with ``"max"`` 13.9 / 27.8 (drift-turn 19 -> 4, kite-walk 38 -> 24); ``"max"`` alone 15.8 / 27.6.
  None helps both halves, so the defaults stay. What decides the ten added later is the end game:
  when the last frames below the goal sit just below it among frames estimated alike, either
  fallback guesses (dance-jump 30 frames with ``"onset"``, 41 with ``"max"``; swing with the leap
  40 with ``"onset"``, 14 with ``"max"``).

Frames without an uncertainty (references, frames not propagated yet) are never suggested.

**Learning from corrections.** How much error a given uncertainty means differs from video to
video (a thin object is uncertain along its whole outline even when it is right). Every
correction of a propagated frame shows the truth for one frame: the J between what propagation
gave there and what the person painted. A :class:`Calibration` collects those (uncertainty, J)
pairs and turns uncertainty into an estimated error ``1 - J = a * u``, with ``a`` fitted by least
squares and pulled towards 1 (the uncalibrated estimate) while there are few pairs. A frame the
person accepted as it was says only that its J met their target: a bound, used where the fit
contradicts it (:meth:`Calibration.accept`). The ``"target"`` rule uses it when given. No ground
truth is involved: only what the person did.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from typing import Literal

from annotator.core.errors import UsageError

Rule = Literal["max", "distance", "onset", "target"]
RULES: tuple[str, ...] = ("max", "distance", "onset", "target")
DEFAULT_RULE: Rule = "target"
DEFAULT_TARGET = 0.9
Fallback = Literal["onset", "max"]  # the target rule's choice when no frame is estimated below the target
FALLBACKS: tuple[str, ...] = ("onset", "max")

__all__ = ["Calibration", "DEFAULT_RULE", "DEFAULT_TARGET", "FALLBACKS", "Fallback", "RULES", "Rule", "segments",
           "suggest_frame"]


class Calibration:
    """Uncertainty -> estimated J, learnt from the corrections a person made (see the module docstring).

    ``prior_weight`` is how many corrections the prior ``a = 1`` counts as, each at uncertainty
    ``prior_uncertainty``; the scale is kept within ``[0.25, 4]`` so a few odd corrections never make
    every frame (or none) look below the target.

    A frame the person accepted as it was (:meth:`accept`) tells less than a correction: only that its J
    met their target, not what it was. Taken as J 1 (a correction that changed nothing; the rule before
    session 41) one acceptance at a middling uncertainty drove the scale to its floor at once: on boat at
    the goal 0.85 no frame was estimated below the goal any more after the first acceptance, with 64 of
    the 75 frames below it. So an acceptance is a bound: while the fit estimates such a frame below the
    target it was accepted at, the frame counts as a correction to exactly that J; otherwise not at all.
    """

    def __init__(self, prior_weight: float = 1.0, prior_uncertainty: float = 0.1) -> None:
        if prior_weight <= 0 or prior_uncertainty <= 0:
            raise UsageError("calibration prior weight and uncertainty must be > 0")
        self.pairs: list[tuple[float, float]] = []
        self.bounds: list[tuple[float, float]] = []  # (uncertainty, target) of each frame accepted as it was
        self._prior = prior_weight * prior_uncertainty * prior_uncertainty
        # the fitted scale for (len(pairs), len(bounds)): a suggestion estimates every frame with it, and
        # both lists only grow, so it is fitted once per lesson rather than once per frame
        self._fitted: tuple[tuple[int, int], float] | None = None

    def add(self, uncertainty: float, j: float) -> None:
        """Record one corrected frame: its uncertainty before the correction and the J of what it showed."""
        if not (uncertainty == uncertainty and j == j):  # NaN: nothing learnt
            return
        if not 0.0 <= j <= 1.0:
            raise UsageError(f"J must be in [0, 1], got {j}")
        self.pairs.append((max(float(uncertainty), 0.0), float(j)))

    def accept(self, uncertainty: float, target: float) -> None:
        """Record a frame the person kept as it was while aiming at J ``target``: its J was at least that."""
        if not (uncertainty == uncertainty and target == target):
            return
        if not 0.0 <= target <= 1.0:
            raise UsageError(f"the target must be a J in [0, 1], got {target}")
        self.bounds.append((max(float(uncertainty), 0.0), float(target)))

    def _fit(self, pairs: list[tuple[float, float]]) -> float:
        num = self._prior + sum(u * (1.0 - j) for u, j in pairs)
        den = self._prior + sum(u * u for u, _ in pairs)
        return min(4.0, max(0.25, num / den))

    @property
    def scale(self) -> float:
        """``a`` in ``1 - J = a * u``: least squares over the corrections and the acceptances it contradicts."""
        key = (len(self.pairs), len(self.bounds))
        if self._fitted is None or self._fitted[0] != key:
            self._fitted = key, self._fit_with_bounds()
        return self._fitted[1]

    def _fit_with_bounds(self) -> float:
        a = self._fit(self.pairs)
        active: set[tuple[float, float]] = set()
        while True:  # the set only grows, so this ends within len(bounds) rounds
            contradicted = {(u, t) for u, t in self.bounds if 1.0 - a * u < t} - active
            if not contradicted:
                return a
            active |= contradicted
            a = self._fit(self.pairs + sorted(active))

    def estimate_j(self, uncertainty: float) -> float:
        return 1.0 - self.scale * uncertainty

    def __len__(self) -> int:
        return len(self.pairs) + len(self.bounds)


def segments(frames: Iterable[int], references: Iterable[int]) -> list[list[int]]:
    """The candidate frames split into stretches at the references, in order (empty stretches dropped)."""
    refs = sorted(set(references))
    out: dict[int, list[int]] = {}
    for f in sorted(frames):
        out.setdefault(bisect_right(refs, f), []).append(f)
    return [out[k] for k in sorted(out)]


def suggest_frame(uncertainty: Mapping[int, float], references: Iterable[int], *,
                  rule: Rule = DEFAULT_RULE, target: float = DEFAULT_TARGET,
                  calibration: Calibration | None = None, both_ways: bool = False,
                  fallback: Fallback = "onset") -> int | None:
    """The frame whose correction should help most, or None when no frame is a candidate.

    ``uncertainty`` maps frame index to its per-frame uncertainty (see
    :func:`annotator.core.analysis.diagnostics.frame_uncertainty`); ``references`` are the frames a person
    painted, never suggested. ``target`` is the J the person needs and ``calibration`` what their
    corrections taught (rule ``"target"`` only; without it the estimate is ``1 - u``). ``both_ways``:
    a correction is re-propagated to both sides, and ``fallback`` the rule when no frame is estimated
    below the target (``"onset"`` or ``"max"``; rule ``"target"`` only; see the module docstring).
    """
    if rule not in RULES:
        raise UsageError(f"unknown suggestion rule {rule!r}; choose one of {', '.join(RULES)}")
    if fallback not in FALLBACKS:
        raise UsageError(f"unknown fallback rule {fallback!r}; choose one of {', '.join(FALLBACKS)}")
    refs = sorted(set(int(r) for r in references))
    ref_set = set(refs)
    cand = {int(f): float(u) for f, u in uncertainty.items() if int(f) not in ref_set and u == u}  # u == u: not NaN
    if not cand:
        return None
    stretches = segments(cand, refs)
    if rule == "target":
        estimate = calibration.estimate_j if calibration is not None else (lambda u: 1.0 - u)
        for stretch in stretches:
            order = list(reversed(stretch)) if refs and stretch[-1] < refs[0] else stretch
            failing = [k for k, f in enumerate(order) if estimate(cand[f]) < target]
            if not failing:
                continue
            if not both_ways:
                return order[failing[0]]
            return _leap(order, failing, refs)
        rule = fallback  # no frame estimated below the target
    if rule == "max":
        return max(cand, key=lambda f: (cand[f], -f))
    if rule == "distance":
        def score(f: int) -> tuple[float, int]:
            k = bisect_left(refs, f)
            previous = refs[k - 1] if k > 0 else None
            distance = f - previous if previous is not None else (refs[0] - f if refs else f + 1)
            return cand[f] * distance, -f
        return max(cand, key=score)
    # onset: the worst stretch, then where its uncertainty climbs past halfway
    worst = max(stretches, key=lambda s: (sum(cand[f] for f in s), -s[0]))
    values = [cand[f] for f in worst]
    low, high = min(values), max(values)
    if high <= low:
        return worst[len(worst) // 2]
    halfway = (low + high) / 2
    if refs and worst[-1] < refs[0]:  # before the first reference: failure grows towards frame 0
        return next(f for f in reversed(worst) if cand[f] >= halfway)
    return next(f for f in worst if cand[f] >= halfway)


def _leap(order: list[int], failing: list[int], refs: list[int]) -> int:
    """The both-ways choice in a stretch (frames in propagation order; ``failing``: positions in it
    below the target): see "Both ways" in the module docstring."""
    start = failing[0]
    below = set(failing)
    end = start  # the run of failing frames that starts there (consecutive frames)
    while end + 1 in below and abs(order[end + 1] - order[end]) == 1:
        end += 1
    first, last = order[start], order[end]
    before = [r for r in refs if r < min(order)]
    after = [r for r in refs if r > max(order)]
    if before and after:  # filled from both ends: split the failing run in the middle
        return order[(start + end) // 2]
    anchor = before[-1] if before else after[0] if after else None  # the reference it hangs from
    if anchor is None:
        return first
    d = abs(first - anchor)
    leap = anchor + (2 * d - 1) * (1 if first > anchor else -1)
    return min(leap, last) if first > anchor else max(leap, last)
