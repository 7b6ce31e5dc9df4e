"""Benchmark: how many frames a simulated annotator paints until every frame is good enough.

The simulated annotator has the ground truth of every frame of a DAVIS sequence. It paints frame 0
(the ground-truth mask), lets the tool propagate, and repeats: pick a frame, paste its ground-truth
mask (the frame becomes a reference), let the tool re-propagate what that changes, until every
frame has J >= the goal for every object. The figure is **annotated frames per 100 frames**
(frame 0 included): no propagation at all is 100 per 100. Strategies:

* ``forward``: the tool before keyframes both ways. Runs go forward from each reference to the
  next one; the next frame is the app's "next frame to correct" (:func:`annotator.core.analysis.suggest.suggest_frame`,
  rule ``target``, calibrated by the J each correction revealed, as the GUI does).
* ``keyframes``: keyframes evenly spaced (frame 0 and the last frame among them), each span filled
  both ways; the smallest number of keyframes that reaches the goal, found by bisection (assumes
  more keyframes never hurt; uses the ground truth to decide: a bound no annotator has).
* ``both``: spans filled both ways (:func:`annotator.core.engine.pipeline.propagate_span`), the next
  keyframe chosen by the same calibrated suggestion, never by ground truth.

A span's frames depend only on its two keyframes (and a one-way run's only on its start), so
every span and run is computed once and shared by every strategy and goal; features come from one
FeatureStore per sequence (and ``--feature-cache``).

    python bench/bench_effort.py ../shared/data/davis2016 --goal 0.8 0.85 0.9 --feature-cache /tmp/featcache
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator

import numpy as np

from annotator.core.io import davis
from annotator.core.features.backbones import load_backbone
from annotator.core.analysis.diagnostics import frame_scores, frame_uncertainty
from annotator.core.features.store import FeatureStore
from annotator.core.engine.keyframes import Span
from annotator.core.io.labels import VOID, read_mask_folder
from annotator.core.engine.pipeline import propagate_span
from annotator.core.engine.propagation import FrameResult, PropagationParams, propagate
from annotator.core.analysis.suggest import Calibration, suggest_frame
from annotator.core.video import open_video

Values = dict[int, tuple[float, float]]  # frame -> (J of the worst object, uncertainty)


class Results:
    """(J, uncertainty) of every frame of each span or one-way run, computed once."""

    def __init__(self, store: FeatureStore, gt: dict[int, np.ndarray], params: PropagationParams,
                 output_hw: tuple[int, int]) -> None:
        self.store, self.gt, self.params, self.output_hw = store, gt, params, output_hw
        self.object_ids = [int(i) for i in np.unique(gt[min(gt)]) if 0 < i < VOID]
        self.label_ids = (0, *self.object_ids)
        self.n = len(store)
        self.spans: dict[tuple[int, int], Values] = {}
        self.forward: dict[int, Values] = {}  # one-way runs from a reference towards the end of the video
        self._live: dict[int, Iterator[FrameResult]] = {}
        self.propagated = 0

    def _score(self, result: FrameResult) -> tuple[float, float]:
        self.propagated += 1
        scores = frame_scores(result.labels, self.gt[result.index], self.object_ids)
        return min(s.j for s in scores), frame_uncertainty(result.soft)

    def _options(self) -> dict:
        return dict(output_hw=self.output_hw, label_ids=self.label_ids)

    def one_way(self, start: int, stop: int) -> Values:
        """Frames start+1 .. stop-1 of the forward run from ``start``, extended lazily: a run does not
        depend on where it will stop, so one generator serves every later, longer query."""
        got = self.forward.setdefault(start, {})
        while len(got) < stop - start - 1:
            gen = self._live.pop(start, None)
            if gen is None:  # new, or evicted: recompute the frames already scored (identical ones)
                gen = propagate(self.store, {start: self.gt[start]}, start, self.n, self.params,
                                context_references=[start], **self._options())
                for _ in range(len(got)):
                    next(gen)
            self._live[start] = gen  # most recently used last
            while len(self._live) > 8:  # each live run holds its context (~40 MB at 480p)
                self._live.pop(next(iter(self._live)))
            result = next(gen)
            got[result.index] = self._score(result)
        return {t: got[t] for t in range(start + 1, stop)}

    def both_ways(self, first: int, last: int) -> Values:
        key = (first, last)
        if key not in self.spans:
            refs = {first: self.gt[first], last: self.gt[last]}
            self.spans[key] = {r.index: self._score(r) for r in propagate_span(
                self.store, refs, Span(first, last, self.n), self.params, **self._options())}
        return self.spans[key]

    def values(self, refs: set[int], both: bool) -> Values:
        order = sorted(refs)
        out: Values = {}
        for a, b in zip(order, [*order[1:], self.n]):
            out.update(self.both_ways(a, b) if both and b < self.n else self.one_way(a, b))
        return out


def suggested(results: Results, goal: float, both: bool, first: set[int]) -> list[int]:
    """Frames annotated (frame 0 included) when the calibrated suggestion picks each next one."""
    refs = set(first)
    calibration = Calibration()
    while True:
        values = results.values(refs, both)
        if all(j >= goal for j, _ in values.values()):
            return sorted(refs)
        frame = suggest_frame({f: u for f, (_, u) in values.items()}, refs, rule="target", target=goal,
                              calibration=calibration)
        if frame is None or frame in refs:
            raise RuntimeError(f"the suggestion picked {frame!r} with references {sorted(refs)}")
        j, u = values[frame]
        calibration.add(u, j)  # what the pasted mask reveals about the propagation there
        refs.add(frame)


def even_keyframes(n_frames: int, n: int) -> set[int]:
    """n >= 2 keyframes evenly spaced from frame 0 to the last frame."""
    return {int(round(k * (n_frames - 1) / (n - 1))) for k in range(n)}


def keyframes(results: Results, goal: float) -> list[int]:
    def good(n: int) -> bool:
        values = results.values(even_keyframes(results.n, n), both=True)
        return all(j >= goal for j, _ in values.values())

    lo, hi = 2, results.n  # hi: every frame a keyframe, always good
    while lo < hi:
        mid = (lo + hi) // 2
        if good(mid):
            hi = mid
        else:
            lo = mid + 1
    return sorted(even_keyframes(results.n, lo))


STRATEGIES = {
    "forward": lambda r, g: suggested(r, g, both=False, first={0}),
    "keyframes": keyframes,
    "both": lambda r, g: suggested(r, g, both=True, first={0}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="DAVIS root with JPEGImages/480p and Annotations/480p (a mask on every frame)")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--goal", type=float, nargs="+", default=[0.8, 0.85, 0.9])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--short-side", type=int, default=480)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--feature-cache", default=None, metavar="DIR")
    args = p.parse_args()

    names = davis.list_sequences(args.root)
    if args.sequences:
        names = [n for n in names if n in args.sequences]
    backbone = load_backbone("lite0", device="cpu", threads=args.threads, flip=True)
    params = PropagationParams()
    print(f"backbone {backbone.name}, features at short side {args.short_side}, {params}", flush=True)
    rows: dict[float, list[dict]] = {g: [] for g in args.goal}
    seconds: dict[str, float] = {s: 0.0 for s in args.strategies}
    t_start = time.perf_counter()
    for name in names:
        gt = read_mask_folder(davis.annotations_dir(args.root, name))
        with open_video(davis.frames_dir(args.root, name)) as video:
            store = FeatureStore(video, backbone, short_side=args.short_side or None, disk_cache=args.feature_cache)
            results = Results(store, gt, params, tuple(video.hw))
            for goal in args.goal:
                row = {"sequence": name, "frames": len(video)}
                for label in args.strategies:
                    t0 = time.perf_counter()
                    annotated = STRATEGIES[label](results, goal)
                    seconds[label] += time.perf_counter() - t0
                    row[label] = len(annotated)
                    print(f"  {name} goal {goal}: {label} {len(annotated)} frames annotated {annotated}", flush=True)
                rows[goal].append(row)
            store.close()
        print(f"  {name}: {results.propagated} frames propagated", flush=True)
    for goal, table in rows.items():
        cols = ["sequence", "frames", *args.strategies]
        frames = sum(r["frames"] for r in table)
        print(f"\nframes annotated until every frame has J >= {goal} (frame 0 included)")
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in table:
            print("| " + " | ".join(str(row[c]) for c in cols) + " |")
        print("| total | " + " | ".join(str(sum(r[c] for r in table)) for c in cols[1:]) + " |")
        print("| per 100 frames | 100 | " + " | ".join(f"{100 * sum(r[c] for r in table) / frames:.1f}"
                                                    for c in args.strategies) + " |")
    print("\nwall time per strategy (propagation shared between strategies is counted where first needed): "
          + ", ".join(f"{s} {t:.0f} s" for s, t in seconds.items()))
    print(f"{time.perf_counter() - t_start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
