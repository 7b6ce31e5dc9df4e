"""Training-free dense label propagation (CRW / DINO / McKee et al. 2022), one generator for all front ends.

For target frame t the context is every reference frame already passed plus the last ``m``
frames propagated in this run, each with a feature map (C, h, w) and labels on the feature grid
(L, h, w). Each target cell is compared (dot product of L2-normalised features) with the context
cells inside a circular radius, the top-k affinities over the whole context are softmaxed with
temperature tau, and they weight the context labels. The soft result is upsampled bilinearly and
argmaxed (object first, then part, where ``part_groups`` are given).

Two implementations compute the same numbers:

* :func:`propagate_frame` tiles the target grid and compares each tile only with the context
  window around it, so memory is bounded by the tile size and the context, never by ``(h*w)**2``;
  on a CPU a compiled running top-k (:mod:`annotator.core.engine.topk_select`) reads only the candidates
  inside the radius, elsewhere torch's ``topk`` per context frame is merged
  (:func:`propagate_frame_torch`);
* :func:`propagate_frame_naive` builds the full affinity matrix as the CRW and DINO evaluation
  scripts do; tests and benchmarks use it as the reference.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from annotator.core.errors import UsageError
from annotator.core.engine.appearance import AppearanceModel, fuse_appearance
from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.flow import FLOW_PRESETS, FlowCue, FlowPreset
from annotator.core.engine.islands import prune_islands
from annotator.core.io.labels import VOID
from annotator.core.engine.part_groups import PartGroups, check_part_groups
from annotator.core.engine.topk_select import RunningTopK
from annotator.core.engine.upsampling import UPSAMPLE_MODES, UpsampleMode, soft_to_label_maps

ContextLabels = Literal["soft", "hard"]
Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")
Fusion = Literal["distance", "confidence", "match"]
FUSIONS: tuple[str, ...] = ("distance", "confidence", "match")
SpanReferences = Literal["ends", "behind", "earlier", "all"]
SPAN_REFERENCES: tuple[str, ...] = ("ends", "behind", "earlier", "all")
MAX_LABEL_DETAIL = 8
"""Sub-cells per cell side at most: 8 is one per pixel at stride 8."""
REFERENCE_FLOW_MIN = 0.05
"""``PropagationParams.reference_flow`` weights below this skip the flow (its cost, ~2 DIS flows a frame)."""


@dataclass(frozen=True)
class PropagationParams:
    """The implementation factors of label propagation; defaults are CRW's except where measured better
    (radius, references compared globally)."""

    context: int = 20
    """m: how many of the most recent propagated frames join the context."""
    context_stride: int = 1
    """Spacing of those m frames: t-1, t-1-s, t-1-2s, ... (1 = the m frames just before t, as in CRW).
    With s > 1 the context spans m*s frames for the cost of m."""
    topk: int = 10
    """k: affinities kept per target cell, over the whole context."""
    temperature: float = 0.05
    """tau: softmax temperature applied to the kept affinities."""
    radius: float = 20.0
    """Spatial radius in feature cells; a context cell counts when its distance is <= radius. It reaches
    as far in pixels as 16 cells did at the former working size of 480 (20 at the default 600,
    :data:`annotator.core.video.DEFAULT_SHORT_SIDE`: scale it with the working size). 16 at 480, not
    CRW's 12, by measurement on ../shared/data/davis2016 (bench/RESULTS.md): with global references
    and mirror features 0.802 mean J&F at 16 against 0.799 at 12; without mirror features 0.786 vs 0.782."""
    radius_for_references: bool = False
    """Whether reference frames are also restricted to the radius (False: whole frame). Off by
    measurement: comparing the first frame over its whole extent gave +0.020 mean J&F on
    ../shared/data/davis2016 at about the same speed (bench/RESULTS.md, factor sweep)."""
    reference_stride: int = 1
    """Whole-frame references (``radius_for_references`` off) are compared at every cell inside the
    radius and, outside it, at every s-th cell of every s-th row (1 = every cell). A speed factor:
    the comparison with a whole reference is a (h*w)^2 matmul, s=2 makes its far part 4x smaller."""
    context_labels: ContextLabels = "soft"
    """Labels a propagated frame brings to the context: its soft labels or its one-hot argmax."""
    upsample: UpsampleMode = "bilinear"
    """How soft labels reach image size: bilinear (CRW, DINO) or guided by the frame's edges."""
    precision: Precision = "auto"
    """Dtype of the affinity matmuls. "auto" is bfloat16 on a CPU that computes it natively
    (AVX512-BF16/AMX) and float32 elsewhere: on ../shared/data/davis2016 bfloat16 (with bfloat16
    features) gave the same mean J&F as float32, 0.762 (bench/RESULTS.md), at 1.3x the matmul speed."""
    tile: int = 12
    """Side of the target tiles of the local-window engine (speed only; results do not change)."""
    flow: float = 0.0
    """Weight in [0, 1] of the optical-flow cue (:mod:`annotator.core.engine.flow`) mixed into each frame's
    soft labels where forward and backward flow agree; 0 = off (features only)."""
    flow_preset: FlowPreset = "medium"
    """OpenCV DIS preset of the optical flow that ``flow`` and ``reference_flow`` use: ``ultrafast``,
    ``fast``, ``medium`` (finer flow, ~3x the time of ``fast``) or ``fine`` (``medium`` down to full
    resolution, ~5x its time). ``medium`` by measurement on
    ../shared/data/davis2016 (bench/RESULTS.md): with the reference flow a simulated annotator painted
    13.1 / 23.9 frames per 100 on the two halves against 16.7 / 24.4 with ``fast``; keyframes every 20
    frames +0.002 J&F on each half, from frame 0 the same."""
    both_ways: bool = True
    """Frames between two references are propagated from both and fused (:mod:`annotator.core.engine.keyframes`);
    False: each run looks only at the references behind it (frames before the next keyframe ignore it)."""
    fusion: Fusion = "distance"
    """How the two directions of a span are fused (:func:`annotator.core.engine.keyframes.fuse`): ``distance``
    weights, ``confidence`` (distance weights times each direction's top-2 margin, per cell) or
    ``match`` (distance weights times how well each run matched each cell). With both keyframes in
    each run's context the three gave the same mean J&F on ../shared/data/davis2016 at K=20 (0.854
    on the original ten, 0.847-0.846 on the ten added later; bench/RESULTS.md): the simplest is the default."""
    span_references: SpanReferences = "earlier"
    """The references in the context of a keyframe run (:func:`annotator.core.engine.keyframes.span_context`):
    ``ends``, the keyframes of its span only; ``behind``, those and every reference behind the run's
    start (what a one-way run holds, plus the keyframe ahead); ``earlier``, the span's keyframes and
    every reference earlier in the video, for both runs; ``all``, every reference of the video.
    ``earlier`` by measurement on ../shared/data/davis2016 at K=20 (bench/RESULTS.md): 0.861 mean J&F
    against 0.859 for ``behind`` and 0.851 for ``ends`` (original ten 0.858 / 0.854 / 0.854, ten added
    later 0.864 / 0.864 / 0.847), and the only rule with no sequence below forward only (``behind``
    gave the backward runs the later keyframes and lost drift-turn, 0.918 -> 0.884; ``ends`` lost
    bmx-bumps, 0.775 -> 0.618, where the earlier keyframes carry the result)."""
    label_detail: int = 8
    """S: each feature cell carries its labels as an S x S block of sub-cells, and a target cell takes
    the blocks of the context cells it matches (patch label transfer), so a propagated mask keeps
    detail finer than the stride-8 grid (thin parts, boundaries); 1 = one label per cell (CRW,
    DINO). The affinities, the engine's cost, do not change; the labels' channels grow S*S-fold.
    Results' soft labels are on the grid of sub-cells (S times the feature grid). 8 with ``islands``
    by measurement on ../shared/data/davis2016 (bench/RESULTS.md): against S = 1 without islands,
    first frame +0.020 mean J&F on the original ten and +0.003 on the ten added later, keyframes every
    20 frames +0.034 and +0.014 (kite-walk +0.118, boat +0.062). Alone, S = 8 lost on the ten added
    later (hike -0.056: a wrong match copies a crisp wrong block, which ``islands`` prunes). With
    ``islands`` it cost 7% more propagation time on boat; the ``balanced`` and ``fast`` presets keep S = 1."""
    anchor: bool = False
    """Anchor each frame to the references: the labels the reference frames alone give (their own top-k)
    are mixed into the whole context's with the share sigmoid(m_ref - m_all), m the log-sum-exp of a
    cell's kept affinities over tau (:func:`_anchored`). A reference that matches a cell about as well as
    the recent frames do gets an equal say however many recent frames there are; where the recent
    frames match far better (the object changed its look) they keep the cell. It stops errors that
    the recent frames hand on from growing frame after frame (drift). Not a default by measurement on
    ../shared/data/davis2016 (bench/RESULTS.md): +0.005 mean J&F on the original ten, +0.002 on the
    ten added later, with hike +0.083 and hockey +0.070 (drift) against motocross-bumps -0.069 and
    mallard-fly -0.039 (the object no longer looks as it did in the references)."""
    appearance: float = 0.0
    """Weight of the appearance model (:mod:`annotator.core.engine.appearance`): a linear classifier of
    labels from features, fitted on the run's reference frames, whose evidence for an object (its
    log-odds against the background, where positive) times this weight is added to the log of that
    object's soft labels in each frame's result; 0 = off. Frames propagated one way only (from the
    first reference, after the last, before the first): the keyframe fill between two references
    runs without it (:func:`annotator.core.engine.keyframes.fill_span`). The frame hands its
    unchanged soft labels on to the context: fed back, the model's errors grew frame after frame
    (boat 0.881 -> 0.815). Measured on ../shared/data/davis2016 (bench/RESULTS.md): at 0.5, from
    frame 0, +0.005 mean J&F on the original ten and +0.010 on the ten added later (hockey +0.054,
    mallard-fly +0.027; hike -0.017); between keyframes 20 frames apart it lost (0.895 -> 0.888,
    0.881 -> 0.880). Off by default: in the effort bench (a simulated annotator correcting the
    suggested frames until every frame has J >= 0.8) it cost more corrections on both halves
    (dance-jump 30 -> 41, mallard-fly 50 -> 59, drift-turn 19 -> 25)."""
    islands: bool = True
    """Prune unsupported islands (:mod:`annotator.core.engine.islands`): every detached island of an object's
    label but its largest is asked of the reference frames alone, and takes their labels where they
    do not give it that label, before the frame joins the context. Stops a patch of background that
    took the object's label once from keeping it for the rest of the run (DAVIS hike 0.807 -> 0.866).
    The islands are those of the label map the frame is drawn as (``background_bias`` added).
    The references' answer is their own top-k, which the engine's selection holds anyway (no extra
    matmul). On by default with ``label_detail`` 8, whose crisp wrong blocks it removes."""
    background_bias: float = -0.1
    """Added to the background's probability before each pixel takes its most probable label, in the label
    maps and in the islands ``islands`` looks for (the soft labels and the context are not biased).
    Below 0 masks grow: with one object a pixel is the object where its probability exceeds (1 + b) / 2.
    Propagated masks come out too small (the background, the larger label, outweighs the object in
    the top-k of cells near its outline). -0.1 since session 31 (+0.008 / +0.006 mean J&F on the two
    halves of ../shared/data/davis2016 from frame 0). -0.2 (session 47, with the islands found in the
    biased label map) gave more from frame 0 (0.855 / 0.814 against 0.851 / 0.806) but a simulated
    annotator painted more frames at it (bench/bench_effort.py, goal J >= 0.8: 13.1 against 10.8 per 100
    on all 20, more on both halves; paragliding 3 -> 10, stroller 1 -> 9, bmx-bumps 31 -> 39), probably
    because next to a painted frame the grown masks spill. So -0.1 again since session 48
    (bench/RESULTS.md). Costs nothing measurable."""
    reference_flow: float = 0.75
    """Weight of the reference's own mask carried by optical flow: each frame a run propagates is mixed
    with the mask of the reference the run started from (or the last it passed), warped onto it by
    dense flow computed between the two frames directly (:class:`annotator.core.engine.flow.FlowCue`:
    no chain of warps, pixel-exact outlines, the cells whose flow fails the forward-backward check
    keep the features' labels). The weight falls with the distance d in frames, ``reference_flow / d``,
    and frames where it is below ``REFERENCE_FLOW_MIN`` skip the flow. Only the frame's result takes
    the mix (and, between two references, the fusion of the two runs); the context keeps the
    features' labels: fed back, a flow error near the reference stayed for the rest of the run
    (DAVIS motocross-bumps from frame 0 at 0.75: 0.807 -> 0.572; output only 0.806). Measured on
    ../shared/data/davis2016 at 0.75 (bench/RESULTS.md): a simulated annotator painted 16.7 / 24.4
    frames per 100 on the two halves against 17.9 / 26.7; keyframes every 20 frames +0.005 / +0.004
    J&F; from frame 0 +0.001 / +0.001 (W chosen on the original ten, confirmed on the ten added later),
    ~32 ms a frame averaged over a 60-frame run from frame 0 with ``flow_preset`` medium (~125 ms a
    frame that takes the mix; ``fast``: 14 and ~55). It needs the frames: ``propagate`` refuses
    features alone (tensors with no ``frames=``) with a message; pass ``reference_flow=0`` there."""
    colour_grow: bool = True
    """Grow each object's mask by colour where its soft labels are unsure: a graph cut (OpenCV grabCut)
    in the box around the pixels whose probability lies between 0.03 and 0.97, of which only pixels the
    label map gives the background are taken (:mod:`annotator.core.engine.colour_grow`); a mask never
    shrinks. Output only: the context keeps the soft labels, and a frame accepted as it was teaches its
    map before the grow (:attr:`FrameResult.taught`). Needs the frames: ``propagate`` refuses features
    alone (tensors with no ``frames=``) with a message; pass ``colour_grow=False`` there. Measured on
    ../shared/data/davis2016 from frame 0 (bench/RESULTS.md, session 50): 0.866 against 0.851 on the
    original ten, 0.827 against 0.805 on the ten added later (hockey +0.096, motocross-bumps +0.064,
    mallard-fly +0.050; boat -0.059 where spray has the boat's colours), about 0.46 s a frame on 2
    cores at 854 x 480. On by default since session 53: with accepted frames teaching their maps before
    the grow, a simulated annotator (bench/bench_effort.py) painted fewer frames with it on both halves
    (painted per 100 frames: original ten 6.4 -> 5.0, ten added later 14.3 -> 13.6; bmx-bumps 31 -> 33,
    kite-walk 9 -> 5; accepted as they were: more); in session 51, when accepted frames taught the grown masks, it painted more."""
    part_groups: PartGroups = ()
    """Groups of object ids that are parts of one whole (:mod:`annotator.core.engine.part_groups`): a pixel
    goes to the group whose parts' summed probability wins, then to its most probable part. Only the
    label maps change (soft labels stay per part); ids absent from a run are ignored; () = plain argmax."""

    def validate(self) -> None:
        """Raise :class:`UsageError` with a one-line message for impossible values."""
        if self.context < 0:
            raise UsageError(f"context length m must be >= 0, got {self.context}")
        if self.context_stride < 1:
            raise UsageError(f"context stride must be >= 1, got {self.context_stride}")
        if self.reference_stride < 1:
            raise UsageError(f"reference stride must be >= 1, got {self.reference_stride}")
        if self.topk < 1:
            raise UsageError(f"top-k must be >= 1, got {self.topk}")
        if not self.temperature > 0:
            raise UsageError(f"temperature must be > 0, got {self.temperature}")
        if not self.radius >= 0:
            raise UsageError(f"radius must be >= 0 feature cells, got {self.radius}")
        if self.tile < 1:
            raise UsageError(f"tile must be >= 1, got {self.tile}")
        if not -1 < self.background_bias < 1:
            raise UsageError(f"background bias must be between -1 and 1 (exclusive), got {self.background_bias}")
        if not 1 <= self.label_detail <= MAX_LABEL_DETAIL:
            raise UsageError(f"label detail must be between 1 and {MAX_LABEL_DETAIL} sub-cells per cell side, "
                             f"got {self.label_detail}")
        if self.upsample not in UPSAMPLE_MODES:
            raise UsageError(f"upsampling must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.context_labels not in ("soft", "hard"):
            raise UsageError(f"context labels must be 'soft' or 'hard', got {self.context_labels!r}")
        if not self.appearance >= 0:
            raise UsageError(f"appearance weight must be >= 0, got {self.appearance}")
        if not 0 <= self.flow <= 1:
            raise UsageError(f"flow weight must be between 0 and 1, got {self.flow}")
        if not 0 <= self.reference_flow <= 1:
            raise UsageError(f"reference flow weight must be between 0 and 1, got {self.reference_flow}")
        if self.flow_preset not in FLOW_PRESETS:
            raise UsageError(f"flow preset must be one of {', '.join(FLOW_PRESETS)}, got {self.flow_preset!r}")
        if self.fusion not in FUSIONS:
            raise UsageError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.span_references not in SPAN_REFERENCES:
            raise UsageError(f"span references must be one of {', '.join(SPAN_REFERENCES)}, got {self.span_references!r}")
        check_part_groups(self.part_groups)


@dataclass(frozen=True)
class ContextFrame:
    """One frame of the context: its features (C, h, w), labels (L, h, w) and whether the radius applies."""

    index: int
    features: torch.Tensor
    labels: torch.Tensor
    local: bool
    reference: bool = False
    """A frame a person labelled (what ``PropagationParams.anchor`` anchors to), not a propagated one."""
    windows: dict = field(default_factory=dict, compare=False, repr=False)
    """The context windows of features and labels for one tile layout, gathered once per context frame."""


@dataclass(frozen=True)
class FrameResult:
    """What propagation produced for one frame."""

    index: int
    labels: np.ndarray
    """(H, W) uint8 label map at the run's output size (object ids, not channels)."""
    soft: torch.Tensor
    """(L, h, w) float32 probabilities on the label grid (the feature grid, times ``label_detail``
    per side), on the CPU; channel j is label_ids[j]."""
    label_ids: tuple[int, ...]
    keyframes: int = 1
    """From how many keyframes the labels came: 1 = one direction, 2 = fused from both ends of a span."""
    provisional: bool = False
    """One direction of a span that is still to be fused (shown while the run goes on, then replaced)."""
    match: torch.Tensor | None = None
    """(h, w) match strength of each cell, log(sum(exp(a / tau))) over its kept affinities a (when asked)."""
    taught: np.ndarray | None = None
    """The label map before the colour grow (``PropagationParams.colour_grow``), when the grow changed
    it: what the frame teaches when a person accepts it as a reference as it is. The grow is output
    only (the context keeps the soft labels), so an accepted frame must not hand its grown pixels on
    either: a grow taught to the next frames is grown again there, and the spill compounds
    (session 52: the ``accepted_labels`` rows of bench/results/effort.jsonl). None: ``labels`` is what it teaches."""


# --------------------------------------------------------------------------------------------
# label maps <-> label tensors on the feature grid


def label_ids_of(label_maps: Sequence[np.ndarray]) -> tuple[int, ...]:
    """Background (0) followed by every object id present in ``label_maps``, sorted."""
    ids: set[int] = set()
    for labels in label_maps:
        ids.update(int(v) for v in np.unique(labels))
    ids.discard(0)
    ids.discard(VOID)
    return (0, *sorted(ids))


def labels_to_grid(labels: np.ndarray, label_ids: Sequence[int], grid_hw: tuple[int, int],
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """One-hot (L, h, w) of a label map, area-averaged onto the feature grid; void pixels count for no label."""
    lut = np.full(256, -1, dtype=np.int64)
    lut[np.asarray(label_ids, dtype=np.int64)] = np.arange(len(label_ids))
    channels = torch.from_numpy(lut[labels]).to(device)  # (H, W), -1 for void / unknown
    valid = (channels >= 0).float()
    one_hot = F.one_hot(channels.clamp(min=0), len(label_ids)).permute(2, 0, 1).float() * valid  # (L, H, W)
    return F.adaptive_avg_pool2d(one_hot[None], grid_hw)[0]  # (L, h, w)


def pack_labels(labels: torch.Tensor, detail: int) -> torch.Tensor:
    """Labels on the sub-cell grid (L, h*S, w*S) -> one channel per label and sub-cell (L*S*S, h, w),
    the shape the engine weighs (a context cell's whole block travels with it)."""
    return labels if detail == 1 else F.pixel_unshuffle(labels[None], detail)[0]


def unpack_labels(packed: torch.Tensor, detail: int) -> torch.Tensor:
    """The inverse of :func:`pack_labels`: (L*S*S, h, w) -> (L, h*S, w*S)."""
    return packed if detail == 1 else F.pixel_shuffle(packed[None], detail)[0]


# --------------------------------------------------------------------------------------------
# one frame


def _select_topk(values: list[torch.Tensor], labels: list[torch.Tensor], k: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest of the per-frame candidates: values [(P, k_i)], labels [(P, k_i, L)] -> (P, k), (P, k, L).

    The top-k of a union is the top-k of the union of each part's top-k, so per-frame top-k
    followed by one selection here equals top-k over the whole context.
    """
    all_values, all_labels = torch.cat(values, dim=1), torch.cat(labels, dim=1)
    if all_values.shape[1] <= k:
        return all_values, all_labels
    top, idx = all_values.topk(k, dim=1)  # (P, k)
    return top, torch.gather(all_labels, 1, idx[..., None].expand(-1, -1, all_labels.shape[2]))


def _match_strength(values: torch.Tensor, temperature: float, hw: tuple[int, int], out: torch.Tensor | None) -> None:
    """Write log(sum(exp(a / tau))) of the kept affinities (P, k) of each cell into ``out`` (h, w).

    How well the cell found itself in the context: the normaliser of its softmax. Two runs' labels
    of a cell weighted by exp of it are what one softmax over both runs' candidates gives
    (:func:`annotator.core.engine.keyframes.fuse`)."""
    if out is not None:
        out.copy_(torch.logsumexp(values.float() / temperature, dim=1).reshape(hw))


def _weighted_labels(values: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax of the kept affinities (P, k) over k, weighting their labels (P, k, L) -> (P, L)."""
    weights = torch.softmax(values.float() / temperature, dim=1)  # (P, k)
    return torch.einsum("pk,pkl->pl", weights, labels.float())


def _anchored(values: torch.Tensor, labels: torch.Tensor, ref_values: torch.Tensor, ref_labels: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """Labels (P, L) of the whole context's top-k (values (P, k), labels (P, k, L)) mixed with those of
    the references' own top-k: share a = sigmoid(m_ref - m_all) for the references, m = log-sum-exp of
    the kept affinities over tau (``PropagationParams.anchor``).

    The whole context's top-k holds the references' best candidates too, so m_all >= m_ref and a <= 1/2:
    a half share when the references match the cell as well as anything in the context, falling
    towards none as the recent frames match better."""
    mixed = _weighted_labels(values, labels, temperature)
    own = _reference_labels(ref_values, ref_labels, temperature)  # no candidate: a = 0 below
    m_all = torch.logsumexp(values.float() / temperature, dim=1)
    m_ref = torch.logsumexp(ref_values.float() / temperature, dim=1)
    share = torch.sigmoid(m_ref - m_all)[:, None]
    return share * own + (1 - share) * mixed


def _reference_labels(ref_values: torch.Tensor, ref_labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Labels (P, L) of the references' own top-k (values (P, k), labels (P, k, L)); zeros for a cell
    without a reference candidate (its softmax over -inf alone is NaN)."""
    return _weighted_labels(ref_values, ref_labels, temperature).nan_to_num(0.0)


def _references_alone(ref_values: torch.Tensor, ref_labels: torch.Tensor, temperature: float,
                      out: torch.Tensor) -> None:
    """Write :func:`_reference_labels` (raster order) into ``out`` (L, h, w)."""
    out.copy_(_reference_labels(ref_values, ref_labels, temperature).T.reshape(out.shape))


def _anchoring(context: Sequence[ContextFrame], params: PropagationParams) -> bool:
    """Whether this context's labels are anchored: asked for, and both references and propagated frames in it."""
    return params.anchor and any(f.reference for f in context) and not all(f.reference for f in context)


def _reference_slots(context: Sequence[ContextFrame]) -> list[int]:
    """Positions of the reference frames in ``context``."""
    return [slot for slot, frame in enumerate(context) if frame.reference]


class _TileLayout:
    """Geometry of the local-window engine for one grid size: target tiles and their context windows.

    Target cells are grouped in tiles of T x T; each tile is compared with the S x S context window
    around it (S = T + 2R, R = floor(radius)). The CPU engine skips candidates outside the radius or
    outside the frame as it selects; the torch engine adds a bias of -inf to them instead.
    """

    def __init__(self, hw: tuple[int, int], tile: int, radius: float, device: torch.device) -> None:
        self.h, self.w = hw
        self.radius, self.device = radius, device
        self.tile, self.half = tile, int(math.floor(radius))
        self.side = tile + 2 * self.half
        self.rows, self.cols = math.ceil(self.h / tile), math.ceil(self.w / tile)
        self.pad_h, self.pad_w = self.rows * tile - self.h, self.cols * tile - self.w
        self._bias_by_dtype: dict[torch.dtype, torch.Tensor] = {}

    def bias_as(self, dtype: torch.dtype) -> torch.Tensor:
        """The (n, T*T, S*S) bias in ``dtype``, built once per dtype (it is as large as every tile's
        affinities, so only the torch engine, which needs it, builds it)."""
        if dtype not in self._bias_by_dtype:
            tile, device = self.tile, self.device
            t, s = torch.arange(tile, device=device), torch.arange(self.side, device=device)
            dy = s.view(1, 1, -1, 1) - self.half - t.view(-1, 1, 1, 1)  # (T, 1, S, 1)
            dx = s.view(1, 1, 1, -1) - self.half - t.view(1, -1, 1, 1)  # (1, T, 1, S)
            in_radius = ((dy * dy + dx * dx) <= self.radius * self.radius).reshape(tile * tile, self.side * self.side)
            inside = self.windows(torch.ones((1, self.h, self.w), device=device)) > 0  # (n, S*S, 1)
            allowed = in_radius[None] & inside.transpose(1, 2)  # (n, T*T, S*S)
            bias = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
            self._bias_by_dtype[dtype] = bias.to(dtype)
        return self._bias_by_dtype[dtype]

    def tiles(self, x: torch.Tensor) -> torch.Tensor:
        """(D, h, w) -> (n, T*T, D) cells of each tile."""
        d, t = x.shape[0], self.tile
        x = F.pad(x, (0, self.pad_w, 0, self.pad_h))
        return x.reshape(d, self.rows, t, self.cols, t).permute(1, 3, 2, 4, 0).reshape(-1, t * t, d)

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        """(D, h, w) -> (Hp, Wp, D) channels-last, zero-padded so that every tile's window fits."""
        out = x.new_zeros((self.rows * self.tile + 2 * self.half, self.cols * self.tile + 2 * self.half, x.shape[0]))
        out[self.half: self.half + self.h, self.half: self.half + self.w] = x.permute(1, 2, 0)
        return out

    def windows(self, x: torch.Tensor, padded: torch.Tensor | None = None) -> torch.Tensor:
        """(D, h, w) -> (n, S*S, D) context window around each tile (zeros outside the frame)."""
        hwd = self.padded(x) if padded is None else padded  # window rows are contiguous runs
        d, t, s, wp = hwd.shape[2], self.tile, self.side, hwd.shape[1]
        view = hwd.as_strided((self.rows, self.cols, s, s, d), (t * wp * d, t * d, wp * d, d, 1))
        return view.reshape(self.rows * self.cols, s * s, d)

    def to_raster(self, x: torch.Tensor) -> torch.Tensor:
        """(n*T*T, ...) in tile order -> (h*w, ...) in raster order."""
        t, rest = self.tile, x.shape[1:]
        x = x.reshape(self.rows, self.cols, t, t, *rest).transpose(1, 2)
        return x.reshape(self.rows * t, self.cols * t, *rest)[: self.h, : self.w].reshape(self.h * self.w, *rest)


@functools.lru_cache(maxsize=8)
def _layout(hw: tuple[int, int], tile: int, radius: float, device: torch.device) -> _TileLayout:
    return _TileLayout(hw, tile, radius, device)


def _windows(frame: ContextFrame, layout: _TileLayout, dtype: torch.dtype, with_labels: bool
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The context windows (n, S*S, C) of a frame's features (and (n, S*S, L) of its labels), gathered
    once: a context frame serves up to m targets."""
    key = (layout.half, layout.rows * layout.tile, layout.cols * layout.tile, dtype, with_labels)
    if key not in frame.windows:
        frame.windows.clear()
        features = layout.windows(frame.features.to(dtype)).contiguous()
        labels = layout.windows(frame.labels.to(dtype)).contiguous() if with_labels else None
        frame.windows[key] = (features, labels)
    return frame.windows[key]


def _local_topk(tiles: torch.Tensor, frame: ContextFrame, layout: _TileLayout, k: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k affinities of target tiles (n, T*T, C) inside the radius of one context frame.

    Returns values (n*T*T, k') and labels (n*T*T, k', L) in tile order, k' = min(k, S*S).
    """
    n_labels = frame.labels.shape[0]
    ctx, labels = _windows(frame, layout, tiles.dtype, with_labels=True)  # (n, S*S, C), (n, S*S, L)
    affinity = torch.baddbmm(layout.bias_as(tiles.dtype), tiles, ctx.transpose(1, 2))  # (n, T*T, S*S)
    values, idx = affinity.topk(min(k, affinity.shape[2]), dim=2)  # (n, T*T, k)
    picked = torch.gather(labels, 1, idx.reshape(idx.shape[0], -1, 1).expand(-1, -1, n_labels))  # (n, T*T*k, L)
    return values.reshape(-1, values.shape[2]), picked.reshape(-1, values.shape[2], n_labels)


def _global_topk(cells: torch.Tensor, frame: ContextFrame, k: int, allowed: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k affinities of target cells (P, C) over the whole of one context frame (where ``allowed``)."""
    channels = cells.shape[1]
    affinity = cells @ frame.features.to(cells.dtype).reshape(channels, -1)  # (P, h*w)
    if allowed is not None:
        affinity = affinity.masked_fill(~allowed, float("-inf"))
    values, idx = affinity.topk(min(k, affinity.shape[1]), dim=1)  # (P, k)
    labels = frame.labels.reshape(frame.labels.shape[0], -1).T.to(cells.dtype)  # (h*w, L)
    return values, labels[idx]  # (P, k), (P, k, L)


def _near_cells(hw: tuple[int, int], radius: float, device: torch.device) -> torch.Tensor:
    """(h*w, h*w) bool: which cells of an h x w grid lie within ``radius`` of each other."""
    h, w = hw
    yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    cells = torch.stack([yy.reshape(-1), xx.reshape(-1)], dim=1).float()  # (h*w, 2)
    return torch.cdist(cells, cells) <= radius + 1e-9


@functools.lru_cache(maxsize=4)
def _reference_cells(hw: tuple[int, int], radius: float, stride: int, device: torch.device) -> torch.Tensor:
    """(h*w candidates, h*w targets) bool: the reference cells a target is compared with when
    ``reference_stride`` > 1 (within the radius, or on the grid of every stride-th cell)."""
    h, w = hw
    yy, xx = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    on_grid = ((yy % stride == 0) & (xx % stride == 0)).reshape(-1)
    return _near_cells(hw, radius, device) | on_grid[:, None]  # "near" is symmetric; on_grid marks candidates


def matmul_dtype(precision: str, device: torch.device) -> torch.dtype:
    """What ``PropagationParams.precision`` means on ``device`` ("auto": see the field's docstring)."""
    if precision == "auto":
        from annotator.core.features.backbones.device import cpu_has_bf16

        return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def propagate_frame(target: torch.Tensor, context: Sequence[ContextFrame], params: PropagationParams,
                    match: torch.Tensor | None = None, *, memo: CandidateMemo | None = None,
                    target_index: int | None = None, references: torch.Tensor | None = None) -> torch.Tensor:
    """Soft labels (L, h, w) of a target feature map (C, h, w) from its context (local-window engine).

    On a CPU the k largest affinities are chosen by a compiled running selection
    (:mod:`annotator.core.engine.topk_select`); on other devices by torch (:func:`propagate_frame_torch`).
    Both give the naive engine's result.

    ``memo`` (CPU): each context frame's own top-k for this target (frame ``target_index``) is
    looked up there, or computed and kept, then the frames' top-k are merged
    (:mod:`annotator.core.engine.candidates`). The k chosen are the same except where values tie
    at the k-th place (which of the tied cells is kept may differ).

    ``references`` (L, h, w), when given, receives the labels the context's reference frames alone give
    (their own top-k, softmaxed): what ``PropagationParams.islands`` asks them, at no extra matmul.
    """
    if target.device.type != "cpu":
        return propagate_frame_torch(target, context, params, match, references=references)
    if not context:
        raise UsageError("propagation needs at least one context frame")
    channels, h, w = target.shape
    layout = _layout((h, w), params.tile, float(params.radius), target.device)
    dtype = torch.bfloat16 if matmul_dtype(params.precision, target.device) == torch.bfloat16 else target.dtype
    target = target.to(dtype)
    tiles = layout.tiles(target)  # (n, T*T, C)
    cells = target.reshape(channels, -1).T  # (h*w, C)

    def offer(best: RunningTopK, frame: ContextFrame, offset: int) -> None:
        stride = 1 if frame.local else params.reference_stride
        if frame.local or stride > 1:
            windows, _ = _windows(frame, layout, dtype, with_labels=False)
            # one row of tiles at a time: its affinities stay in cache for the selection
            for first in range(0, tiles.shape[0], layout.cols):
                part = slice(first, first + layout.cols)
                best.add_windows(torch.bmm(tiles[part], windows[part].transpose(1, 2)), first, layout.cols,
                                 layout.tile, float(params.radius), (h, w), offset)
        if not frame.local:
            features = frame.features[:, ::stride, ::stride].to(dtype).reshape(channels, -1)
            skip = float(params.radius) if stride > 1 else None  # the window pass offered those
            for first in range(0, h * w, _GLOBAL_ROWS):
                best.add_all(cells[first: first + _GLOBAL_ROWS] @ features, first, offset, w=w, stride=stride,
                             skip_radius=skip)

    anchor = _anchoring(context, params)
    own = anchor or references is not None  # the references' own top-k is needed
    ref_values = ref_where = None
    if memo is None:
        best = RunningTopK(h * w, params.topk)
        refs = _reference_slots(context) if own else []
        for slot in refs:
            offer(best, context[slot], slot * h * w)
        if own:  # the references' own top-k: what the selection holds after them alone
            ref_values, ref_where = (t.clone() for t in best.result())
        for slot in range(len(context)):
            if slot not in refs:
                offer(best, context[slot], slot * h * w)
        values, where = best.result()
    else:
        if target_index is None:
            raise ValueError("a candidate memo needs the target frame's index")
        parts_values, parts_where = [], []
        for slot, frame in enumerate(context):
            key = (target_index, frame.index, frame.local, (h, w), float(params.radius), params.reference_stride,
                   params.topk, params.tile, dtype)
            found = memo.get(key)
            if found is None:
                own = RunningTopK(h * w, params.topk)
                offer(own, frame, 0)
                found = own.result()
                memo.put(key, *found)
            # copies: a later put of this loop may reuse the memo's slot behind a view
            parts_values.append(found[0].clone())
            parts_where.append((found[1].long() + slot * h * w)[..., None])
        if own:
            refs = _reference_slots(context)
            ref_values, ref_where = _select_topk([parts_values[i] for i in refs], [parts_where[i] for i in refs],
                                                 params.topk)
            ref_where = ref_where[..., 0]
        values, where = _select_topk(parts_values, parts_where, params.topk)  # the torch engine's merge
        where = where[..., 0]
    _match_strength(values, params.temperature, (h, w), match)
    labels = torch.cat([f.labels.reshape(f.labels.shape[0], -1).T for f in context]).float()  # (N*h*w, L)
    if references is not None:
        _references_alone(ref_values, labels[ref_where], params.temperature, references)
    if anchor:
        out = _anchored(values, labels[where], ref_values, labels[ref_where], params.temperature)
    else:
        out = _weighted_labels(values, labels[where], params.temperature)  # (h*w, L)
    return out.T.reshape(-1, h, w)


_GLOBAL_ROWS = 1024
"""Target cells compared with a whole reference frame at a time (an 80-channel 480p grid: 13 MB of
affinities that stay in cache for the selection, where the whole (h*w)^2 block would not)."""


def propagate_frame_torch(target: torch.Tensor, context: Sequence[ContextFrame], params: PropagationParams,
                          match: torch.Tensor | None = None, *, references: torch.Tensor | None = None) -> torch.Tensor:
    """The local-window engine with torch's top-k: masked window affinities, top-k per context frame, merged.

    What :func:`propagate_frame` runs on GPUs, where a batched ``topk`` is fast.
    """
    if not context:
        raise UsageError("propagation needs at least one context frame")
    _, h, w = target.shape
    layout = _layout((h, w), params.tile, float(params.radius), target.device)
    if matmul_dtype(params.precision, target.device) == torch.bfloat16 and target.dtype == torch.float32:
        target = target.to(torch.bfloat16)
    tiles = layout.tiles(target)  # (n, T*T, C)
    values, labels = [], []
    for frame in context:
        if frame.local:
            frame_values, frame_labels = _local_topk(tiles, frame, layout, params.topk)
        else:
            allowed = None
            if params.reference_stride > 1:  # rows in tile order, as the target cells are here
                allowed = layout.tiles(_reference_cells((h, w), params.radius, params.reference_stride,
                                                        target.device).reshape(h * w, h, w)).reshape(-1, h * w)
            frame_values, frame_labels = _global_topk(tiles.reshape(-1, tiles.shape[2]), frame, params.topk, allowed)
        values.append(frame_values)
        labels.append(frame_labels)
    anchor = _anchoring(context, params)
    if anchor or references is not None:
        refs = _reference_slots(context)
        ref_values, ref_labels = _select_topk([values[i] for i in refs], [labels[i] for i in refs], params.topk)
        if references is not None:  # back from tile order to raster order first
            _references_alone(layout.to_raster(ref_values), layout.to_raster(ref_labels), params.temperature,
                              references)
    values, labels = _select_topk(values, labels, params.topk)
    if match is not None:
        _match_strength(layout.to_raster(values), params.temperature, (h, w), match)
    if anchor:
        out = layout.to_raster(_anchored(values, labels, ref_values, ref_labels, params.temperature))
    else:
        out = layout.to_raster(_weighted_labels(values, labels, params.temperature))  # (h*w, L)
    return out.T.reshape(-1, h, w)


def propagate_frame_naive(target: torch.Tensor, context: Sequence[ContextFrame], params: PropagationParams,
                          match: torch.Tensor | None = None, *, references: torch.Tensor | None = None) -> torch.Tensor:
    """Reference implementation: the full (h*w, N*h*w) affinity, masked, top-k, softmax."""
    channels, h, w = target.shape
    feats = torch.cat([f.features.reshape(channels, -1) for f in context], dim=1)  # (C, N*h*w)
    labels = torch.cat([f.labels.reshape(f.labels.shape[0], -1) for f in context], dim=1).T  # (N*h*w, L)
    affinity = target.reshape(channels, -1).T @ feats  # (h*w, N*h*w)
    near = _near_cells((h, w), params.radius, target.device)  # (h*w, h*w)
    whole = torch.ones_like(near) if params.reference_stride == 1 else \
        _reference_cells((h, w), params.radius, params.reference_stride, target.device).T
    allowed = torch.cat([near if f.local else whole for f in context], dim=1)
    affinity = affinity.masked_fill(~allowed, float("-inf"))
    values, idx = affinity.topk(min(params.topk, affinity.shape[1]), dim=1)
    _match_strength(values, params.temperature, (h, w), match)
    anchor = _anchoring(context, params)
    if anchor or references is not None:
        of_refs = torch.cat([torch.full((h * w,), f.reference, device=affinity.device) for f in context])
        ref_values, ref_idx = affinity.masked_fill(~of_refs, float("-inf")).topk(values.shape[1], dim=1)
        if references is not None:
            _references_alone(ref_values, labels[ref_idx].to(target.dtype), params.temperature, references)
    if anchor:
        out = _anchored(values, labels[idx].to(target.dtype), ref_values, labels[ref_idx].to(target.dtype),
                        params.temperature)
    else:
        out = _weighted_labels(values, labels[idx].to(target.dtype), params.temperature)
    return out.T.reshape(-1, h, w)


# --------------------------------------------------------------------------------------------
# a run over the video


FeatureSource = Callable[[int], torch.Tensor]


def references_behind(references: Iterable[int], start: int, step: int) -> list[int]:
    """The reference frames behind a run from ``start`` going ``step`` (+1/-1), nearest first.

    They are context too (frame 0 and earlier corrections when going forward), as in CRW/DINO,
    where the first frame always stays in the context.
    """
    return sorted((i for i in references if (i - start) * step < 0), key=lambda i: abs(i - start))


def _fit_appearance(refs: Sequence[ContextFrame], references: Mapping[int, np.ndarray], label_ids: Sequence[int],
                    features: FeatureSource, params: PropagationParams) -> AppearanceModel | None:
    """The appearance model of the run's reference frames (``params.appearance`` > 0), else None."""
    if params.appearance <= 0:
        return None
    maps = [features(ref.index) for ref in refs]
    grids = [labels_to_grid(references[ref.index], label_ids, tuple(f.shape[1:]), f.device) for ref, f in zip(refs, maps)]
    return AppearanceModel.fit(maps, grids)


def propagate(
    features: FeatureSource,
    references: Mapping[int, np.ndarray],
    start: int,
    stop: int,
    params: PropagationParams = PropagationParams(),
    *,
    output_hw: tuple[int, int] | None = None,
    label_ids: Sequence[int] | None = None,
    stop_at_next_reference: bool = True,
    engine: Callable[[torch.Tensor, Sequence[ContextFrame], PropagationParams], torch.Tensor] = propagate_frame,
    timings: dict[str, float] | None = None,
    frames: Callable[[int], np.ndarray] | None = None,
    context_references: Sequence[int] | None = None,
    with_match: bool = False,
    memo: CandidateMemo | None = None,
) -> Iterator[FrameResult]:
    """Propagate the labels of reference frame ``start`` towards ``stop`` (exclusive), one frame at a time.

    ``features(i)`` returns the (C, h, w) feature map of frame i. ``references`` maps frame index
    to a label map painted by a person (any resolution; resized onto the feature grid). The run goes
    forward when ``stop > start`` and backward otherwise. The context holds every reference behind
    the run or passed so far (``start`` first, then the others behind it, nearest first) and the last
    ``params.context`` frames propagated in this run. A reference
    frame met on the way ends the run when ``stop_at_next_reference``; otherwise it joins the
    context and is not yielded (propagation never overwrites a person's work). Memory is bounded
    by the context, not by the length of the video: consume the results as they come. When
    ``timings`` is given, seconds spent in the engine ("propagation") and in upsampling and argmax
    ("upsample") are added to it (on a GPU without synchronising, so they are launch times there).
    ``frames(i)`` gives the RGB frame i, needed by ``params.upsample == "guided"``, ``params.flow > 0`` and
    ``params.reference_flow > 0`` (default: the video's, when ``features`` is a FeatureStore).

    ``context_references`` replaces the references of the context (default: every reference behind
    the run); ``start`` is always among them (the keyframe fill, :mod:`annotator.core.engine.keyframes`,
    chooses them with :func:`annotator.core.engine.keyframes.span_context`). ``with_match``: each result carries its cells' match
    strength (``FrameResult.match``; the engine must take ``match=``). ``memo``: the engine looks up
    and keeps each (target, context frame) pair's candidates there (it must take ``memo=`` and
    ``target_index=``; :func:`propagate_frame` does): a run over frames compared before costs little.
    With ``params.islands`` the engine must take ``references=`` (an (L, h, w) tensor it fills with the
    labels the references alone give; the three engines here do).
    """
    params.validate()
    if frames is None:  # a FeatureStore brings its video's frames
        frames = getattr(getattr(features, "video", None), "frame", None)
    if params.upsample == "guided" and frames is None:
        raise UsageError("guided upsampling needs the video frames: pass frames=")
    if params.flow > 0 and frames is None:
        raise UsageError("the optical-flow cue needs the video frames: pass frames=")
    if params.reference_flow > 0 and frames is None:
        raise UsageError("the reference flow (on by default) needs the video frames: pass frames= or reference_flow=0")
    if params.colour_grow and frames is None:
        raise UsageError("growing masks by colour (on by default) needs the video frames: pass frames= or colour_grow=False")
    if start not in references:
        raise UsageError(f"frame {start} is not a reference frame: paint or load a mask on it first")
    if stop == start:
        return
    step = 1 if stop > start else -1
    if label_ids is None:
        label_ids = label_ids_of(list(references.values()))
    label_ids = tuple(label_ids)
    if output_hw is None:
        output_hw = tuple(references[start].shape[:2])  # type: ignore[assignment]

    detail = params.label_detail

    def reference_frame(index: int) -> ContextFrame:
        feats = features(index)
        h, w = feats.shape[1:]
        grid_labels = labels_to_grid(references[index], label_ids, (h * detail, w * detail), feats.device)
        return ContextFrame(index, feats, pack_labels(grid_labels, detail).to(feats.dtype), params.radius_for_references,
                            reference=True)

    if context_references is None:
        context_references = references_behind(references, start, step)
    refs = [reference_frame(start), *(reference_frame(i) for i in dict.fromkeys(context_references) if i != start)]
    appearance = _fit_appearance(refs, references, label_ids, features, params)
    recent: deque[ContextFrame] = deque(maxlen=params.context * params.context_stride)
    # one flow for the cue and the reference flow (frames checked above), on the grid of the soft
    # labels: 8 pixels of the working size per feature cell
    cue = FlowCue(frames, scale=max(1, 8 // detail), preset=params.flow_preset) \
        if params.flow > 0 or params.reference_flow > 0 else None
    previous = references[start]  # label map of frame index - step, which the flow cue warps
    anchor = start  # the reference whose mask the reference flow warps: the nearest behind the frame
    for index in range(start + step, stop, step):
        if index in references:
            if stop_at_next_reference:
                return
            refs.append(reference_frame(index))
            appearance = _fit_appearance(refs, references, label_ids, features, params)
            recent.clear()  # frames before a person's correction are superseded by it
            previous = references[index]
            anchor = index
            continue
        target = features(index)
        t0 = time.perf_counter()
        spaced = list(recent)[::-params.context_stride][::-1]  # t-1, t-1-s, ... in the order of the run
        match = torch.empty(target.shape[1:], dtype=torch.float32, device=target.device) if with_match else None
        context = [*refs, *spaced]
        extra = {} if memo is None else {"memo": memo, "target_index": index}
        alone = None
        if params.islands:  # the engine also writes what the references alone give, for prune_islands
            alone = torch.empty((len(label_ids) * detail * detail, *target.shape[1:]), dtype=torch.float32,
                                device=target.device)
            extra["references"] = alone
        soft = engine(target, context, params, match=match, **extra) if with_match \
            else engine(target, context, params, **extra)
        soft = unpack_labels(soft, detail)
        if alone is not None:
            soft = prune_islands(soft, label_ids, lambda: unpack_labels(alone, detail), params.background_bias)
        t_flow = time.perf_counter()
        if params.flow > 0:
            soft = cue.fuse(index - step, index, previous, label_ids, soft, params.flow)
        # what the frame hands on: the appearance model and the reference flow only shape the output
        context_soft = soft
        weight = params.reference_flow / abs(index - anchor)
        if weight >= REFERENCE_FLOW_MIN:
            soft = cue.fuse(anchor, index, references[anchor], label_ids, soft, weight)
        if cue is not None and timings is not None:
            spent = time.perf_counter() - t_flow
            timings["flow"] = timings.get("flow", 0.0) + spent
            t0 += spent  # keep "propagation" the engine's time only
        if appearance is not None:
            soft = fuse_appearance(soft, appearance.logits(target), params.appearance)
        t1 = time.perf_counter()
        frame = frames(index) if params.upsample == "guided" or params.colour_grow else None
        labels, taught = soft_to_label_maps(soft, label_ids, output_hw, params.upsample, frame, params.part_groups,
                                            params.background_bias, params.colour_grow)
        previous = labels if taught is None else taught  # the flow cue, like the context, sees no grow
        if timings is not None:
            timings["propagation"] = timings.get("propagation", 0.0) + t1 - t0
            timings["upsample"] = timings.get("upsample", 0.0) + time.perf_counter() - t1
        if params.context > 0:
            if params.context_labels == "hard":
                ctx_labels = labels_to_grid(labels, label_ids, tuple(soft.shape[1:]), soft.device)
            else:
                ctx_labels = context_soft
            recent.append(ContextFrame(index, target, pack_labels(ctx_labels, detail).to(target.dtype), True))
        yield FrameResult(index, labels, soft.float().cpu(), label_ids,
                          match=None if match is None else match.cpu(), taught=taught)
