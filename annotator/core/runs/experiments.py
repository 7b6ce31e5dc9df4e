"""Propagation experiments: a record per run (settings, per-frame J and F, speed) and factor grids.

A :class:`RunRecord` is what the GUI's run list and ``annotator eval --grid`` keep of a run: the
factors it used, the per-frame per-object scores and frames/s, so that two runs can be compared
frame by frame. :func:`parse_grid` reads ``FACTOR=V1,V2,...`` sweeps and :func:`grid_points`
expands them into every combination (the ablation tables of McKee et al. 2022).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotator.core.io import davis
from annotator.core.errors import UsageError
from annotator.core.runs.evaluation import evaluate_store
from annotator.core.features.store import FeatureStore
from annotator.core.io.labels import read_mask_folder
from annotator.core.engine.flow import FLOW_PRESETS
from annotator.core.engine.part_groups import format_part_groups
from annotator.core.engine.upsampling import UPSAMPLE_MODES
from annotator.core.engine.propagation import PropagationParams
from annotator.core.runs.settings import BackboneCache, RunSettings
from annotator.core.video import open_video

__all__ = [
    "FACTORS",
    "RunRecord",
    "apply_point",
    "axis_points",
    "compare_runs",
    "dataset_means",
    "evaluate_grid",
    "grid_points",
    "markdown_table",
    "parse_grid",
    "point_settings",
]

# factor name -> (aliases, parser); params fields plus what features depend on
_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _bool(text: str) -> bool:
    try:
        return _BOOL[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


def _one_of(*choices: str) -> Callable[[str], str]:
    """A parser that accepts exactly ``choices`` (a factor whose values are names)."""
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(text)
        return text
    return parse


FACTORS: dict[str, tuple[tuple[str, ...], object]] = {
    "context": (("m", "context"), int),
    "context_stride": (("stride", "context_stride", "context-stride"), int),
    "reference_stride": (("ref_stride", "reference_stride", "reference-stride"), int),
    "topk": (("k", "topk", "top-k"), int),
    "temperature": (("tau", "t", "temperature"), float),
    "radius": (("r", "radius"), float),
    "radius_for_references": (("radius_for_references", "radius-for-references", "ref_radius"), _bool),
    "context_labels": (("context_labels", "context-labels"), _one_of("soft", "hard")),
    "upsample": (("upsample",), _one_of(*UPSAMPLE_MODES)),
    "flow": (("flow",), float),
    "label_detail": (("label_detail", "label-detail", "detail"), int),
    "anchor": (("anchor",), _bool),
    "islands": (("islands",), _bool),
    "background_bias": (("background_bias", "background-bias", "bias"), float),
    "appearance": (("appearance",), float),
    "reference_flow": (("reference_flow", "reference-flow", "ref_flow"), float),
    "flow_preset": (("flow_preset", "flow-preset"), _one_of(*FLOW_PRESETS)),
    "colour_grow": (("colour_grow", "colour-grow", "grow"), _bool),
    "short_side": (("short_side", "short-side", "resolution", "res"), int),
    "backbone": (("backbone",), str),
    "stage": (("stage",), str),
}
_ALIASES = {alias: name for name, (aliases, _) in FACTORS.items() for alias in aliases}
FEATURE_FACTORS = frozenset({"short_side", "backbone", "stage"})
"""Factors that change the features (a new FeatureStore); the others only change propagation."""


def parse_grid(specs: Iterable[str]) -> dict[str, list]:
    """``["m=5,20", "tau=0.01,0.05"]`` -> ``{"context": [5, 20], "temperature": [0.01, 0.05]}`` (order kept)."""
    grid: dict[str, list] = {}
    for spec in specs:
        key, eq, values = spec.partition("=")
        name = _ALIASES.get(key.strip().lower().replace(" ", ""))
        if not eq or name is None:
            raise UsageError(f"--grid {spec!r}: expected FACTOR=V1,V2,... with FACTOR one of {', '.join(FACTORS)}")
        parse = FACTORS[name][1]
        try:
            parsed = [parse(v.strip()) for v in values.split(",") if v.strip()]  # type: ignore[operator]
        except ValueError as exc:
            raise UsageError(f"--grid {spec!r}: {exc.args[0]!r} is not a valid value for {name}") from None
        if not parsed:
            raise UsageError(f"--grid {spec!r}: give at least one value")
        if name in grid:
            raise UsageError(f"--grid names {name} twice")
        grid[name] = parsed
    return grid


def grid_points(grid: Mapping[str, Sequence]) -> list[dict]:
    """Every combination of the grid's values, the last factor varying fastest."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def axis_points(grid: Mapping[str, Sequence], base: Mapping[str, object]) -> list[dict]:
    """One factor at a time (the paper's ablations): the base point, then each factor's other values.

    ``base`` holds the value of every grid factor in the reference settings; each point sets every
    grid factor (the base value where it is not the one varied), so all rows fill every column.
    """
    first = {name: base[name] for name in grid}
    points = [first]
    for name, values in grid.items():
        for value in values:
            if value != first[name]:
                points.append({**first, name: value})
    return points


