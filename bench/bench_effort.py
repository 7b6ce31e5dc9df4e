"""Benchmark: how many frames a simulated annotator paints until every frame is good enough.

The simulated annotator has the ground truth of every frame of a DAVIS sequence. It paints its first
frames (ground-truth masks), lets the tool propagate, and repeats: go to the frame the app suggests,
paste its ground-truth mask (the frame becomes a reference), let the tool re-propagate what the app's P
re-propagates after a correction, until every frame has J >= the goal for every object. The figure
is **painted frames per 100 frames** (the first frames included): no propagation at all is 100
per 100. The next frame is always the app's "next frame to correct"
(:func:`annotator.core.analysis.suggest.suggest_frame`, rule ``target``, calibrated by the J each correction
revealed, as the GUI does); never the ground truth. A suggested frame that already meets the goal is
accepted as it is (``--good-frames accept``, the default: the app's "Accept frame", R, makes it a
reference with its propagated labels; counted apart, as ``accepted``), as a person who looks at it
would; ``--good-frames paint`` pastes the ground truth there too (every row before session 40). What
the calibration learns from an accepted frame: that its J met the goal (``--accepted-teaches bound``,
the app since session 41) or J 1 (``one``, session 40). With ``--colour-grow`` an accepted frame teaches
its labels before the grow, as the app's does (``--accepted-labels taught``, :attr:`FrameResult.taught`;
``shown``: the grown labels, session 51's rows). Each row also records where the app would first
have said "you may be done" (no frame estimated below the goal; ``done_hint``), and the table prints
the figures for a person who stops there.
Strategies:

* ``forward``: the tool before keyframes both ways (``--no-both-ways``). Frame 0 first; a
  correction re-runs forward from it to the next reference, every reference behind it in the
  context (the frames before it keep their labels).
* ``keyframes``: keyframes first, every 20th frame and the last (the ``eval --keyframes 20``
  protocol), each span filled both ways; then corrections as in ``both``.
* ``both``: frame 0 first; a correction at c in the span (a, b) re-fills the spans (a, c) and
  (c, b) both ways (:func:`annotator.core.engine.pipeline.propagate_span`, the context the app gives them,
  ``PropagationParams.span_references``); every other frame keeps its labels.

Every run is computed once, keyed by what it depends on (its ends and the references in its
context), and shared by the strategies and goals that need it (kept per sequence while the
bench runs); within runs, each pair of frames is compared once (a
:class:`~annotator.core.engine.candidates.CandidateMemo` per sequence: the same top-k candidates,
except which of values tied at the k-th place is kept); goals run one after the other (the first
goal's table is whole first). Features come from one FeatureStore per sequence (and ``--feature-cache``).
With ``--results`` every (sequence, goal, strategy) is appended to a JSON-lines file as it finishes
and skipped when the same command runs again (rows are kept apart by ``--preset``,
``--span-references``, ``--label-detail``, ``--islands``, ``--background-bias``, ``--short-side``,
``--appearance``, ``--reference-flow``, ``--flow-preset``, ``--good-frames``, ``--accepted-teaches``,
``--accepted-labels``, ``--leap``
and ``--fallback``).
``--preset`` runs the tool at another of its speed/quality presets (its working resolution too);
``--label-detail`` with labels carried at sub-cells.

    python bench/bench_effort.py ../shared/data/davis2016 --goal 0.8 0.85 0.9 --feature-cache /tmp/featcache \\
        --results effort.jsonl     # stopped? the same command continues where it stopped
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from annotator.core.analysis.diagnostics import frame_scores, frame_uncertainty
from annotator.core.analysis.suggest import FALLBACKS, Calibration, suggest_frame
from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.flow import FLOW_PRESETS
from annotator.core.engine.keyframes import Span, span_context
from annotator.core.engine.pipeline import propagate_span
from annotator.core.engine.presets import DEFAULT_PRESET, PRESETS, preset
from annotator.core.engine.propagation import (SPAN_REFERENCES, FrameResult, PropagationParams, propagate,
                                               references_behind)
from annotator.core.features.backbones import load_backbone
from annotator.core.features.store import FeatureStore
from annotator.core.io import davis
from annotator.core.io.labels import VOID, read_mask_folder
from annotator.core.runs.evaluation import keyframe_indices
from annotator.core.video import open_video


class Value(NamedTuple):
    """What the bench keeps of one propagated frame."""
    j: float  # J of its worst object against the ground truth
    u: float  # the propagation's own uncertainty (what the suggestion sees)
    labels: bytes  # its label map, zlib-compressed: an accepted frame's labels become a reference


Values = dict[int, Value]


class Runs:
    """(J, uncertainty) of every frame a run or span yields, each computed once per what it depends on."""

    def __init__(self, store: FeatureStore, gt: dict[int, np.ndarray], params: PropagationParams,
                 output_hw: tuple[int, int], cache: dict[tuple, Values] | None = None,
                 memo: CandidateMemo | None = None, frames: Callable[[int], np.ndarray] | None = None,
                 accepted_labels: str = "taught") -> None:
        self.store, self.gt, self.params = store, gt, params
        self.object_ids = [int(i) for i in np.unique(gt[min(gt)]) if 0 < i < VOID]
        self.options = dict(output_hw=output_hw, label_ids=(0, *self.object_ids), memo=memo, frames=frames)
        self.n = len(store)
        self.cache: dict[tuple, Values] = {} if cache is None else cache  # a caller's: kept across goals
        self.propagated = 0
        self.accepted_labels = accepted_labels

    def _values(self, results: Iterable[FrameResult]) -> Values:
        out: Values = {}
        for result in results:
            self.propagated += 1
            scores = frame_scores(result.labels, self.gt[result.index], self.object_ids)
            # what an acceptance hands on; the J is the shown labels'
            taught = result.labels if result.taught is None or self.accepted_labels == "shown" else result.taught
            labels = np.ascontiguousarray(taught, dtype=np.uint8)
            out[result.index] = Value(min(s.j for s in scores), frame_uncertainty(result.soft),
                                      zlib.compress(labels.tobytes(), 1))
        return out

    def _refs(self, refs: Iterable[int], accepted: Mapping[int, bytes]) -> dict[int, np.ndarray]:
        """Each reference's labels: the ground truth where it was painted, its own propagated labels
        where it was accepted."""
        shape = self.gt[min(self.gt)].shape
        return {i: np.frombuffer(zlib.decompress(accepted[i]), np.uint8).reshape(shape) if i in accepted
                else self.gt[i] for i in refs}

    @staticmethod
    def _key(context: Iterable[int], accepted: Mapping[int, bytes]) -> tuple:
        """A run's context for its cache key: an accepted reference is told apart by its labels."""
        return tuple((i, hash(accepted[i])) if i in accepted else i for i in context)

    def one_way(self, start: int, stop: int, context: list[int], refs: set[int],
                accepted: Mapping[int, bytes]) -> Values:
        """A run from reference ``start`` to ``stop`` (exclusive, the next reference or an end)."""
        key = ("run", start, stop, self._key(context, accepted))
        if key not in self.cache:
            self.cache[key] = self._values(propagate(self.store, self._refs(refs, accepted), start, stop, self.params,
                                                     context_references=context, **self.options))
        return self.cache[key]

    def span(self, first: int, last: int | None, refs: set[int], accepted: Mapping[int, bytes]) -> Values:
        """The frames after reference ``first`` up to the next (``last``; None: the end) as the app fills them."""
        rule = self.params.span_references
        if last is None:
            return self.one_way(first, self.n, span_context(sorted(refs), first, None, rule), refs, accepted)
        key = ("span", first, last, self._key(span_context(sorted(refs), first, last, rule), accepted),
               self._key(span_context(sorted(refs), last, first, rule), accepted))
        if key not in self.cache:
            self.cache[key] = self._values(propagate_span(self.store, self._refs(refs, accepted),
                                                          Span(first, last, self.n), self.params, **self.options))
        return self.cache[key]

    def forward(self, start: int, refs: set[int], accepted: Mapping[int, bytes]) -> Values:
        """The old tool's P on reference ``start``: forward to the next reference, those behind in context."""
        stop = min((r for r in refs if r > start), default=self.n)
        return self.one_way(start, stop, [start, *references_behind(refs, start, 1)], refs, accepted)


