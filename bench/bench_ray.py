"""Benchmark: the overhead of Ray, a DAVIS root propagated with ``--jobs 1``, ``--jobs 2`` and ``--ray``.

Each mode is one ``annotator propagate ROOT --out TMP -q`` in a fresh subprocess (so each pays its
own start-up: importing torch, loading the backbone, and for ``--ray`` starting a local Ray with
one worker per core), timed wall clock from start to exit. Prints a markdown table: wall seconds,
frames written, frames/s over the whole run, and how many masks differ (SHA-256) from each mode
before it. Options after ``--`` go to every run (``-- --preset fast``). A last row times Ray's own
fixed cost alone: starting a local Ray as ``--ray`` does, one empty task, shutting it down.

    python bench/bench_ray.py ../shared/data/davis2016                       # all its sequences
    python bench/bench_ray.py ../shared/data/davis2016 --sequences dog-agility rollerblade
    python bench/bench_ray.py ROOT --modes jobs1 ray -- --preset fast
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "ray": ["--ray"]}
LABELS = {"jobs1": "`--jobs 1`", "jobs2": "`--jobs 2`", "ray": "`--ray` (local Ray started by the run)"}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.png"))}


RAY_ALONE = """
import time
t0 = time.perf_counter()
import ray
from annotator.core.runs.ray_batch import connect
connect(ray, None)  # as `--ray` starts a local Ray
ray.get(ray.remote(lambda: None).remote())
ray.shutdown()
print(time.perf_counter() - t0)
"""


def main() -> int:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="DAVIS root (JPEGImages/480p, Annotations/480p)")
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequences (default: all)")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--digests", metavar="JSON", help="write every mask's SHA-256 per mode here")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    env = {**os.environ}
    env.pop("RAY_ADDRESS", None)  # --ray here means a local Ray on this machine
    rows: list[tuple[str, float, int, int]] = []
    by_mode: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        for mode in args.modes:
            out = Path(tmp) / mode
            cmd = [sys.executable, "-m", "annotator.cli", "propagate", args.root, "--out", str(out), "-q",
                   *(["--sequences", *args.sequences] if args.sequences else []), *MODES[mode], *extra]
            t0 = time.perf_counter()
            run = subprocess.run(cmd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if run.returncode != 0:
                print(f"{mode}: exit {run.returncode}\n{run.stdout}\n{run.stderr}", file=sys.stderr)
                return 1
            digests = _digests(out)
            sequences = [p for p in out.iterdir() if p.is_dir()]
            propagated = len(digests) - len(sequences)  # each sequence's first mask is its reference
            rows.append((mode, wall, len(digests), propagated))
            by_mode[mode] = digests
            print(f"{mode}: {wall:.1f} s", file=sys.stderr, flush=True)
            shutil.rmtree(out)
    if "ray" in args.modes:
        alone = subprocess.run([sys.executable, "-c", RAY_ALONE], env=env, capture_output=True, text=True, check=True)
        ray_alone = float(alone.stdout.split()[-1])
    if args.digests:  # which masks differ, for a closer look
        Path(args.digests).write_text(json.dumps(by_mode, indent=1))
    print("| mode | wall s | masks written | frames/s (propagated / wall) | masks differing from the modes above |")
    print("|---|---|---|---|---|")
    for i, (mode, wall, masks, propagated) in enumerate(rows):
        differing = ", ".join(f"{_differing(by_mode[mode], by_mode[m])} from {LABELS[m]}" for m, *_ in rows[:i])
        print(f"| {LABELS[mode]} | {wall:.1f} | {masks} | {propagated / wall:.2f} | {differing or '-'} |")
    if "ray" in args.modes:
        print(f"| Ray alone: local start, one empty task, shutdown | {ray_alone:.1f} | - | - | - |")
    return 0


def _differing(a: dict[str, str], b: dict[str, str]) -> int:
    """Masks whose bytes differ between two runs (a mask only one of them wrote counts too)."""
    return sum(a.get(k) != b.get(k) for k in a.keys() | b.keys())


if __name__ == "__main__":
    sys.exit(main())
