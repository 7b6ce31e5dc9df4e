"""Propagating many videos in one go: a DAVIS root or a list of videos, spread over processes and devices.

A :class:`BatchJob` is one video with its reference mask(s) and an output folder; :func:`run_job`
propagates it (the same streaming path as ``annotator propagate`` on one video: masks are written
as they are produced, so memory stays flat however long the video). :func:`run_batch` runs jobs
side by side in worker processes (each with its share of the CPU threads, or its own GPU), reports
every frame through one callback so the caller can draw a single progress bar, and never lets one
broken video stop the others: each job ends with a :class:`BatchResult` holding its error, if any.

A video's output folder holds a marker (:data:`COMPLETE_MARKER`, written atomically): "not
complete" before a run writes its first mask, "complete" after its last, so ``--resume`` can tell a whole
output from one a killed run left half written: :func:`start_batch`, the first step of every batch
runner (this one and :mod:`annotator.core.runs.ray_batch`), skips the complete ones.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import queue as queue_module
import shlex
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from annotator.core.io import davis
from annotator.core.errors import AnnotatorError, MaskError, UsageError, size_text
from annotator.core.features.store import FeatureStore
from annotator.core.io.atomic import atomic_write_text
from annotator.core.io.labels import mask_files, mask_index, read_mask, read_mask_folder, write_mask
from annotator.core.io.outputs import check_mask_folder, make_folder
from annotator.core.runs.runner import run_video
from annotator.core.runs.settings import BackboneCache, RunSettings
from annotator.core.video import open_video

__all__ = ["COMPLETE_MARKER", "BatchJob", "BatchResult", "BatchStart", "complete_result", "davis_jobs", "list_jobs",
           "read_references", "result_key", "run_batch", "run_in_worker", "run_job", "shared_threads", "start_batch"]

COMPLETE_MARKER = ".annotator-complete.json"
"""In a video's output folder: "complete": false from a run's first mask on, true after its last."""


@dataclass(frozen=True)
class BatchJob:
    """One video to propagate: its frames, its reference mask(s), where its masks go."""

    name: str
    source: Path
    masks: Path
    """A mask PNG (frame ``mask_frame``) or a folder of ``NNNNN.png`` masks."""
    out: Path
    first_only: bool = False
    """Use only the earliest mask of the folder (the DAVIS semi-supervised protocol)."""
    mask_frame: int | None = None


@dataclass(frozen=True)
class BatchResult:
    name: str
    frames: int
    """Frames written (references and propagated)."""
    propagated: int
    seconds: float
    error: str | None = None
    removed: int = 0
    """Older masks beyond the video's last frame removed from the output folder (``--overwrite``)."""
    resumed: bool = False
    """Found complete in its output folder and skipped (``--resume``): nothing was run."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def fps(self) -> float:
        return self.propagated / self.seconds if self.seconds > 0 else float("nan")


# ---------------------------------------------------------------------------------------------- planning


def davis_jobs(root: str | Path, out: str | Path, resolution: str = "480p",
               sequences: Sequence[str] | None = None) -> list[BatchJob]:
    """One job per sequence of a DAVIS root, from its first mask, writing ``out/<sequence>/NNNNN.png``."""
    names = davis.select_sequences(root, resolution, sequences)
    return [BatchJob(n, davis.frames_dir(root, n, resolution), davis.annotations_dir(root, n, resolution),
                     Path(out) / n, first_only=True) for n in names]


def list_jobs(list_file: str | Path, out: str | Path) -> list[BatchJob]:
    """Jobs from a text file: one ``VIDEO MASKS`` per line (shell quoting for spaces; ``#`` comments).

    ``MASKS`` is a mask PNG of frame 0 or a folder of ``NNNNN.png`` masks (every one a reference).
    Relative paths are relative to the list file. Outputs go to ``out/<video name>/``, made unique.
    """
    path = Path(list_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the video list {path}: {exc.strerror or exc}") from exc
    jobs: list[BatchJob] = []
    used: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            fields = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from exc
        if not fields:
            continue
        if len(fields) != 2:
            raise UsageError(f"{path}:{number}: expected 'VIDEO MASKS', got {len(fields)} field(s)")
        source, masks = (Path(f) if Path(f).is_absolute() else path.parent / f for f in fields)
        name = source.stem if source.suffix else source.name
        unique, k = name, 2
        while unique in used:
            unique, k = f"{name}-{k}", k + 1
        used.add(unique)
        jobs.append(BatchJob(unique, source, masks, Path(out) / unique))
    if not jobs:
        raise UsageError(f"the video list {path} names no video")
    return jobs


def read_references(masks: Path, frame: int | None, expected_hw: tuple[int, int], num_frames: int,
                    first_only: bool = False) -> dict[int, np.ndarray]:
    """Reference label maps from a mask file or folder, checked against the video's size and length."""
    if masks.is_dir():
        if frame is not None:
            raise UsageError("--frame applies to a single mask file, not to a folder of masks")
        if first_only:  # only that mask is read: a broken later one (DAVIS has some) does not matter
            files = mask_files(masks)
            first = min(files)
            refs = {first: read_mask(files[first])}
        else:
            refs = read_mask_folder(masks)
    else:
        refs = {frame or 0: read_mask(masks)}
    if not refs:
        raise UsageError(f"{masks} holds no mask")
    for index, labels in refs.items():
        if not 0 <= index < num_frames:
            raise UsageError(f"mask for frame {index} but the video has {num_frames} frames")
        if labels.shape != expected_hw:
            raise MaskError(f"mask of frame {index} is {size_text(labels.shape)} but the video is "
                            f"{size_text(expected_hw)}; masks must have the video's original size")
    return refs


def check_outputs(jobs: Sequence[BatchJob], overwrite: bool) -> None:
    """Refuse before any work when an output folder already holds masks (unless ``overwrite``)."""
    for job in jobs:
        check_mask_folder(job.out, overwrite)


# ---------------------------------------------------------------------------------------------- running


_BACKBONES = BackboneCache()  # per process: the backbone is loaded once for all its jobs

# A streaming run reads each frame once forward (and once backward before the first reference) and
# the context keeps its own features, so big caches buy nothing here; small ones keep memory flat
# and let several jobs share a machine. (The GUI keeps larger ones: it re-propagates.)
STREAM_FRAME_CACHE_BYTES = 64 * 2**20
STREAM_FEATURE_CACHE_BYTES = 64 * 2**20


def run_job(job: BatchJob, settings: RunSettings, on_frame: Callable[[int], None] | None = None, *,
            backbone=None, read_ahead: bool = False, overwrite: bool = False) -> BatchResult:
    """Propagate one video, writing its masks as they come; bad input raises (see :func:`run_batch`).

    ``read_ahead``: compute the next frames' features in a background thread (FeatureStore read-ahead):
    1.15x end to end for one video on 2 cores with the defaults (bench/RESULTS.md); off for parallel
    jobs, which already keep every core busy. ``overwrite``: remove older masks beyond the video's end.
    """
    t0 = time.perf_counter()
    with open_video(job.source, cache_bytes=STREAM_FRAME_CACHE_BYTES) as video:
        refs = read_references(job.masks, job.mask_frame, video.hw, len(video), job.first_only)
        bb = backbone if backbone is not None else _BACKBONES(settings)
        store = FeatureStore(video, bb, short_side=settings.short_side, disk_cache=settings.feature_cache,
                             max_bytes=STREAM_FEATURE_CACHE_BYTES, read_ahead=read_ahead)
        propagated = 0
        marker = job.out / COMPLETE_MARKER
        try:
            make_folder(job.out)
            # from the first new mask on the folder is an unfinished run of ours until the marker says
            # complete: --resume redoes it, and refuses a folder of masks that no run of ours started
            atomic_write_text(marker, json.dumps({"video": job.name, "complete": False}) + "\n")
            for index, labels in refs.items():
                write_mask(job.out / f"{index:05d}.png", labels)
            for result in run_video(store, refs, settings.params):
                write_mask(job.out / f"{result.index:05d}.png", result.labels)
                propagated += 1
                if on_frame is not None:
                    on_frame(result.index)
        except AnnotatorError as exc:
            # the masks written so far stay (each is whole): say so, or they pass for a finished run
            written = propagated + len(refs)
            raise type(exc)(f"{exc} (after {written} of {len(video)} masks were written to {job.out}; "
                            "they are left there)") from exc
        finally:
            store.close()  # before the video closes: the read-ahead may be decoding
        removed = remove_stale_masks(job.out, len(video)) if overwrite else 0
        result = BatchResult(job.name, propagated + len(refs), propagated, time.perf_counter() - t0, removed=removed)
        atomic_write_text(marker, json.dumps({"video": job.name, "complete": True, "frames": result.frames,
                                              "propagated": propagated,
                                              "seconds": round(result.seconds, 3), "settings": result_key(settings)},
                                             indent=1) + "\n")
        return result


def result_key(settings: RunSettings) -> dict:
    """What a video's masks depend on besides its frames and references: the factors, the backbone and
    the working resolution, as JSON reads them back (not where or with how many threads they ran)."""
    key = dataclasses.asdict(settings)
    for name in ("device", "threads", "feature_cache"):
        del key[name]
    return json.loads(json.dumps(key))


def complete_result(job: BatchJob, settings: RunSettings) -> BatchResult | None:
    """The result of ``job`` when its output folder holds a finished run (its marker), else None.

    A folder finished with other settings is refused (``UsageError``): resuming would mix two runs."""
    try:
        record = json.loads((job.out / COMPLETE_MARKER).read_text(encoding="utf-8"))
        if record.get("complete") is not True:
            return None  # a run of ours that did not finish: redone
        frames, propagated, key = int(record["frames"]), int(record["propagated"]), record["settings"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # an unreadable marker proves nothing: the video is run again
    if key != result_key(settings):
        raise UsageError(f"{job.out} was propagated with other options; --resume finishes a run with the same "
                         "options (give another --out, or --overwrite to redo every video)")
    return BatchResult(job.name, frames, propagated, 0.0, resumed=True)


def remove_stale_masks(folder: Path, num_frames: int) -> int:
    """Delete the ``NNNNN.png`` masks of frames >= ``num_frames`` (left by an earlier, longer video
    in a folder the user asked to overwrite), so the folder holds this run's masks only; their number."""
    stale = [p for p in folder.glob("*.png") if (index := mask_index(p.name)) is not None and index >= num_frames]
    for path in stale:
        path.unlink()
    return len(stale)


def _job_frames(job: BatchJob) -> int:
    """Frames to propagate, for the progress bar's total (an estimate when the masks are unread)."""
    try:
        with open_video(job.source) as video:
            n = len(video)
    except AnnotatorError:
        return 0
    if job.masks.is_dir() and not job.first_only:
        return max(n - len(list(job.masks.glob("*.png"))), 0)
    return max(n - 1, 0)


def _worker(job: BatchJob, settings: RunSettings, overwrite: bool, progress) -> BatchResult:
    """Runs in a worker process: one job, frames reported through the queue, errors returned."""
    return run_in_worker(job, settings, overwrite, lambda i: progress.put((job.name, i)))


def run_in_worker(job: BatchJob, settings: RunSettings, overwrite: bool,
                  on_frame: Callable[[int], None]) -> BatchResult:
    """One video in a worker (a process of the pool, a Ray task): with its share of the threads, every
    error returned in the result, so one video never stops the batch."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    return _guarded(job, settings, overwrite, on_frame)


def _guarded(job: BatchJob, settings: RunSettings, overwrite: bool, on_frame) -> BatchResult:
    t0 = time.perf_counter()
    try:
        return run_job(job, settings, on_frame, overwrite=overwrite)
    except AnnotatorError as exc:
        return BatchResult(job.name, 0, 0, time.perf_counter() - t0, str(exc))
    except OSError as exc:  # a full disk, a vanished folder: that video fails, the batch goes on
        return BatchResult(job.name, 0, 0, time.perf_counter() - t0, f"{exc.strerror or exc}: {exc.filename or ''}".strip(": "))
    except Exception as exc:  # noqa: BLE001 - one video's crash must not lose the others' work
        return BatchResult(job.name, 0, 0, time.perf_counter() - t0, f"internal error: {type(exc).__name__}: {exc}")


def batch_devices(device: str, workers: int) -> list[str]:
    """The device of each worker: every visible GPU in turn for ``cuda``/``auto`` on a multi-GPU host, else ``device``."""
    try:
        gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install falls back to what was asked
        gpus = 0
    if gpus > 1:
        return [f"cuda:{k % gpus}" for k in range(workers)]
    return [device] * workers


def shared_threads(cores: int, workers: int) -> int:
    """CPU threads of each of ``workers`` videos run side by side on ``cores``."""
    return max(1, cores // max(workers, 1))


@dataclasses.dataclass
class BatchStart:
    """What a batch runner has once :func:`start_batch` has run: what to do, and how to report it."""

    todo: list[int]
    """Indices of the jobs to run."""
    results: dict[int, BatchResult]
    """Results so far, by job index (those skipped as complete)."""
    overwrite: bool
    """Whether the jobs left may replace masks (with ``resume`` they may hold an interrupted run's)."""
    report: Callable[[str, int], None]
    """``on_frame``, or a no-op."""
    finished: Callable[[BatchResult], None]
    """``on_done``, or a no-op."""

    def in_order(self, n: int) -> list[BatchResult]:
        """The results of the ``n`` jobs in list order."""
        return [self.results[k] for k in range(n)]


def start_batch(jobs: Sequence[BatchJob], settings: RunSettings, *, overwrite: bool = False, resume: bool = False,
                on_frame: Callable[[str, int], None] | None = None,
                on_total: Callable[[int], None] | None = None,
                on_done: Callable[[BatchResult], None] | None = None) -> BatchStart:
    """What every batch runner does before any work: the outputs checked, and with ``resume`` the
    videos already complete skipped (reported to ``on_done``); ``on_total`` gets the frames left.

    Returns the jobs to run and the results of those skipped (:class:`BatchStart`). ``resume`` lets the
    output folders hold masks that a run of ours left unfinished (its marker not yet "complete"):
    those videos are redone. Masks with no marker at all are not ours to replace (``UsageError``,
    unless ``overwrite``)."""
    check_outputs(jobs, overwrite or resume)
    skipped: dict[int, BatchResult] = {}
    if resume:
        for k, job in enumerate(jobs):
            if (result := complete_result(job, settings)) is not None:
                skipped[k] = result
            elif not overwrite and not (job.out / COMPLETE_MARKER).exists() and any(job.out.glob("*.png")):
                raise UsageError(f"{job.out} holds masks that no run of annotator left unfinished; --resume only "
                                 "finishes its own runs (pass --overwrite to replace them)")
    todo = [k for k in range(len(jobs)) if k not in skipped]
    if on_total is not None:
        on_total(sum(_job_frames(jobs[k]) for k in todo))
    finished = on_done or (lambda _r: None)
    for result in skipped.values():
        finished(result)
    return BatchStart(todo, skipped, overwrite or resume, on_frame or (lambda _n, _i: None), finished)


def run_batch(jobs: Sequence[BatchJob], settings: RunSettings, *, workers: int = 1, overwrite: bool = False,
              resume: bool = False, on_frame: Callable[[str, int], None] | None = None,
              on_total: Callable[[int], None] | None = None,
              on_done: Callable[[BatchResult], None] | None = None) -> list[BatchResult]:
    """Run every job, ``workers`` at a time in separate processes (1: in this process), in list order.

    CPU threads are shared out (``settings.threads`` per worker, default: cores / workers); on a
    host with several GPUs each worker takes its own. ``on_total(frames)`` is called once with the
    number of frames to propagate, ``on_frame(job name, frame)`` after each one and ``on_done(result)``
    after each video. ``overwrite``: output folders may hold masks already (see :func:`run_job`);
    ``resume``: skip the videos already complete (see :func:`start_batch`).
    """
    if workers < 1:
        raise UsageError(f"--jobs must be >= 1, got {workers}")
    start = start_batch(jobs, settings, overwrite=overwrite, resume=resume, on_frame=on_frame, on_total=on_total,
                        on_done=on_done)
    todo, results, overwrite = start.todo, start.results, start.overwrite
    report, finished = start.report, start.finished
    workers = min(workers, len(todo)) or 1
    if settings.threads is None:
        settings = dataclasses.replace(settings, threads=shared_threads(os.cpu_count() or 1, workers))
    devices = batch_devices(settings.device, workers)
    if workers == 1:
        one = dataclasses.replace(settings, device=devices[0])
        for k in todo:
            results[k] = _guarded(jobs[k], one, overwrite, lambda i, n=jobs[k].name: report(n, i))
            finished(results[k])
        return start.in_order(len(jobs))
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    with context.Manager() as manager:
        progress = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future, int] = {
                pool.submit(_worker, jobs[k], dataclasses.replace(settings, device=devices[n % workers]), overwrite,
                            progress): k for n, k in enumerate(todo)}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress, report)
                for future in done:
                    k = pending.pop(future)
                    try:
                        results[k] = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed for memory
                        results[k] = BatchResult(jobs[k].name, 0, 0, 0.0, f"worker process failed: {exc}")
                    finished(results[k])
            _drain(progress, report)
    return start.in_order(len(jobs))


def _drain(progress, report: Callable[[str, int], None]) -> None:
    while True:
        try:
            name, index = progress.get_nowait()
        except queue_module.Empty:
            return
        report(name, index)