class Tool:
    """What the app shows after each correction: references and every other frame's (J, uncertainty)."""

    def __init__(self, runs: Runs, first: Iterable[int], both: bool) -> None:
        self.runs, self.both = runs, both
        self.refs: set[int] = set(first)
        self.accepted: dict[int, bytes] = {}  # references the person accepted as propagated: their labels
        if min(self.refs) != 0:
            raise ValueError("the first frames must include frame 0")
        self.values: Values = {}
        order = sorted(self.refs)
        for a, b in zip(order, [*order[1:], None]):
            self.values.update(runs.span(a, b, self.refs, self.accepted) if both
                               else runs.forward(a, self.refs, self.accepted))

    def correct(self, frame: int, accept: bool = False) -> None:
        """The person paints ``frame`` (its ground truth), or with ``accept`` takes its propagated labels as
        they are (the app's "Accept frame", R); either way it becomes a reference and P re-fills."""
        if accept:
            self.accepted[frame] = self.values[frame].labels
        self.refs.add(frame)
        self.values.pop(frame, None)
        after = min((r for r in self.refs if r > frame), default=None)
        if self.both:
            before = max(r for r in self.refs if r < frame)
            self.values.update(self.runs.span(before, frame, self.refs, self.accepted))
            self.values.update(self.runs.span(frame, after, self.refs, self.accepted))
        else:
            self.values.update(self.runs.forward(frame, self.refs, self.accepted))


