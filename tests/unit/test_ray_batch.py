"""The batch on Ray (``propagate ROOT --ray``): the local batch's masks, failures kept to their video,
dead workers retried, ``--resume``. Ray is a test dependency (the ``test`` extra pulls ``annotator[ray]``):
these tests run a real local Ray with two CPUs and a small object store, started by the tests."""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import ray

from annotator.cli import main
from annotator.core.errors import UsageError
from annotator.core.io.labels import read_mask_folder, write_mask
from annotator.core.runs.batch import COMPLETE_MARKER, davis_jobs
from annotator.core.runs.ray_batch import connect, run_ray_batch, task_shape
from annotator.core.runs.settings import RunSettings
from tests.conftest import REPO
from tests.synthetic import make_davis_root

FAST = ["--short-side", "0", "--stage", "s3", "-q"]
SETTINGS = RunSettings(short_side=None, stage="s3")


def _files(folder: Path) -> dict[str, bytes]:
    """The bytes of every mask under ``folder``, by relative path (the markers hold timings: left out)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _summary(out: Path) -> dict[str, dict[str, str]]:
    return {r["video"]: r for r in csv.DictReader((out / "summary.csv").open())}


@pytest.fixture()
def no_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


# ------------------------------------------------------------------------------- no Ray session needed


def test_without_the_extra_ray_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    make_davis_root(tmp_path / "davis", names=("alpha",))
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    assert main(["propagate", str(tmp_path / "davis"), "--out", str(tmp_path / "out"), "--ray", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "annotator: error: --ray needs Ray, which is not installed: pip install 'annotator[ray]'"
    assert not (tmp_path / "out").exists()


def test_ray_options_that_make_no_sense_are_refused(tmp_path, capsys, clip):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",))
    out = str(tmp_path / "out")
    assert main(["propagate", str(root), "--out", out, "--ray", "--jobs", "2", *FAST]) == 2
    assert "--jobs is for a batch on this machine" in capsys.readouterr().err
    # the optional ADDRESS swallowed the root
    assert main(["propagate", "--out", out, "--ray", str(root), *FAST]) == 2
    assert "give the DAVIS root before --ray" in capsys.readouterr().err
    frames, mask, _ = clip
    assert main(["propagate", str(frames), "--masks", str(mask), "--out", out, "--ray", *FAST]) == 2
    assert "apply to a batch" in capsys.readouterr().err
    assert not Path(out).exists()


def test_each_task_asks_for_a_gpu_where_the_cluster_has_them_else_a_share_of_the_cpus():
    auto = RunSettings()
    # a GPU each, with the CPUs a GPU node has per GPU; the backbone on that GPU
    assert task_shape([(16, 4), (8, 0)], 100, auto) == task_shape([(16, 4)], 1, auto)
    shape = task_shape([(16, 4), (8, 0)], 100, auto)
    assert (shape.num_gpus, shape.num_cpus, shape.threads, shape.device) == (1, 4, 4, "cuda")
    assert task_shape([(16, 4)], 3, RunSettings(device="cuda:1")).device == "cuda"  # Ray shows each task its GPU as 0
    # CPU only: like --jobs, one video per core when there are more videos than cores ...
    shape = task_shape([(2, 0)], 20, auto)
    assert (shape.num_gpus, shape.num_cpus, shape.threads, shape.device) == (0, 1, 1, "cpu")
    # ... and the cores shared out when there are fewer, no task bigger than a node
    assert task_shape([(8, 0)], 2, auto).threads == 4
    assert task_shape([(8, 0), (8, 0)], 1, auto).threads == 8
    assert task_shape([(8, 0)], 2, RunSettings(threads=3)).num_cpus == 3
    assert task_shape([(16, 4)], 2, RunSettings(device="cpu")).num_gpus == 0
    with pytest.raises(UsageError, match="has no GPU"):
        task_shape([(8, 0)], 2, RunSettings(device="cuda"))


# ------------------------------------------------------------------------------- a local Ray started on demand


def test_a_local_ray_started_on_demand_writes_the_local_batchs_masks_byte_for_byte(tmp_path, capsys, no_ray_address):
    assert not ray.is_initialized()
    root = tmp_path / "davis"
    make_davis_root(root)
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(["propagate", str(root), "--out", str(local), *FAST]) == 0
    capsys.readouterr()
    assert main(["propagate", str(root), "--out", str(on_ray), "--ray", *FAST]) == 0
    assert not ray.is_initialized()  # the Ray it started is shut down
    assert "2/2 ok" in capsys.readouterr().out
    written = _files(on_ray)
    assert sorted(written) == [f"{n}/{i:05d}.png" for n in ("alpha", "beta") for i in range(5)]
    assert written == _files(local)
    rows = _summary(on_ray)
    assert [rows[n]["status"] for n in ("alpha", "beta", "total")] == ["ok", "ok", "2/2 ok"]
    assert rows["alpha"]["frames"] == "5"
    assert (on_ray / "alpha" / COMPLETE_MARKER).is_file()


def test_a_local_ray_runs_its_tasks_at_our_priority_not_below_it(no_ray_address):
    """Ray's default would start the workers at niceness 15: beside any other work on the machine a
    `--ray` run then crawls where `--jobs` keeps its share (measured: 6% of a core each)."""
    assert not ray.is_initialized()
    assert connect(ray, None)
    try:
        assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == os.nice(0)
    finally:
        ray.shutdown()


# ------------------------------------------------------------------------------- a Ray session the tests start


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray of two CPUs whose workers load tests.ray_hooks (a video can be told to kill its worker)."""
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(address="local", num_cpus=2, object_store_memory=128 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING,
             # as a local Ray started by --ray: workers at niceness 15 starve beside other jobs, and the test times out
             _system_config={"worker_niceness": 0},
             runtime_env={"worker_process_setup_hook": "tests.ray_hooks.die_once_where_asked",
                          "env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()


def test_a_failing_video_is_reported_and_does_not_stop_the_others(tmp_path, capsys, ray_session):
    root = tmp_path / "davis"
    make_davis_root(root, names=("good", "wrongsize"))
    write_mask(root / "Annotations" / "480p" / "wrongsize" / "00000.png", np.zeros((32, 32), np.uint8))
    out = tmp_path / "out"
    assert main(["propagate", str(root), "--out", str(out), "--ray", *FAST]) == 1
    assert ray.is_initialized()  # the session the caller opened stays open
    assert "1 of 2 video(s) failed" in capsys.readouterr().err
    rows = _summary(out)
    assert rows["good"]["status"] == "ok" and rows["total"]["status"] == "1/2 ok"
    assert "mask of frame 0 is 32x32 but the video is 96x64" in rows["wrongsize"]["status"]
    assert len(read_mask_folder(out / "good")) == 5 and (out / "good" / COMPLETE_MARKER).is_file()
    assert not (out / "wrongsize" / COMPLETE_MARKER).exists()


def test_a_worker_that_dies_is_retried_and_its_video_finished(tmp_path, ray_session):
    root = tmp_path / "davis"
    make_davis_root(root)
    out = tmp_path / "out"
    out.mkdir()
    (out / "alpha.die-once").touch()  # alpha's first attempt ends its worker process with os._exit
    frames: list[tuple[str, int]] = []
    results = run_ray_batch(davis_jobs(root, out), SETTINGS, on_frame=lambda n, i: frames.append((n, i)))
    assert [(r.name, r.ok, r.frames) for r in results] == [("alpha", True, 5), ("beta", True, 5)]
    attempts = (out / "alpha.attempts").read_text().split()
    assert len(attempts) == 2 and attempts[0] != attempts[1]  # the second attempt ran in a new process
    assert not (out / "alpha.die-once").exists()
    assert sorted(frames) == [(n, i) for n in ("alpha", "beta") for i in range(1, 5)]  # each frame once
    assert len(read_mask_folder(out / "alpha")) == 5 and (out / "alpha" / COMPLETE_MARKER).is_file()

    # with no retry left the video fails, alone
    again = tmp_path / "again"
    again.mkdir()
    (again / "beta.die-once").touch()
    results = run_ray_batch(davis_jobs(root, again), SETTINGS, max_retries=0)
    assert results[0].ok and not results[1].ok
    assert results[1].error.startswith("worker failed (0 retries spent)")


def test_resume_skips_complete_videos_and_redoes_an_interrupted_one(tmp_path, capsys, ray_session):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha", "beta", "gamma"))
    out = tmp_path / "out"
    assert main(["propagate", str(root), "--out", str(out), "--ray", *FAST]) == 0
    whole = _files(out)
    # a run killed half-way through beta: some of its masks written, its marker not complete
    (out / "beta" / COMPLETE_MARKER).write_text(json.dumps({"video": "beta", "complete": False}))
    for i in (3, 4):
        (out / "beta" / f"{i:05d}.png").unlink()
    untouched = {p: p.stat().st_mtime_ns for n in ("alpha", "gamma") for p in (out / n).iterdir()}
    capsys.readouterr()

    # the same command again refuses to overwrite; with other options --resume refuses to mix two runs
    assert main(["propagate", str(root), "--out", str(out), "--ray", *FAST]) == 2
    assert main(["propagate", str(root), "--out", str(out), "--ray", "--resume", "-k", "5", *FAST]) == 2
    assert "was propagated with other options" in capsys.readouterr().err

    assert main(["propagate", str(root), "--out", str(out), "--ray", "--resume", *FAST]) == 0
    rows = _summary(out)
    assert rows["alpha"]["status"] == rows["gamma"]["status"] == "ok, complete already (--resume)"
    assert rows["beta"]["status"] == "ok" and rows["total"]["status"] == "3/3 ok"
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched  # not redone
    assert (out / "beta" / COMPLETE_MARKER).is_file()
    assert _files(out) == whole
