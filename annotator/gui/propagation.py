"""Propagation runs from the GUI: the core generator in a background worker, results streamed into the model.

`PropagationController.start(direction)` captures on the GUI thread everything the run needs (a
copy of the reference label maps, the object ids, the factors, the feature store), runs
:func:`annotator.core.propagation.propagate` in a :class:`GeneratorWorker`, and applies each
`FrameResult` to the model on the GUI thread as it arrives. The run is one undo step. A frame a
person painted while the run was going is never overwritten.

`start_keypoints()` runs :func:`annotator.core.keypoints.propagate_keypoints_video` the same way:
the placed keypoints go through the whole video (forward from the first frame with keypoints, then
back to frame 0), replacing the propagated points of every other frame; also one undo step, with
the same progress, cancel and feature store. It is its own action rather than part of the mask
run: mask runs go from one reference to the next, keypoint references are other frames, and a
person correcting masks does not want their keypoints re-run each time (nor the reverse).

One `FeatureStore` per (video, backbone, device, working resolution) stays alive here, so a
re-propagation after a correction reuses the features of the first pass and starts producing
frames at once; masks and keypoints share it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from PySide6.QtCore import QObject, Signal

from annotator.core.annotation import AnnotationModel, FrameState
from annotator.core.errors import UsageError
from annotator.core.features import FeatureStore
from annotator.core.keypoints import KeypointResult, propagate_keypoints_video
from annotator.core.propagation import FrameResult, propagate
from annotator.core.undo import Transaction
from annotator.gui.settings import PropagationSettings
from annotator.gui.worker import GeneratorWorker

BackboneFactory = Callable[[PropagationSettings], object]


def compute_threads() -> int:
    """CPU threads for the backbone and the engine: all cores but one, which stays with the GUI.

    On a 2-core laptop two compute threads leave the event loop fighting for a core (frames then
    arrive in bursts and the window stutters); one compute thread keeps it smooth.
    """
    return max(1, (os.cpu_count() or 2) - 1)


def load_backbone_for(settings: PropagationSettings):
    """The real backbone named by the settings (may take a second: called on the worker thread)."""
    from annotator.core.backbones import load_backbone

    device = settings.device
    threads = compute_threads() if device in ("auto", "cpu") else None
    return load_backbone(settings.backbone, device=device, threads=threads, half=settings.half, flip=settings.flip)


@dataclass(frozen=True)
class _StoreReady:
    """First item of a run that had to build its feature store: handed back to the GUI thread."""

    key: tuple
    backbone_key: tuple
    store: FeatureStore


@dataclass(frozen=True)
class RunInfo:
    """What a run was asked to do (for messages and tests)."""

    start: int
    stop: int
    direction: int
    total: int
    kind: str = "masks"
    """"masks" or "keypoints"."""


class PropagationController(QObject):
    """Starts, streams and cancels propagation runs over the model; see the module docstring."""

    started = Signal(object)  # RunInfo
    progress = Signal(int, int, float, float)  # done, total, frames/s, seconds left
    frame_done = Signal(int)  # frame index applied
    frame_result = Signal(object)  # the FrameResult just handled (soft labels for the diagnostics); masks only
    finished = Signal(int, bool)  # frames applied, cancelled
    failed = Signal(str)  # one-line message
    device_changed = Signal(str)

    def __init__(self, model: AnnotationModel, settings: PropagationSettings | None = None,
                 backbone_factory: BackboneFactory = load_backbone_for, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.settings = settings or PropagationSettings()
        self.follow = True
        self._factory = backbone_factory
        if backbone_factory is load_backbone_for and self.settings.backbone.split(":")[0] == "lite0":
            from annotator.core.backbones.lite0 import read_weights, weights_path

            read_weights(weights_path())  # ~50 ms now, instead of a crawl on the worker later
        self._backbones: dict[tuple, object] = {}
        self._stores: dict[tuple, FeatureStore] = {}
        self._worker: GeneratorWorker | None = None
        self._txn: Transaction | None = None
        self._run: RunInfo | None = None
        self._applied = 0
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

    def set_settings(self, settings: PropagationSettings) -> None:
        self.settings = settings  # stores are keyed by what features depend on, so old ones stay valid

    def _store_key(self) -> tuple:
        return (id(self.model.video), *self.settings.feature_key())

    def _forget_stores(self) -> None:
        video = self.model.video
        self._stores = {k: s for k, s in self._stores.items() if s.video is video}

    # ---- running ------------------------------------------------------------------------------

    def plan(self, direction: int, go_on: bool = False) -> RunInfo:
        """Where a run from the current frame would go; UsageError when it cannot start."""
        m = self.model
        if m.video is None:
            raise UsageError("open a video first")
        start = m.current_frame
        if not m.is_reference(start):
            raise UsageError(f"frame {start} is not a reference frame: paint on it (or press R to accept it) first")
        if not m.objects:
            raise UsageError("add an object and paint it first")
        end = m.num_frames if direction > 0 else -1
        stop = end
        if not go_on:
            refs = [i for i in m.reference_frames() if (i - start) * direction > 0]
            if refs:
                stop = min(refs) if direction > 0 else max(refs)
        total = abs(stop - start) - 1
        if go_on:
            total -= sum(1 for i in m.reference_frames() if (i - start) * direction > 0)
        if total <= 0:
            raise UsageError("nothing to propagate: the next frame is already a reference or the end of the video")
        return RunInfo(start, stop if not go_on else end, direction, total)

    def start(self, direction: int = 1, go_on: bool = False) -> RunInfo:
        """Start propagating from the current frame (forward +1, backward -1); returns the plan."""
        if self.running:
            raise UsageError("a propagation is already running: cancel it first (Esc)")
        info = self.plan(direction, go_on)
        m = self.model
        # inputs captured on the GUI thread: the worker never reads the model
        references = {i: lab.copy() for i, lab in m.reference_frames().items()}
        label_ids = m.label_ids()
        params = self.settings.params
        output_hw = m.hw
        video = m.video

        def run(store: FeatureStore) -> Iterator[object]:
            return propagate(store, references, info.start, info.stop, params, output_hw=output_hw,
                             label_ids=label_ids, stop_at_next_reference=not go_on,
                             frames=video.frame)  # guided upsampling and the flow cue read frames

        self._launch(run, info, f"Propagate {'forward' if direction > 0 else 'backward'}")
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

        self._launch(run, info, "Propagate keypoints")
        return info

    def _launch(self, run: Callable[[FeatureStore], Iterator[object]], info: RunInfo, step_name: str) -> None:
        """Run ``run(store)`` in the worker, building the feature store first when there is none yet."""
        settings = self.settings
        video = self.model.video
        key = self._store_key()
        store = self._stores.get(key)
        backbone = self._backbones.get(settings.backbone_key())
        factory = self._factory

        def job() -> Iterator[object]:
            nonlocal store
            if store is None:
                bb = backbone if backbone is not None else factory(settings)
                # read-ahead only off the CPU: there it would take the core kept free for the GUI
                store = FeatureStore(video, bb, short_side=settings.short_side or None,
                                     read_ahead=torch.device(getattr(bb, "device", "cpu")).type != "cpu")
                yield _StoreReady(key, settings.backbone_key(), store)
            yield from run(store)

        self._txn = self.model.history.begin(step_name)
        self._run = info
        self._applied = 0
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
        """Stop the run now: results still in flight are dropped, frames already applied stay (one undo step)."""
        if self._worker is not None:
            self._worker.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the worker thread ends (tests and shutdown); call before closing the video."""
        return self._worker.wait(msecs) if self._worker is not None else True

    # ---- results on the GUI thread ---------------------------------------------------------------

    def _on_result(self, item: object) -> None:
        if isinstance(item, _StoreReady):
            self._stores[item.key] = item.store
            self._backbones[item.backbone_key] = item.store.backbone
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
                self._txn.add(m.set_labels(item.index, item.labels, FrameState.PROPAGATED))
        self._applied += 1
        if self.follow and m.current_frame == self._last_index:
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
        if self._txn is not None:
            self.model.history.commit(self._txn)
            self._txn = None
        if worker is not None:
            worker.deleteLater()
        self.finished.emit(self._applied, cancelled)