class DoneHint(NamedTuple):
    """Where the annotation stood when the app would first say "you may be done": no frame estimated below
    the goal any more (the suggestion falls back to its ``fallback`` rule)."""
    painted: int  # frames painted by then (the first ones included)
    accepted: int  # frames accepted as propagated by then
    below: int  # frames then still below the goal (known from the ground truth only)
    worst_j: float  # the lowest J among them (1.0 where none)


class Annotation(NamedTuple):
    painted: list[int]  # frames whose ground truth was pasted (the first ones included)
    accepted: list[int]  # frames accepted as propagated (``good="accept"``)
    done_hint: DoneHint | None = None  # None: the app kept finding frames estimated below the goal to the end


def suggested(runs: Runs, goal: float, both: bool, first: set[int], leap: bool = False,
              fallback: str = "onset", good: str = "paint", accepted_teaches: str = "bound") -> Annotation:
    """Frames annotated when the calibrated suggestion picks each next one (``leap``: the suggestion knows
    a correction re-fills both its sides; ``fallback``: its rule when no frame is estimated below the goal).

    ``good`` is what the person does with a suggested frame that already meets the goal: ``paint`` it all
    the same (every row before session 40), or ``accept`` it as propagated (the app's "Accept frame", R:
    the frame becomes a reference with the labels it has). What the calibration learns from an accepted
    frame (``accepted_teaches``): ``bound``, that its J met the goal (the app since session 41,
    :meth:`Calibration.accept`), or ``one``, J 1 as from a correction that changed nothing (session 40).

    The person goes on until every frame meets the goal, also after the app first says that no frame is
    estimated below it ("you may be done"); where that was is returned too (``done_hint``), for a person
    who stops there.
    """
    tool = Tool(runs, first, both)
    calibration = Calibration()
    hint: DoneHint | None = None
    while True:
        values = tool.values
        below = [v.j for v in values.values() if v.j < goal]
        # the suggestion's own test for its fallback (suggest_frame, rule "target"): nothing estimated below
        if hint is None and not any(calibration.estimate_j(v.u) < goal for v in values.values()):
            hint = DoneHint(len(tool.refs) - len(tool.accepted), len(tool.accepted), len(below),
                            min(below, default=1.0))
        if not below:
            return Annotation(sorted(set(tool.refs) - set(tool.accepted)), sorted(tool.accepted), hint)
        frame = suggest_frame({f: v.u for f, v in values.items()}, tool.refs, rule="target", target=goal,
                              calibration=calibration, both_ways=both and leap,
                              fallback=fallback)
        if frame is None or frame in tool.refs:
            raise RuntimeError(f"the suggestion picked {frame!r} with references {sorted(tool.refs)}")
        j, u, _ = values[frame]
        accept = good == "accept" and j >= goal
        if not accept:
            calibration.add(u, j)  # what the person's labels reveal about the propagation there
        elif accepted_teaches == "bound":
            calibration.accept(u, goal)  # the app since session 41: J met the goal, no more is known
        else:
            calibration.add(u, 1.0)  # session 40: as a correction that changed nothing
        tool.correct(frame, accept=accept)


GOOD_FRAMES = ("accept", "paint")
ACCEPTED_TEACHES = ("bound", "one")
ACCEPTED_LABELS = ("taught", "shown")


KEYFRAME_EVERY = 20

STRATEGIES = {
    "forward": lambda r, g, **how: suggested(r, g, both=False, first={0}, **how),
    "keyframes": lambda r, g, **how: suggested(r, g, both=True,
                                               first=set(keyframe_indices(list(range(r.n)), KEYFRAME_EVERY)), **how),
    "both": lambda r, g, **how: suggested(r, g, both=True, first={0}, **how),
}


