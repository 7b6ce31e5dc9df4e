"""Propagation runs from the GUI: the core generator in a background worker, results streamed into the model.

`PropagationController.start(direction)` captures on the GUI thread everything the run needs (a
copy of the reference label maps, the object ids, the factors, the feature store), runs the core
generators in a :class:`GeneratorWorker`, and applies each `FrameResult` to the model on the GUI
thread as it arrives. The run is one undo step. A frame a person painted while the run was going
is never overwritten.

What a run covers (:func:`plan_legs`) with ``params.both_ways`` (the default): the video is cut at
its references into spans (:func:`annotator.core.engine.keyframes.spans`). P on reference C re-fills the
spans on both sides of C, Shift+P only the one before C, Alt+P every span from C to the end. A
span between two references is filled from both ends and fused
(:func:`annotator.core.engine.keyframes.fill_span`): the frames of its backward and forward runs are
applied as they come (provisional, counted on the one progress bar) and then replaced by the fused ones, which the
model marks as coming from two keyframes; a span with one reference (before the first, after the
last) is propagated one way from it. So a correction inside a span splits it, and P there
re-fills both halves and nothing else. Without ``both_ways``, P goes forward to the next
reference, Shift+P backward to the previous one, Alt+P forward through references to the end.

Cancel (Esc) of a mask run puts the model back as it was before the run (the transaction is
reverted, except on frames a person painted meanwhile): a half-filled span would otherwise keep
provisional one-direction frames beside fused ones. Features computed so far stay in the store,
so running again is quick.

`start_keypoints()` runs :func:`annotator.core.engine.keypoints.propagate_keypoints_video` the same way:
the placed keypoints go through the whole video (forward from the first frame with keypoints, then
back to frame 0), replacing the propagated points of every other frame; also one undo step, with
the same progress and feature store; a cancelled keypoint run keeps the frames it did (it has no
provisional frames). It is its own action rather than part of the mask
run: mask runs go from one reference to the next, keypoint references are other frames, and a
person correcting masks does not want their keypoints re-run each time (nor the reverse).

One `FeatureStore` per (video, backbone, device, working resolution) stays alive here, so a
re-propagation after a correction reuses the features of the first pass and starts producing
frames at once; masks and keypoints share it. Beside the store of the last run, a
:class:`~annotator.core.engine.candidates.CandidateMemo` keeps each compared frame pair's top-k
candidates, so that re-fill also skips the comparisons the first pass made (only the pairs with
the new reference are computed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import torch
from PySide6.QtCore import QObject, Signal

from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.errors import UsageError
from annotator.core.features.store import FeatureStore
from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.keyframes import Span, fill_span, span_results, spans
from annotator.core.engine.keypoints import KeypointResult, propagate_keypoints_video
from annotator.core.engine.pipeline import propagate_span
from annotator.core.engine.propagation import FrameResult, propagate
from annotator.core.runs.settings import BackboneCache, RunSettings
from annotator.core.model.undo import Change, Transaction
from annotator.gui.worker import GeneratorWorker

BackboneFactory = Callable[[RunSettings], object]


MEMO_BYTES = 1 << 30
"""Memory for the candidates of compared frame pairs (:class:`CandidateMemo`): at a working size of 480 a
pair holds ~0.5 MB, at the default 600 ~0.8 MB, so 1 GiB keeps the ~1,300 pairs of a few 20-frame spans
filled both ways."""


def compute_threads() -> int:
    """CPU threads for the backbone and the engine: all cores but one, which stays with the GUI.

    On a 2-core laptop two compute threads leave the event loop fighting for a core (frames then
    arrive in bursts and the window stutters); one compute thread keeps it smooth.
    """
    return max(1, (os.cpu_count() or 2) - 1)


def load_backbone_for(settings: RunSettings):
    """The real backbone named by the settings, on :func:`compute_threads` CPU threads (may take a second:
    called on the worker thread)."""
    threads = compute_threads() if settings.device in ("auto", "cpu") else None
    return replace(settings, threads=threads).load_backbone()


@dataclass(frozen=True)
class _StoreReady:
    """First item of a run that had to build its feature store: handed back to the GUI thread."""

    key: tuple
    settings: RunSettings
    store: FeatureStore


@dataclass(frozen=True)
class Leg:
    """One piece of a mask run: the frames strictly between ``start`` (a reference) and ``stop``.

    ``both_ways``: ``start`` < ``stop`` are the two references of a span, filled from both ends.
    Otherwise a one-way run from reference ``start`` towards ``stop`` (exclusive; -1 or the frame
    count for an end of the video); ``through`` runs pass references on the way (old Alt+P).
    """

    start: int
    stop: int
    both_ways: bool = False
    through: bool = False

    @property
    def frames(self) -> range:
        return range(self.start + 1, self.stop) if self.stop > self.start else range(self.start - 1, self.stop, -1)

    @property
    def results(self) -> int:
        """Results the leg yields (a span's provisional frames of each direction, then its fused ones)."""
        return span_results(len(self.frames), provisional=True) if self.both_ways else len(self.frames)


def plan_legs(references: Iterable[int], current: int, num_frames: int, direction: int, go_on: bool,
              both_ways: bool = True) -> list[Leg]:
    """The legs of a run from reference ``current``; see the module docstring for what P, Shift+P
    (``direction`` -1) and Alt+P (``go_on``) cover. Empty when there is nothing to propagate."""
    refs = sorted(set(references))
    if not both_ways:
        end = num_frames if direction > 0 else -1
        ahead = [i for i in refs if (i - current) * direction > 0]
        stop = end if go_on or not ahead else (min(ahead) if direction > 0 else max(ahead))
        return [Leg(current, stop, through=go_on)]
    chosen = []
    for span in spans(refs, num_frames):
        if go_on:  # every span from the current reference to that end of the video
            take = (span.first is not None and span.first >= current) if direction > 0 else \
                (span.last is not None and span.last <= current)
        else:  # the span before the current reference, and with P the one after it
            take = span.last == current or (direction > 0 and span.first == current)
        if take:
            chosen.append(span)
    legs = []
    for span in chosen:
        if span.both_ways:
            legs.append(Leg(span.first, span.last, both_ways=True))
        elif span.first is None:  # before the first reference: one way from it, back to frame 0
            legs.append(Leg(span.last, -1))
        else:  # after the last reference: one way to the end
            legs.append(Leg(span.first, num_frames))
    return legs


@dataclass(frozen=True)
class RunInfo:
    """What a run was asked to do (for messages and tests)."""

    start: int
    stop: int
    direction: int
    total: int
    """Results the progress bar counts (a span's provisional and fused frames both count)."""
    kind: str = "masks"
    """"masks" or "keypoints"."""
    legs: tuple[Leg, ...] = ()
    go_on: bool = False

    @property
    def both_ways(self) -> bool:
        """Some span of the run is filled from both ends."""
        return any(leg.both_ways for leg in self.legs)

    @property
    def arrow(self) -> str:
        """Where the run goes from its start frame: ▶, ◀ or ◀▶ (both sides)."""
        before = any(min(g.start, g.stop) < self.start for g in self.legs)
        after = any(max(g.start, g.stop) > self.start for g in self.legs)
        if before and after:
            return "◀▶"
        return "◀" if before or (not after and self.direction < 0) else "▶"

    @property
    def name(self) -> str:
        """The run's undo step."""
        if self.kind == "keypoints":
            return "Propagate keypoints"
        if self.both_ways:
            return "Propagate between keyframes"
        directions = {leg.stop > leg.start for leg in self.legs}
        if directions == {True, False}:
            return "Propagate backward and forward"
        return f"Propagate {'forward' if directions == {True} else 'backward'}"


class PropagationController(QObject):
    """Starts, streams and cancels propagation runs over the model; see the module docstring."""

    started = Signal(object)  # RunInfo
    progress = Signal(int, int, float, float)  # done, total, frames/s, seconds left
    frame_done = Signal(int)  # frame index applied
    frame_result = Signal(object)  # the FrameResult just handled (soft labels for the diagnostics); masks only
    finished = Signal(int, bool)  # frames applied, cancelled
    failed = Signal(str)  # one-line message
    device_changed = Signal(str)

    def __init__(self, model: AnnotationModel, settings: RunSettings | None = None,
                 backbone_factory: BackboneFactory = load_backbone_for, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.settings = settings or RunSettings()
        self._factory = backbone_factory
        if backbone_factory is load_backbone_for:
            from annotator.core.features.backbones import read_embedded_weights

            read_embedded_weights(self.settings.backbone)  # ~50 ms each now, instead of a crawl on the worker later
        self._backbones = BackboneCache()  # loaded on the worker thread, kept here on the GUI thread
        self._stores: dict[tuple, FeatureStore] = {}
        # the frame pairs' candidates of the last store used: a correction's re-fill compares the frames
        # the fill before it compared, so it computes only the pairs with the new reference
        self._memo: tuple[tuple, CandidateMemo] | None = None
        self._worker: GeneratorWorker | None = None
        self._txn: Transaction | None = None
        self._run: RunInfo | None = None
        self._applied = 0
        self._frames_done: set[int] = set()  # frames holding their final result of this run
        self._t0 = 0.0
        self._last_index = -1
        model.events.video_changed.connect(self._forget_stores)

    # ---- state ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def run_info(self) -> RunInfo | None:
        return self._run

    def store_for_current_video(self) -> FeatureStore | None:
        return self._stores.get(self._store_key())

    def set_settings(self, settings: RunSettings) -> None:
        self.settings = settings  # stores are keyed by what features depend on, so old ones stay valid

    def _store_key(self) -> tuple:
        return (id(self.model.video), *self.settings.feature_key())

    def _forget_stores(self) -> None:
        video = self.model.video
        self._stores = {k: s for k, s in self._stores.items() if s.video is video}
        self._memo = None

    # ---- running ------------------------------------------------------------------------------

    def plan(self, direction: int, go_on: bool = False) -> RunInfo:
        """What a run from the current frame would cover (:func:`plan_legs`); UsageError when it cannot start."""
        m = self.model
        if m.video is None:
            raise UsageError("open a video first")
        start = m.current_frame
        if not m.is_reference(start):
            raise UsageError(f"frame {start} is not a reference frame: paint on it (or press R to accept it) first")
        if not m.objects:
            raise UsageError("add an object and paint it first")
        refs = list(m.reference_frames())
        legs = plan_legs(refs, start, m.num_frames, direction, go_on, self.settings.params.both_ways)
        total = sum(leg.results for leg in legs)
        if legs and legs[0].through:  # references passed on the way are not propagated
            total -= sum(1 for i in refs if i in legs[0].frames)
        if total <= 0:
            raise UsageError("nothing to propagate: the next frame is already a reference or the end of the video")
        # the far end in the run's direction (a span's outer reference, -1 or the frame count)
        stop = max(max(g.start, g.stop) for g in legs) if direction > 0 else min(min(g.start, g.stop) for g in legs)
        return RunInfo(start, stop, direction, total, legs=tuple(legs), go_on=go_on)

    def start(self, direction: int = 1, go_on: bool = False) -> RunInfo:
        """Start propagating from the current frame (forward +1, backward -1); returns the plan."""
        if self.running:
            raise UsageError("a propagation is already running: cancel it first (Esc)")
        info = self.plan(direction, go_on)
        m = self.model
        # inputs captured on the GUI thread: the worker never reads the model
        references = {i: lab.copy() for i, lab in m.teaching_references().items()}
        label_ids = m.label_ids()
        params = self.settings.params
        output_hw = m.hw
        video = m.video
        n = m.num_frames

        # guided upsampling and the flow cue read frames
        common = dict(output_hw=output_hw, label_ids=label_ids, frames=video.frame, memo=self._memo_for_store())

        def run(store: FeatureStore) -> Iterator[object]:
            for leg in info.legs:
                if leg.both_ways:
                    yield from fill_span(store, references, leg.start, leg.stop, params, provisional=True, **common)
                elif params.both_ways:  # a one-way end of the video, with the context the pipeline gives it
                    span = Span(leg.start, None, n) if leg.stop > leg.start else Span(None, leg.start, n)
                    yield from propagate_span(store, references, span, params, **common)
                else:
                    yield from propagate(store, references, leg.start, leg.stop, params,
                                         stop_at_next_reference=not leg.through, **common)

        self._launch(run, info, info.name)
        return info

    def plan_keypoints(self) -> RunInfo:
        """What a keypoint run would do; UsageError when it cannot start."""
        m = self.model
        if m.video is None:
            raise UsageError("open a video first")
        references = m.keypoint_references()
        if not references:
            raise UsageError("place keypoints on a frame first (Keypoint tool, M)")
        total = m.num_frames - len(references)
        if total <= 0:
            raise UsageError("nothing to propagate: you placed keypoints on every frame")
        return RunInfo(min(references), m.num_frames, 1, total, kind="keypoints")

    def start_keypoints(self) -> RunInfo:
        """Carry the placed keypoints through the whole video with the current factors; returns the plan."""
        if self.running:
            raise UsageError("a propagation is already running: cancel it first (Esc)")
        info = self.plan_keypoints()
        m = self.model
        references = m.keypoint_references()  # copies, captured on the GUI thread
        names = {k.id: k.name for k in m.keypoints}
        params = self.settings.params
        image_hw = m.hw
        num_frames = m.num_frames

        def run(store: FeatureStore) -> Iterator[object]:
            return propagate_keypoints_video(store, references, num_frames, params, image_hw=image_hw,
                                             point_names=names)

        self._launch(run, info, info.name)
        return info

    def _memo_for_store(self) -> CandidateMemo:
        """The candidate memo of the store the next run uses (a new one when the features change)."""
        key = self._store_key()
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, CandidateMemo(max_bytes=MEMO_BYTES))
        return self._memo[1]

    def _launch(self, run: Callable[[FeatureStore], Iterator[object]], info: RunInfo, step_name: str) -> None:
        """Run ``run(store)`` in the worker, building the feature store first when there is none yet."""
        settings = self.settings
        video = self.model.video
        key = self._store_key()
        store = self._stores.get(key)
        backbone = self._backbones.get(settings)
        factory = self._factory

        def job() -> Iterator[object]:
            nonlocal store
            if store is None:
                bb = backbone if backbone is not None else factory(settings)
                # read-ahead only off the CPU: there it would take the core kept free for the GUI
                store = FeatureStore(video, bb, short_side=settings.short_side,
                                     read_ahead=torch.device(getattr(bb, "device", "cpu")).type != "cpu")
                yield _StoreReady(key, settings, store)
            yield from run(store)

        self._txn = self.model.history.begin(step_name)
        self._run = info
        self._applied = 0
        self._frames_done = set()
        self._last_index = info.start
        self._t0 = time.perf_counter()
        worker = GeneratorWorker(job, parent=self)
        worker.result.connect(self._on_result)
        worker.error.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()
        self.started.emit(info)

    def cancel(self) -> None:
        """Stop the run now: results still in flight are dropped; a mask run's frames are put back as
        they were before it, a keypoint run's stay (one undo step)."""
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the worker thread ends (tests and shutdown); call before closing the video."""
        return self._worker.wait(msecs) if self._worker is not None else True

    # ---- results on the GUI thread ---------------------------------------------------------------

    def _on_result(self, item: object) -> None:
        if isinstance(item, _StoreReady):
            self._stores[item.key] = item.store
            self._backbones.put(item.settings, item.store.backbone)
            self.device_changed.emit(str(getattr(item.store.backbone, "device", "?")))
            self._t0 = time.perf_counter()  # frames/s counts propagation, not model loading
            return
        m = self.model
        if m.video is None or self._txn is None:
            return
        if isinstance(item, KeypointResult):
            if not m.is_keypoint_reference(item.index):  # a person placed points there during the run
                known = {k.id for k in m.keypoints}  # a keypoint deleted during the run stays deleted
                points = {i: p for i, p in item.points.items() if i in known}
                self._txn.add(m.set_propagated_points(item.index, points, item.confidence))
        else:
            assert isinstance(item, FrameResult)
            if not m.is_reference(item.index):  # a person painted it during the run: theirs wins
                self._txn.add(m.set_labels(item.index, item.labels, FrameState.PROPAGATED, item.keyframes,
                                           item.taught))
        if not getattr(item, "provisional", False):
            self._frames_done.add(item.index)
        self._applied += 1
        if m.current_frame == self._last_index:  # the view follows the run unless a person moved it
            m.set_current_frame(item.index)
        self._last_index = item.index
        elapsed = max(time.perf_counter() - self._t0, 1e-6)
        fps = self._applied / elapsed
        total = self._run.total if self._run else self._applied
        left = (total - self._applied) / fps if fps > 0 else float("nan")
        self.frame_done.emit(item.index)
        if isinstance(item, FrameResult):
            self.frame_result.emit(item)
        self.progress.emit(self._applied, total, fps, left)

    def _on_error(self, exc: object) -> None:
        self.failed.emit(str(exc) if str(exc) else type(exc).__name__)

    def _on_finished(self, cancelled: bool) -> None:
        worker, self._worker = self._worker, None
        txn, self._txn = self._txn, None
        done = len(self._frames_done)
        if txn is not None:
            if cancelled and self._run is not None and self._run.kind == "masks":
                self._revert(txn)
                done = 0
                if self.model.video is not None:
                    # the frames the view followed are empty again: back to where P was pressed,
                    # where P runs again at once (the features computed so far stay cached)
                    self.model.set_current_frame(self._run.start)
            else:
                self.model.history.commit(txn)
        if worker is not None:
            worker.deleteLater()
        self.finished.emit(done, cancelled)

    def _revert(self, txn: Transaction) -> None:
        """Put back what a cancelled run applied; a frame a person painted meanwhile keeps their work
        (it is a reference now, and their own undo step holds what it was before)."""
        m = self.model
        txn.changes[:] = [c for c in txn.changes if not (isinstance(c, Change) and m.is_reference(c.frame))]
        m.history.abort(txn)
