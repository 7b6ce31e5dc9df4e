"""Crash-test helper: a fork server whose children edit or propagate a project until SIGKILLed.

Run as ``python -m tests.crash_worker`` (by :class:`ForkServer`). It imports everything once, then
for each JSON job read on stdin forks a child that runs the job and reports every completed save
on stdout (``saved ...``, written with one ``os.write``, so it is out before the next step). The
test kills the child with SIGKILL at a random moment, then asks the server to reap it; everything
the child reported comes before the server's ``reaped`` line. Forking from a warm process keeps
each kill cheap (no interpreter and torch start-up per kill). POSIX only.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from annotator.core.model.annotation import AnnotationModel, FrameState
from tests.fakes import ColourBackbone

MAX_CHILD_SECONDS = 30.0


# --------------------------------------------------------------------------------------------- edits


def apply_edit(model: AnnotationModel, seed: int, step: int) -> None:
    """One deterministic edit: the same (state, seed, step) always makes the same change."""
    rng = np.random.default_rng([seed, step])
    n = model.num_frames
    h, w = model.hw
    frame = int(rng.integers(0, n))
    action = int(rng.integers(0, 10))
    ids = [o.id for o in model.objects]
    if action <= 5 or not ids:
        y, x = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        value = int(rng.choice([0, *ids])) if ids else 0
        mask = np.ones((int(rng.integers(2, 20)), int(rng.integers(2, 20))), bool)
        model.paint(frame, mask, value, origin=(y, x))
    elif action == 6:
        labels = rng.choice(np.array([0, *ids], np.uint8), size=(h // 8, w // 8))
        model.set_labels(frame, np.kron(labels, np.ones((8, 8), np.uint8))[:h, :w].copy(), FrameState.PROPAGATED)
    elif action == 7:
        model.clear_frame(frame)
    elif action == 8:
        if len(ids) < 5:
            model.add_object(f"added at {step}")
        else:
            model.update_object(ids[int(rng.integers(0, len(ids)))], name=f"renamed at {step}")
    else:
        oid = ids[int(rng.integers(0, len(ids)))]
        model.update_object(oid, color=tuple(int(c) for c in rng.integers(0, 256, 3)),
                            visible=bool(rng.integers(0, 2)))


# --------------------------------------------------------------------------------------------- jobs


def _say(text: str) -> None:
    os.write(1, (text + "\n").encode())


def _edit_job(job: dict) -> None:
    from annotator.core.project.folder import ChangeTracker, load_project, save_project

    folder = Path(job["project"])
    model = AnnotationModel()
    content = load_project(folder, model)
    changes = ChangeTracker(model, base=(folder, content.data.generation))
    _say("started")
    deadline = time.monotonic() + MAX_CHILD_SECONDS
    step = 0
    while time.monotonic() < deadline:
        apply_edit(model, job["seed"], step)
        step += 1
        if step % 2 == 0:
            save_project(model, folder, changes=changes, video_hash=content.video_hash)
            _say(f"saved {step}")


def _propagate_job(job: dict) -> None:
    from annotator.core.project.autosave import Autosaver
    from annotator.core.features.store import FeatureStore
    from annotator.core.project.folder import load_project
    from annotator.core.engine.propagation import PropagationParams, propagate

    model = AnnotationModel()
    content = load_project(job["project"], model)
    saver = Autosaver(model, job["autosave"], project=job["project"], interval_s=1e9,
                      chunk_frames=job["chunk"], video_hash=content.video_hash)
    saver.start()
    saver.flush()
    _say("started")
    store = FeatureStore(model.video, ColourBackbone(job["delay"]), short_side=None, batch_size=1)
    refs = {i: np.array(lab) for i, lab in model.reference_frames().items()}
    params = PropagationParams(context=4, topk=5, radius=3)
    for result in propagate(store, refs, 0, model.num_frames, params, output_hw=model.hw,
                            label_ids=model.label_ids()):
        model.set_labels(result.index, result.labels, FrameState.PROPAGATED)
        if saver.tick():
            _say(f"saved {result.index}")
    saver.flush()
    _say(f"saved {model.num_frames - 1}")
    _say("finished")


def _warm_up_propagation() -> None:
    """Load the compiled top-k selection once here, not in every child (it takes longer than a kill's delay)."""
    import torch

    from annotator.core.engine.propagation import ContextFrame, PropagationParams, propagate_frame

    features = torch.nn.functional.normalize(torch.randn(4, 5, 6), dim=0)
    context = [ContextFrame(0, features, torch.ones(1, 5, 6), True), ContextFrame(1, features, torch.ones(1, 5, 6), False)]
    propagate_frame(features, context, PropagationParams(radius=2, precision="float32"))


def _serve() -> None:
    import torch

    torch.set_num_threads(1)  # no thread pool exists yet at fork time; children stay single-threaded
    _warm_up_propagation()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        if "reap" in cmd:
            _, status = os.waitpid(cmd["reap"], 0)
            sys.stdout.write(f"reaped {cmd['reap']} {status}\n")
            sys.stdout.flush()
            continue
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                (_edit_job if cmd["job"] == "edit" else _propagate_job)(cmd)
            except BaseException as exc:  # noqa: BLE001 - reported, then the child ends
                _say(f"error {type(exc).__name__}: {exc}")
                code = 1
            os._exit(code)
        sys.stdout.write(f"child {pid}\n")
        sys.stdout.flush()


# --------------------------------------------------------------------------------------------- test side


class ForkServer:
    """The test's handle on a running ``tests.crash_worker`` process."""

    def __init__(self, cwd: str | os.PathLike[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(cwd)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.crash_worker"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        # Start-up imports torch and the app: seconds on an idle machine, over a minute on a loaded one
        # (a 60 s wait failed once beside a packaging build); a wait, not a measurement.
        assert self.next_line(300) == "ready"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("<eof>")

    def next_line(self, timeout: float = 20.0) -> str:
        return self.lines.get(timeout=timeout)

    def send(self, cmd: dict) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def start(self, job: dict) -> tuple[int, list[str]]:
        """Fork a child for ``job``; returns its pid once it said ``started`` and the lines so far."""
        self.send(job)
        pid, seen = None, []
        while pid is None or "started" not in seen:
            line = self.next_line()
            if line.startswith("child "):
                pid = int(line.split()[1])
            else:
                seen.append(line)
                if line.startswith("error") or line == "<eof>":
                    raise RuntimeError(f"crash worker failed: {line}")
        return pid, seen

    def kill_and_collect(self, pid: int, seen: list[str]) -> list[str]:
        """SIGKILL the child (if still running), reap it, return everything it reported."""
        import signal

        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.send({"reap": pid})
        while True:
            line = self.next_line()
            if line.startswith(f"reaped {pid}"):
                return seen
            if line.startswith("error") or line == "<eof>":
                raise RuntimeError(f"crash worker failed: {line}")
            seen.append(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


if __name__ == "__main__":
    _serve()