def apply_point(params: PropagationParams, point: Mapping[str, object]) -> PropagationParams:
    """``params`` with the propagation factors of a grid point replaced (feature factors ignored)."""
    changes = {k: v for k, v in point.items() if k not in FEATURE_FACTORS}
    new = dataclasses.replace(params, **changes)
    new.validate()
    return new


@dataclass
class RunRecord:
    """One propagation run: its settings, per-frame per-object J and F, and its speed."""

    name: str
    settings: dict
    """Backbone, working resolution and the propagation factors, flat (for tables)."""
    object_ids: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    J: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """(objects, frames) region similarity."""
    F: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """(objects, frames) boundary accuracy."""
    n_frames: int = 0
    """Frames the run propagated."""
    seconds: float = 0.0

    @classmethod
    def from_curves(cls, name: str, settings: Mapping[str, object],
                    curves: Mapping[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                    n_frames: int = 0, seconds: float = 0.0) -> RunRecord:
        """Build from ``{object id: (frames, J, F)}`` (what :class:`GroundTruthTracker.curves` returns)."""
        ids = tuple(sorted(curves))
        frames = tuple(int(f) for f in curves[ids[0]][0]) if ids else ()
        j = np.array([curves[i][1] for i in ids], dtype=np.float64).reshape(len(ids), len(frames))
        f = np.array([curves[i][2] for i in ids], dtype=np.float64).reshape(len(ids), len(frames))
        return cls(name, dict(settings), ids, frames, j, f, n_frames, seconds)

    @property
    def fps(self) -> float:
        return self.n_frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def j_mean(self) -> float:
        return float(np.mean(self.J.mean(axis=1))) if self.J.size else float("nan")

    @property
    def f_mean(self) -> float:
        return float(np.mean(self.F.mean(axis=1))) if self.F.size else float("nan")

    @property
    def jf(self) -> float:
        return (self.j_mean + self.f_mean) / 2

    def jf_per_frame(self) -> np.ndarray:
        """(frames,) J&F of each frame, averaged over objects."""
        if not self.J.size:
            return np.zeros(0)
        return ((self.J + self.F) / 2).mean(axis=0)

    def describe(self) -> str:
        """Settings in one short line, e.g. ``lite0 480p m=20 k=10 tau=0.05 r=12``."""
        s = self.settings
        parts = [str(s.get("backbone", "?"))]
        if s.get("short_side") is not None:
            parts.append(f"{s['short_side']}p" if s["short_side"] else "orig")
        for key, short in (("context", "m"), ("context_stride", "stride"), ("reference_stride", "ref stride"),
                           ("topk", "k"), ("temperature", "tau"), ("radius", "r")):
            if key in s:
                parts.append(f"{short}={s[key]:g}")
        if s.get("radius_for_references") is False:
            parts.append("global refs")
        if s.get("part_groups"):
            parts.append(f"groups={format_part_groups(s['part_groups'])}")
        return " ".join(parts)


def compare_runs(a: RunRecord, b: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """Frames both runs scored and the frame-by-frame difference of J&F, ``b - a``."""
    common = sorted(set(a.frames) & set(b.frames))
    ia = {f: k for k, f in enumerate(a.frames)}
    ib = {f: k for k, f in enumerate(b.frames)}
    ja, jb = a.jf_per_frame(), b.jf_per_frame()
    diff = np.array([jb[ib[f]] - ja[ia[f]] for f in common], dtype=np.float64)
    return np.array(common, dtype=np.int64), diff


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A markdown table; floats with 3 decimals, numeric columns after the first right-aligned."""
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    numeric = [i > 0 and all(isinstance(r.get(c), (int, float)) for r in rows) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if numeric[i] else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(values, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(columns)), sep, *(line(r) for r in cells)])


def dataset_means(records: Sequence[RunRecord]) -> dict[str, float]:
    """J, F, J&F over several sequences (every object of every sequence weighs the same) and frames/s."""
    if not records:
        return {"J": float("nan"), "F": float("nan"), "J&F": float("nan"), "frames/s": float("nan")}
    j = float(np.mean(np.concatenate([r.J.mean(axis=1) for r in records])))
    f = float(np.mean(np.concatenate([r.F.mean(axis=1) for r in records])))
    frames, seconds = sum(r.n_frames for r in records), sum(r.seconds for r in records)
    return {"J": j, "F": f, "J&F": (j + f) / 2, "frames/s": frames / seconds if seconds > 0 else float("nan")}


def evaluate_grid(root: str | Path, names: Sequence[str], points: Sequence[Mapping[str, object]],
                  settings: RunSettings, *, resolution: str = "480p", keyframes: int | None = None,
                  on_frame: Callable[[int], None] | None = None,
                  backbones: BackboneCache | None = None) -> list[list[RunRecord]]:
    """Propagate every DAVIS sequence of ``names`` once per grid point and score it, as ``annotator eval``
    does (:func:`annotator.core.runs.evaluation.evaluate_store`: from the first mask, or with ``keyframes``).

    ``settings`` holds the values of the factors a point does not set. Returns one list of
    :class:`RunRecord` (one per sequence) per point. Points that share the backbone, stage and
    working resolution share one FeatureStore per sequence, so a sweep over the propagation
    factors computes each frame's features once. So that frames/s stays comparable between
    points, a run's time is its propagation time plus the mean feature time per frame times the
    frames it used, whichever point happened to compute them.
    """
    results: list[list[RunRecord]] = [[] for _ in points]
    backbones = backbones if backbones is not None else BackboneCache()
    settings_of = [point_settings(settings, p) for p in points]  # bad values fail before any work
    for name in names:
        gt = read_mask_folder(davis.annotations_dir(root, name, resolution))
        with open_video(davis.frames_dir(root, name, resolution)) as video:
            stores: dict[tuple, FeatureStore] = {}
            for k, point_set in enumerate(settings_of):
                store = stores.get(point_set.feature_key())
                if store is None:
                    store = stores[point_set.feature_key()] = FeatureStore(
                        video, backbones(point_set), short_side=point_set.short_side, disk_cache=point_set.feature_cache)
                feature_time = sum(store.timings.values())
                run = evaluate_store(store, gt, point_set.params, name=name, keyframes=keyframes, on_frame=on_frame)
                propagation = run.seconds - (sum(store.timings.values()) - feature_time)
                per_frame = sum(store.timings.values()) / max(store.computed, 1)
                scores = run.scores
                record_settings = {"backbone": getattr(store.backbone, "name", point_set.backbone),
                                   "short_side": point_set.short_side or 0, **dataclasses.asdict(point_set.params)}
                results[k].append(RunRecord(name, record_settings, scores.object_ids, scores.frames, scores.J,
                                            scores.F, run.frames, propagation + per_frame * len(video)))
    return results


def point_settings(settings: RunSettings, point: Mapping[str, object]) -> RunSettings:
    """``settings`` with the factors of a grid point replaced (the feature factors too)."""
    features = {k: v for k, v in point.items() if k in FEATURE_FACTORS}
    if "short_side" in features:
        features["short_side"] = int(features["short_side"]) or None  # type: ignore[call-overload]
    return dataclasses.replace(settings, params=apply_point(settings.params, point), **features)