LEGACY = {"preset": "quality", "label_detail": 1, "islands": False, "background_bias": 0.0,
          "short_side": 480, "appearance": 0.0, "reference_flow": 0.0, "flow_preset": "fast", "good_frames": "paint",
          "accepted_teaches": "one", "colour_grow": False, "accepted_labels": "shown"}
"""What a row that lacks a setting ran with: rows written before the setting was recorded (the then
default preset, `quality`, one label per cell, no island pruning, bias 0, at 480, no appearance model, no
reference flow; the flow, where there was one, at DIS preset fast; suggested frames painted even where
they were good already; where they were accepted (session 40), the calibration learnt J 1 from them;
no masks grown by colour, session 50; an accepted frame handed on the labels shown, session 51)."""


def _load_rows(path: Path | None, span_references: str, settings: dict, suggestion: Callable[[str], str]
               ) -> list[dict]:
    """Rows a previous run of this bench left in ``path`` for the same span references, ``settings``
    (each key of :data:`LEGACY`) and suggestion rule."""
    if path is None or not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["span_references"] == span_references
            and all(r.get(key, LEGACY[key]) == value for key, value in settings.items())
            and r.get("suggestion", "first-onset") == suggestion(r["strategy"])]


def _suggestion(leap: bool, fallback: str, strategy: str) -> str:
    """How a row's corrections were chosen: ``leap`` (both ways past the first failing frame) or
    ``first`` (the first failing frame), then the fallback rule when no frame is estimated below the
    goal; rows from before session 35 lack it and were ``first-onset``."""
    return f"{'leap' if leap and strategy != 'forward' else 'first'}-{fallback}"


def _print_tables(rows: list[dict], names: list[str], goals: list[float], strategies: list[str]) -> None:
    for goal in goals:
        done = {(r["sequence"], r["strategy"]): r for r in rows if r["goal"] == goal}
        table = [n for n in names if any((n, s) in done for s in strategies)]
        if not table:
            continue
        print(f"\nframes painted until every frame has J >= {goal} (the first ones included; + frames accepted "
              "as propagated; - not run yet)")
        print("| sequence | frames | " + " | ".join(strategies) + " |")
        print("|" + "---|" * (len(strategies) + 2))

        def cell(row: dict) -> str:
            return f"{row['annotated']}" + (f" +{row['accepted']}" if row.get("accepted") else "")

        for n in table:
            frames = next(done[n, s]["frames"] for s in strategies if (n, s) in done)
            print(f"| {n} | {frames} | " + " | ".join(cell(done[n, s]) if (n, s) in done else "-"
                                                     for s in strategies) + " |")
        complete = [n for n in table if all((n, s) in done for s in strategies)]
        frames = sum(done[n, strategies[0]]["frames"] for n in complete)
        if complete:
            print(f"| per 100 frames ({len(complete)} sequences, {frames} frames) | 100 | "
                  + " | ".join(f"{100 * sum(done[n, s]['annotated'] for n in complete) / frames:.1f}"
                               for s in strategies) + " |")
            print("| accepted per 100 frames | 0 | "
                  + " | ".join(f"{100 * sum(done[n, s].get('accepted', 0) for n in complete) / frames:.1f}"
                               for s in strategies) + " |")
            print("| wall s | - | " + " | ".join(f"{sum(done[n, s]['seconds'] for n in complete):.0f}"
                                               for s in strategies) + " |")
            _print_done_hints(done, complete, strategies)


