"""A batch on a Ray cluster: one Ray task per video, each running the local batch's per-video function.

Ray is optional (``pip install 'annotator[ray]'``) and imported only here, only when asked
(``annotator propagate ROOT|--list FILE --out DIR --ray [ADDRESS]``). The driver plans the batch as
the local one does (:func:`~annotator.core.runs.batch.start_batch`: outputs checked before any
work, ``--resume`` skipping the videos already complete), then submits one task per video that
calls :func:`~annotator.core.runs.batch.run_in_worker`, the function a local worker process
calls, so the masks are the local batch's byte for byte. Every frame a task writes is reported to a
small actor the driver reads, which draws one progress bar for the whole dataset.

Failures: a video that fails (bad input, a full disk) returns its error in its result and is not
retried; a task whose worker process dies (killed, out of memory, a lost node) is retried by Ray
(``max_retries``), and run again from its first frame. Inputs and outputs travel as paths: every
node must see them at the same paths (a shared file system); only paths and small results go
through Ray's object store.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from annotator.core.errors import UsageError
from annotator.core.runs.batch import BatchJob, BatchResult, run_in_worker, shared_threads, start_batch
from annotator.core.runs.settings import RunSettings

__all__ = ["INSTALL_HINT", "TaskShape", "connect", "import_ray", "run_ray_batch", "task_shape"]

INSTALL_HINT = "pip install 'annotator[ray]'"

LOCAL_OBJECT_STORE_BYTES = 256 * 2**20
"""Object store of a local Ray started on demand: only paths and results travel through it, and
Ray's default (30% of the memory, in shared memory) would not start on a small or busy machine."""

MAX_RETRIES = 3
"""Times a video is run again when its worker process dies."""

_POLL_SECONDS = 0.2


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line ``UsageError`` naming the install command."""
    try:
        import ray
    except ImportError as exc:
        raise UsageError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


@dataclass(frozen=True)
class TaskShape:
    """What each video's task asks of the cluster and how it runs there."""

    num_cpus: int
    num_gpus: int
    threads: int
    device: str


