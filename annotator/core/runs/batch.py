"""Propagating many videos in one go: a DAVIS root or a list of videos, spread over processes and devices.

A :class:`BatchJob` is one video with its reference mask(s) and an output folder; :func:`run_job`
propagates it (the same streaming path as ``annotator propagate`` on one video: masks are written
as they are produced, so memory stays flat however long the video). :func:`run_batch` runs jobs
side by side in worker processes (each with its share of the CPU threads, or its own GPU), reports
every frame through one callback so the caller can draw a single progress bar, and never lets one
broken video stop the others: each job ends with a :class:`BatchResult` holding its error, if any.
"""

from __future__ import annotations

import dataclasses
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
from annotator.core.io.labels import mask_files, mask_index, read_mask, read_mask_folder, write_mask
from annotator.core.io.outputs import check_mask_folder, make_folder
from annotator.core.runs.runner import run_video
from annotator.core.runs.settings import BackboneCache, RunSettings
from annotator.core.video import open_video

__all__ = ["BatchJob", "BatchResult", "davis_jobs", "list_jobs", "read_references", "run_batch", "run_job"]


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
        try:
            make_folder(job.out)
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
        return BatchResult(job.name, propagated + len(refs), propagated, time.perf_counter() - t0, removed=removed)


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
    if settings.threads:
        torch.set_num_threads(settings.threads)
    return _guarded(job, settings, overwrite, lambda i: progress.put((job.name, i)))


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


def run_batch(jobs: Sequence[BatchJob], settings: RunSettings, *, workers: int = 1, overwrite: bool = False,
              on_frame: Callable[[str, int], None] | None = None,
              on_total: Callable[[int], None] | None = None) -> list[BatchResult]:
    """Run every job, ``workers`` at a time in separate processes (1: in this process), in list order.

    CPU threads are shared out (``settings.threads`` per worker, default: cores / workers); on a
    host with several GPUs each worker takes its own. ``on_total(frames)`` is called once with the
    number of frames to propagate and ``on_frame(job name, frame)`` after each one. ``overwrite``:
    output folders may hold masks already (see :func:`run_job`).
    """
    if workers < 1:
        raise UsageError(f"--jobs must be >= 1, got {workers}")
    check_outputs(jobs, overwrite)
    workers = min(workers, len(jobs)) or 1
    if on_total is not None:
        on_total(sum(_job_frames(j) for j in jobs))
    report = on_frame or (lambda _n, _i: None)
    if settings.threads is None:
        settings = dataclasses.replace(settings, threads=max(1, (os.cpu_count() or 1) // workers))
    devices = batch_devices(settings.device, workers)
    if workers == 1:
        one = dataclasses.replace(settings, device=devices[0])
        return [_guarded(job, one, overwrite, lambda i, n=job.name: report(n, i)) for job in jobs]
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    with context.Manager() as manager:
        progress = manager.Queue()
        results: dict[int, BatchResult] = {}
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: dict[Future, int] = {
                pool.submit(_worker, job, dataclasses.replace(settings, device=devices[k % workers]), overwrite,
                            progress): k for k, job in enumerate(jobs)}
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress, report)
                for future in done:
                    k = pending.pop(future)
                    try:
                        results[k] = future.result()
                    except Exception as exc:  # noqa: BLE001 - e.g. a worker killed for memory
                        results[k] = BatchResult(jobs[k].name, 0, 0, 0.0, f"worker process failed: {exc}")
            _drain(progress, report)
    return [results[k] for k in range(len(jobs))]


def _drain(progress, report: Callable[[str, int], None]) -> None:
    while True:
        try:
            name, index = progress.get_nowait()
        except queue_module.Empty:
            return
        report(name, index)