def _print_done_hints(done: dict, names: list[str], strategies: list[str]) -> None:
    """Lines for a person who stops when the app first says "you may be done" (rows since session 41 only;
    a row whose app never said it counts as stopping at the end)."""
    with_hint = [n for n in names if all("done_hint" in done[n, s] for s in strategies)]
    if not with_hint:
        return
    frames = sum(done[n, strategies[0]]["frames"] for n in with_hint)

    def hint(n: str, s: str) -> dict:
        row = done[n, s]
        return row["done_hint"] or {"painted": row["annotated"], "accepted": row["accepted"], "below": 0,
                                    "worst_j": 1.0}

    lines = (("painted per 100, stopping at \"you may be done\"", "painted"),
             ("accepted per 100, stopping there", "accepted"), ("frames left below the goal then, per 100", "below"))
    for text, key in lines:
        print(f"| {text} ({len(with_hint)} sequences) | - | "
              + " | ".join(f"{100 * sum(hint(n, s)[key] for n in with_hint) / frames:.1f}" for s in strategies)
              + " |")
    print("| lowest J left then | - | " + " | ".join(f"{min(hint(n, s)['worst_j'] for n in with_hint):.3f}"
                                                  for s in strategies) + " |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="DAVIS root with JPEGImages/480p and Annotations/480p (a mask on every frame)")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--goal", type=float, nargs="+", default=[0.8, 0.85, 0.9])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--span-references", choices=SPAN_REFERENCES, default=PropagationParams().span_references)
    p.add_argument("--preset", choices=list(PRESETS), default=DEFAULT_PRESET,
                   help="the speed/quality preset of the tool (default: the app's default)")
    p.add_argument("--label-detail", type=int, default=None, metavar="S",
                   help="sub-cells per feature cell side that carry labels (PropagationParams.label_detail, "
                        "the app's default unless given)")
    p.add_argument("--islands", action=argparse.BooleanOptionalAction, default=None,
                   help="prune unsupported islands (PropagationParams.islands; default: the app's)")
    p.add_argument("--background-bias", type=float, default=None, metavar="B",
                   help="added to the background's probability before the argmax (PropagationParams."
                        "background_bias; default: the preset's)")
    p.add_argument("--appearance", type=float, default=None, metavar="WEIGHT",
                   help="weight of the appearance model, 0 = off (PropagationParams.appearance; default: the preset's)")
    p.add_argument("--reference-flow", type=float, default=None, metavar="WEIGHT",
                   help="weight of the references' masks carried by optical flow, 0 = off "
                        "(PropagationParams.reference_flow; default: the preset's)")
    p.add_argument("--flow-preset", choices=FLOW_PRESETS, default=None,
                   help="DIS preset of the optical flow (PropagationParams.flow_preset; default: the app's)")
    p.add_argument("--colour-grow", action=argparse.BooleanOptionalAction, default=None,
                   help="grow masks by colour where unsure (PropagationParams.colour_grow; default: the app's)")
    p.add_argument("--short-side", type=int, default=None,
                   help="working resolution (default: the preset's; 0: the frames' own size); the preset's "
                        "radius is scaled with it, so that it reaches as far in pixels")
    p.add_argument("--leap", action=argparse.BooleanOptionalAction, default=False,
                   help="both-ways strategies: the suggestion leaps past the first failing frame "
                        "(suggest_frame's both_ways; default: the app's, the first failing frame)")
    p.add_argument("--fallback", choices=FALLBACKS, default="onset",
                   help="the suggestion's rule when no frame is estimated below the goal (default: the app's)")
    p.add_argument("--good-frames", choices=GOOD_FRAMES, default="accept",
                   help="what the simulated annotator does with a suggested frame that already meets the goal: "
                        "accept it as propagated (the app's Accept frame, R; counted apart from painted frames; "
                        "default) or paint it all the same (every row before session 40)")
    p.add_argument("--accepted-teaches", choices=ACCEPTED_TEACHES, default="bound",
                   help="what the calibration learns from an accepted frame: that its J met the goal (bound; the "
                        "app since session 41) or J 1, as from a correction that changed nothing (one; session 40)")
    p.add_argument("--accepted-labels", choices=ACCEPTED_LABELS, default="taught",
                   help="with --colour-grow, what an accepted frame teaches as a reference: its labels before "
                        "the grow (taught, FrameResult.taught: the app's) or the grown ones it shows (shown, session 51)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--feature-cache", default=None, metavar="DIR")
    p.add_argument("--memo-gib", type=float, default=3.0,
                   help="memory for the frame pairs' candidates of the sequence being run (GiB)")
    p.add_argument("--results", type=Path, default=None, metavar="JSONL",
                   help="append each (sequence, goal, strategy) here as it finishes and skip those already "
                        "there: a run stopped half-way is continued, not redone")
    args = p.parse_args()

    names = davis.list_sequences(args.root)
    if args.sequences:
        names = [n for n in names if n in args.sequences]
    chosen = preset(args.preset)
    backbone = load_backbone("lite0", device="cpu", threads=args.threads, flip=chosen.flip)
    params = chosen.apply(PropagationParams(span_references=args.span_references))
    if args.label_detail is not None:
        params = replace(params, label_detail=args.label_detail)
    if args.islands is not None:
        params = replace(params, islands=args.islands)
    if args.background_bias is not None:
        params = replace(params, background_bias=args.background_bias)
    if args.colour_grow is not None:
        params = replace(params, colour_grow=args.colour_grow)
    if args.appearance is not None:
        params = replace(params, appearance=args.appearance)
    if args.reference_flow is not None:
        params = replace(params, reference_flow=args.reference_flow)
    if args.flow_preset is not None:
        params = replace(params, flow_preset=args.flow_preset)
    short_side = chosen.short_side if args.short_side is None else args.short_side
    # the same reach in pixels, as the command line scales it (0: the frames' own size, the radius as it is)
    params = replace(params, radius=chosen.radius_at(short_side))
    print(f"preset {chosen.name}: backbone {backbone.name}, features at short side {short_side}, {params}",
          flush=True)
    settings = {"preset": chosen.name, "label_detail": params.label_detail, "islands": params.islands,
                "background_bias": params.background_bias, "short_side": short_side,
                "colour_grow": params.colour_grow,
                "appearance": params.appearance, "reference_flow": params.reference_flow,
                # without flow the preset changes nothing: such runs keep the rows' old value and match them
                "flow_preset": params.flow_preset if params.reference_flow > 0 or params.flow > 0
                else LEGACY["flow_preset"], "good_frames": args.good_frames,
                # an annotator who never accepts learns nothing from acceptances: such runs match the old rows
                "accepted_teaches": args.accepted_teaches if args.good_frames == "accept"
                else LEGACY["accepted_teaches"],
                # without a grow or without acceptances both are the same: such runs match the old rows
                "accepted_labels": args.accepted_labels if params.colour_grow and args.good_frames == "accept"
                else LEGACY["accepted_labels"]}
    assert settings.keys() == LEGACY.keys()
    rows = _load_rows(args.results, params.span_references, settings,
                      lambda strategy: _suggestion(args.leap, args.fallback, strategy))
    done = {(r["sequence"], r["goal"], r["strategy"]) for r in rows}
    t_start = time.perf_counter()
    # goal by goal, so the first goal's table is whole before the next starts; each sequence's runs
    # (a few numbers per frame) are kept for its later goals, which start from the same first fill
    caches: dict[str, dict[tuple, Values]] = {}
    # each sequence's frame pairs compared once (CandidateMemo): a correction's re-fill compares the
    # same frames again, so only its new reference's pairs are computed; one sequence's at a time
    memos: dict[str, CandidateMemo] = {}
    for goal in args.goal:
        for name in names:
            todo = [s for s in args.strategies if (name, goal, s) not in done]
            if not todo:
                continue
            gt = read_mask_folder(davis.annotations_dir(args.root, name))
            with open_video(davis.frames_dir(args.root, name)) as video:
                store = FeatureStore(video, backbone, short_side=short_side or None, disk_cache=args.feature_cache)
                if name not in memos:
                    memos.clear()
                    memos[name] = CandidateMemo(max_bytes=int(args.memo_gib * 2**30))
                results = Runs(store, gt, params, tuple(video.hw), cache=caches.setdefault(name, {}), memo=memos[name],
                               frames=video.frame, accepted_labels=settings["accepted_labels"])
                for label in todo:
                    t0 = time.perf_counter()
                    annotated, accepted, hint = STRATEGIES[label](
                        results, goal, leap=args.leap, fallback=args.fallback, good=args.good_frames,
                        accepted_teaches=args.accepted_teaches)
                    row = {"sequence": name, "frames": len(video), "goal": goal, "strategy": label,
                           "annotated": len(annotated), "frames_annotated": annotated,
                           "accepted": len(accepted), "frames_accepted": accepted,
                           "done_hint": None if hint is None
                           else {**hint._asdict(), "worst_j": round(hint.worst_j, 4)},
                           "seconds": round(time.perf_counter() - t0, 1), "span_references": params.span_references,
                           **settings, "suggestion": _suggestion(args.leap, args.fallback, label)}
                    rows.append(row)
                    if args.results is not None:
                        with args.results.open("a") as out:
                            out.write(json.dumps(row) + "\n")
                    print(f"  {name} goal {goal}: {label} {len(annotated)} frames annotated {annotated}, "
                          f"{len(accepted)} accepted {accepted} ({row['seconds']:.0f} s)", flush=True)
                store.close()
            memo = memos.get(name)
            print(f"  {name} goal {goal}: {results.propagated} frames propagated; frame pairs compared "
                  f"{memo.misses}, looked up {memo.hits}", flush=True)
    _print_tables(rows, names, args.goal, args.strategies)
    print("\n(wall s: a strategy's own time; runs shared with other strategies or goals are counted where "
          "first needed)")
    print(f"{time.perf_counter() - t_start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
