"""Benchmark: how many corrections a simulated annotator needs with each way of picking frames.

The simulated annotator propagates a DAVIS sequence forward from its frame-0 mask, then repeats:
pick a frame, paste its ground-truth mask as a correction (the frame becomes a reference),
propagate forward from it to the next reference (as the GUI's "Propagate ▶" does), until every
frame has J >= the goal (0.9 by default) for every object. Strategies:

* ``suggest``: :func:`annotator.core.analysis.suggest.suggest_frame` (rule ``"target"``) on the per-frame
  uncertainty (:func:`annotator.core.analysis.diagnostics.frame_uncertainty`), calibrated by the J each
  correction revealed (as the GUI does), never looking at the ground truth of other frames;
* ``suggest:RULE``: a rule without that calibration (``suggest:target`` is the uncalibrated target rule);
* ``oracle``: the frame with the lowest J (looks at ground truth: a bound, not a tool);
* ``even``: n frames evenly spaced over the video, the smallest n that reaches the goal.

A forward run from a reference depends only on that reference's mask and the frames, never on
where the run stops, so runs are cached per start frame and shared by every strategy; features
come from one FeatureStore per sequence (computed once).

    python bench/bench_suggestions.py ../shared/data/davis2016 --short-side 240 --goal 0.7
    python bench/bench_suggestions.py ../shared/data/davis2016 --sequences dog-agility --strategies suggest:max suggest:onset oracle even
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from annotator.core.io import davis
from annotator.core.features.backbones import load_backbone
from annotator.core.analysis.diagnostics import frame_scores, frame_uncertainty
from annotator.core.features.store import FeatureStore
from annotator.core.io.labels import VOID, read_mask_folder
from annotator.core.engine.propagation import FrameResult, PropagationParams, propagate
from annotator.core.analysis.suggest import DEFAULT_RULE, Calibration, suggest_frame
from annotator.core.video import DEFAULT_SHORT_SIDE, open_video


class RunCache:
    """Per start frame: (J of the worst object, uncertainty) of every frame of the forward run from it."""

    def __init__(self, store: FeatureStore, gt: dict[int, np.ndarray], params: PropagationParams,
                 output_hw: tuple[int, int], frames=None) -> None:
        self.store, self.gt, self.params, self.output_hw = store, gt, params, output_hw
        self.frames = frames  # the video's frames(i), for the engine's optical flow
        first = gt[min(gt)]
        self.object_ids = [int(i) for i in np.unique(first) if 0 < i < VOID]
        self.label_ids = (0, *self.object_ids)
        self.n = len(store)
        self.values: dict[int, list[tuple[float, float]]] = {}
        self._live: dict[int, tuple[Iterator[FrameResult], int]] = {}  # start -> (generator, its stop)
        self.propagated = 0

    def _score(self, result: FrameResult) -> tuple[float, float]:
        scores = frame_scores(result.labels, self.gt[result.index], self.object_ids)
        return min(s.j for s in scores), frame_uncertainty(result.soft)

    def value(self, start: int, frame: int, stop: int) -> tuple[float, float]:
        """(J, uncertainty) of ``frame`` in the run from ``start`` (a run that will go up to ``stop``)."""
        got = self.values.setdefault(start, [])
        need = frame - start
        while len(got) < need:
            live = self._live.pop(start, None)
            if live is None:
                # a run always goes towards the end of the video (its frames do not depend on where it
                # will stop), so one generator serves every later, longer query from the same start;
                # one evicted and needed again recomputes the frames already cached (identical ones)
                gen = propagate(self.store, {start: self.gt[start]}, start, self.n, self.params,
                                output_hw=self.output_hw, label_ids=self.label_ids, frames=self.frames)
                for _ in range(len(got)):
                    next(gen)
                    self.propagated += 1
                live = (gen, self.n)
            self._live[start] = live  # most recently used last
            while len(self._live) > 8:  # each live run holds its context (~50 MB at 480p): keep a few
                self._live.pop(next(iter(self._live)))
            got.append(self._score(next(live[0])))
            self.propagated += 1
        return got[need - 1]

    def frame_values(self, refs: set[int]) -> dict[int, tuple[float, float]]:
        """(J, uncertainty) of every non-reference frame given the references (frames before the first
        reference never occur: frame 0 always is one)."""
        order = sorted(refs)
        out = {}
        for k, r in enumerate(order):
            stop = order[k + 1] if k + 1 < len(order) else self.n
            for t in range(r + 1, stop):
                out[t] = self.value(r, t, stop)
        return out

    def first_failure(self, refs: set[int], goal: float) -> int | None:
        """The first frame below the goal given the references, computing no further than needed."""
        order = sorted(refs)
        for k, r in enumerate(order):
            stop = order[k + 1] if k + 1 < len(order) else self.n
            for t in range(r + 1, stop):
                if self.value(r, t, stop)[0] < goal:
                    return t
        return None


def run_adaptive(cache: RunCache, goal: float, pick) -> list[int]:
    """Corrections (in order) of a strategy that looks at the current result to pick the next frame."""
    refs = {0}
    corrections: list[int] = []
    while True:
        values = cache.frame_values(refs)
        if all(j >= goal for j, _ in values.values()):
            return corrections
        frame = pick(values, refs)
        if frame is None or frame in refs:
            raise RuntimeError(f"strategy picked {frame!r} with references {sorted(refs)}")
        refs.add(frame)
        corrections.append(frame)


def run_target(cache: RunCache, goal: float, learn: bool = True) -> list[int]:
    """The ``"target"`` suggestion, evaluated lazily: frames are visited in time order and the visit stops
    once a frame estimated below the target and a frame truly below the goal are both known. Same picks
    as :func:`run_adaptive` with the same rule (the rule takes the first flagged frame in time), at a
    fraction of the propagation: runs are only extended as far as the next flagged frame.

    With ``learn`` every correction teaches the suggestion's :class:`Calibration` the J the corrected
    frame had (what the person's pasted mask reveals about the propagation there, as in the GUI)."""
    refs = {0}
    corrections: list[int] = []
    calibration = Calibration()
    estimate = calibration.estimate_j if learn else (lambda u: 1.0 - u)
    while True:
        order = sorted(refs)
        seen: dict[int, tuple[float, float]] = {}
        flagged = failing = None
        for k, r in enumerate(order):
            stop = order[k + 1] if k + 1 < len(order) else cache.n
            for t in range(r + 1, stop):
                seen[t] = j, u = cache.value(r, t, stop)
                if failing is None and j < goal:
                    failing = t
                if flagged is None and estimate(u) < goal:
                    flagged = t
                if failing is not None and flagged is not None:
                    break
            if failing is not None and flagged is not None:
                break
        if failing is None:
            return corrections
        if flagged is None:  # the rule falls back to "onset", which needs every frame
            seen = cache.frame_values(refs)
        frame = suggest_frame({f: u for f, (_, u) in seen.items()}, refs, rule="target", target=goal,
                              calibration=calibration if learn else None)
        if frame is None or frame in refs:
            raise RuntimeError(f"target rule picked {frame!r} with references {sorted(refs)}")
        if learn:
            j, u = seen[frame]
            calibration.add(u, j)
        refs.add(frame)
        corrections.append(frame)


def even_positions(n_frames: int, n: int) -> list[int]:
    """n frames evenly spaced after frame 0 (which is a reference already)."""
    return sorted({int(round(k * n_frames / (n + 1))) for k in range(1, n + 1)} - {0})


def run_even(cache: RunCache, goal: float) -> list[int]:
    for n in range(0, cache.n):
        positions = even_positions(cache.n, n)
        if cache.first_failure({0, *positions}, goal) is None:
            return positions
    return list(range(1, cache.n))


def strategies(names: list[str]):
    out = {}
    for name in names:
        if name == "oracle":
            out[name] = lambda c, g: run_adaptive(c, g, lambda v, refs: min(v, key=lambda f: (v[f][0], f)))
        elif name == "even":
            out[name] = run_even
        elif name == "suggest" and DEFAULT_RULE == "target":
            out[name] = run_target  # what the GUI does: the target rule, learning from each correction
        elif name == "suggest:target":
            out[name] = lambda c, g: run_target(c, g, learn=False)
        elif name.startswith("suggest"):
            rule = name.partition(":")[2] or DEFAULT_RULE
            # the annotator's quality goal is the suggestion's target; it never sees the J values
            out[name] = (lambda r: lambda c, g: run_adaptive(
                c, g, lambda v, refs: suggest_frame({f: u for f, (_, u) in v.items()}, refs, rule=r, target=g)))(rule)
        else:
            raise SystemExit(f"unknown strategy {name!r}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="DAVIS root with JPEGImages/480p and Annotations/480p (a mask on every frame)")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--goal", type=float, nargs="+", default=[0.9], help="J every frame must reach (several: one table each)")
    p.add_argument("--strategies", nargs="+", default=["suggest", "oracle", "even"],
                   help="suggest[:max|distance|onset|target], oracle, even")
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="working resolution of the features (masks are scored at full size)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--float32", action="store_true", help="float32 backbone and matmuls (default: half where the CPU has it)")
    args = p.parse_args()

    names = davis.list_sequences(args.root)
    if args.sequences:
        names = [n for n in names if n in args.sequences]
    backbone = load_backbone(args.backbone, device="cpu", threads=args.threads, half=False if args.float32 else None)
    params = PropagationParams(precision="float32") if args.float32 else PropagationParams()
    runners = strategies(args.strategies)
    print(f"backbone {backbone.name}, features at short side {args.short_side}, {params}", flush=True)
    results: dict[float, list[dict]] = {g: [] for g in args.goal}
    t_start = time.perf_counter()
    for name in names:
        gt = read_mask_folder(davis.annotations_dir(args.root, name))
        with open_video(davis.frames_dir(args.root, name)) as video:
            store = FeatureStore(video, backbone, short_side=args.short_side or None)
            cache = RunCache(store, gt, params, tuple(video.hw), frames=video.frame)
            for goal in args.goal:
                row = {"sequence": name, "frames": len(video)}
                for label, run in runners.items():
                    t0 = time.perf_counter()
                    corrections = run(cache, goal)
                    row[label] = len(corrections)
                    print(f"  {name} goal {goal}: {label} {len(corrections)} corrections {corrections} "
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)
                results[goal].append(row)
            print(f"  {name}: {cache.propagated} frames propagated, {store.computed} feature maps", flush=True)
    for goal, rows in results.items():
        cols = ["sequence", "frames", *runners]
        print(f"\ncorrections until every frame has J >= {goal}")
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in rows:
            print("| " + " | ".join(str(row[c]) for c in cols) + " |")
        print("| total | " + " | ".join(str(sum(r[c] for r in rows)) for c in cols[1:]) + " |")
    print(f"\n{time.perf_counter() - t_start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