def task_shape(nodes: Sequence[tuple[float, float]], videos: int, settings: RunSettings) -> TaskShape:
    """The task of each of ``videos`` on a cluster of ``nodes`` (CPUs, GPUs of each).

    Where the cluster has GPUs (and ``settings.device`` allows one) each task takes one GPU and the
    CPUs a GPU node has per GPU. Otherwise the cluster's CPUs are shared out as ``--jobs`` shares a
    machine's (one video per core when there are more videos than cores), no task asking for more
    CPUs than the biggest node has. ``settings.threads`` fixes the threads (and CPUs) per task.
    """
    if not nodes:
        raise UsageError("the Ray cluster has no live node")
    device = settings.device
    gpu_nodes = [(cpus, gpus) for cpus, gpus in nodes if gpus >= 1]
    if gpu_nodes and (device == "auto" or device.startswith("cuda")):
        per_gpu = max(1, int(min(cpus // gpus for cpus, gpus in gpu_nodes)))
        threads = settings.threads or per_gpu
        # "cuda", not "cuda:N": Ray shows a task only its own GPU, as device 0
        return TaskShape(min(threads, per_gpu), 1, threads, "cuda")
    if device.startswith("cuda"):
        raise UsageError(f"--device {device} but the Ray cluster has no GPU")
    total = int(sum(cpus for cpus, _ in nodes))
    biggest = int(max(cpus for cpus, _ in nodes))
    if biggest < 1:
        raise UsageError("the Ray cluster has no CPU to run a task on")
    threads = settings.threads or shared_threads(total, min(total, videos))
    threads = min(threads, biggest)  # a task runs on one node
    return TaskShape(threads, 0, threads, "cpu" if device == "auto" else device)


class _Progress:
    """Ray actor: the frames the tasks wrote, until the driver reads them."""

    def __init__(self) -> None:
        self._frames: list[tuple[str, int]] = []

    def frame(self, name: str, index: int) -> None:
        self._frames.append((name, index))

    def take(self) -> list[tuple[str, int]]:
        frames, self._frames = self._frames, []
        return frames

    def ping(self) -> None:
        """Answered after every call this caller made before it (an actor runs one caller's calls in order)."""


def _task(job: BatchJob, settings: RunSettings, overwrite: bool, progress) -> BatchResult:
    """One video, in a Ray worker process: exactly what a local worker process runs."""
    import ray

    result = run_in_worker(job, settings, overwrite, lambda index: progress.frame.remote(job.name, index))
    # the frame reports are sent without waiting: make sure all arrived before the driver hears "done"
    ray.get(progress.ping.remote())
    return result


def connect(ray: ModuleType, address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray with one CPU
    per core; True when this call started the session (and so ends it)."""
    if ray.is_initialized():
        return False  # a session the caller opened (a test, a notebook) is used as it is
    address = address or os.environ.get("RAY_ADDRESS") or None
    # the tasks' own output would tear the progress bar; Ray keeps it in its session's log folder
    common = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            # "local": a new instance of our own, not a `ray start` cluster that happens to run here
            # Ray starts its workers at niceness 15 (a dedicated node keeps its raylet responsive): on a
            # machine doing anything else the run would crawl where `--jobs` does not; ours run as we do
            ray.init(address="local", num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     include_dashboard=False, _system_config={"worker_niceness": 0}, **common)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"cannot start or reach {where}: {first}") from exc
    return True


def _failure(exc: BaseException, retries: int) -> str:
    lines = str(exc).strip().splitlines()
    why = lines[0] if lines else type(exc).__name__
    return f"worker failed ({retries} retries spent): {why}"


def run_ray_batch(jobs: Sequence[BatchJob], settings: RunSettings, *, address: str | None = None,
                  overwrite: bool = False, resume: bool = False,
                  on_frame: Callable[[str, int], None] | None = None,
                  on_total: Callable[[int], None] | None = None,
                  on_done: Callable[[BatchResult], None] | None = None,
                  max_retries: int = MAX_RETRIES) -> list[BatchResult]:
    """Run every job as a Ray task; the results in list order, as :func:`~annotator.core.runs.batch.run_batch`.

    ``address``: a cluster to join (else ``RAY_ADDRESS``, else a local Ray started here and shut
    down at the end; a session already open in this process is used as it is). The callbacks are
    those of ``run_batch``; a frame a retried task writes again is reported once.
    """
    ray = import_ray()
    start = start_batch(jobs, settings, overwrite=overwrite, resume=resume, on_frame=on_frame, on_total=on_total,
                        on_done=on_done)
    if not start.todo:
        return start.in_order(len(jobs))
    todo, results, overwrite = start.todo, start.results, start.overwrite
    report, finished = start.report, start.finished
    started = connect(ray, address)
    pending: dict = {}
    try:
        nodes = [(n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in ray.nodes() if n["Alive"]]
        shape = task_shape(nodes, len(todo), settings)
        task_settings = dataclasses.replace(settings, threads=shape.threads, device=shape.device)
        progress = ray.remote(num_cpus=0)(_Progress).remote()
        # retry_exceptions=False: a Python error is the video's own (and already in its result);
        # only a dead worker process is worth running again
        task = ray.remote(_task).options(num_cpus=shape.num_cpus, num_gpus=shape.num_gpus,
                                         max_retries=max_retries, retry_exceptions=False)
        pending = {task.remote(jobs[k], task_settings, overwrite, progress): k for k in todo}
        seen: set[tuple[str, int]] = set()

        def drain() -> None:
            for frame in ray.get(progress.take.remote()):
                if frame not in seen:  # a retried task writes its frames again
                    seen.add(frame)
                    report(*frame)

        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=_POLL_SECONDS)
            drain()
            for ref in ready:
                k = pending.pop(ref)
                try:
                    results[k] = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died on every attempt
                    results[k] = BatchResult(jobs[k].name, 0, 0, 0.0, _failure(exc, max_retries))
                finished(results[k])
        drain()
    except KeyboardInterrupt:
        for ref in pending:  # leave nothing running on the cluster
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return start.in_order(len(jobs))
