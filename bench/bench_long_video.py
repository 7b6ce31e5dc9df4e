"""Benchmark: peak memory of propagating long videos (1,000 vs 10,000 frames) through the streaming path.

Generates a synthetic 854x480 video (textured objects moving over a textured background, written
as mp4 with OpenCV) of each length, then runs ``annotator propagate VIDEO --masks FIRST --out DIR``
in a fresh child process per length and reads the child's peak resident memory (``ru_maxrss``).
The streaming path decodes frame by frame, keeps bounded frame and feature caches, and writes each
mask as it is produced, so the peak should not grow with the length of the video.

    python bench/bench_long_video.py --frames 1000 10000 --short-side 240
    python bench/bench_long_video.py --frames 200 2000 --workdir /tmp/longvideo   # quick check

The working resolution (``--short-side``, features) is a factor of the run, stated in the output;
the input is always 480p. Videos are kept in ``--workdir`` and reused when they exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

W, H = 854, 480
CHILD = r"""
import json, resource, sys, time
from annotator.cli import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - t0
gpu = None
if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
    gpu = sys.modules["torch"].cuda.max_memory_reserved() / 2**20
print("BENCH " + json.dumps({"code": code, "seconds": seconds, "peak_gpu_mib": gpu,
                             "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_video(path: Path, n_frames: int, seed: int = 0) -> Path:
    """Write an n-frame 854x480 mp4 and the label map of its first frame (``first.png`` beside it)."""
    import cv2

    from annotator.core.io.labels import write_mask

    rng = np.random.default_rng(seed)
    background = cv2.resize(rng.integers(40, 200, (H // 8, W // 8 + 64, 3), dtype=np.uint8), (W + 512, H),
                            interpolation=cv2.INTER_LINEAR)
    size = 96
    patch = cv2.resize(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (W, H))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    first = None
    for t in range(n_frames):
        shift = (2 * t) % 512  # the camera pans, the object wanders on a slow loop
        frame = background[:, shift: shift + W].copy()
        y = int(H / 2 - size / 2 + 120 * np.sin(t / 50))
        x = int(W / 2 - size / 2 + 300 * np.sin(t / 80))
        frame[y: y + size, x: x + size] = patch
        if first is None:
            first = np.zeros((H, W), np.uint8)
            first[y: y + size, x: x + size] = 1
        writer.write(frame[:, :, ::-1])
    writer.release()
    write_mask(path.with_name(path.stem + "-first.png"), first)
    return path


def run_child(video: Path, out: Path, short_side: int, threads: int | None, device: str = "cpu",
              preset: str | None = None) -> dict:
    args = ["propagate", str(video), "--masks", str(video.with_name(video.stem + "-first.png")), "--out", str(out),
            "--short-side", str(short_side), "--device", device, "--overwrite", "-q"]
    if preset:
        args += ["--preset", preset]  # --short-side above still wins, as a given option does
    if threads:
        args += ["--threads", str(threads)]
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(line[6:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--short-side", type=int, default=240, help="working resolution of the features")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="where the backbone and the propagation run (cpu, cuda)")
    p.add_argument("--workdir", default=None, help="where the videos are kept (default: a temporary folder)")
    p.add_argument("--preset", default=None, help="annotator propagate's --preset (default: its default, best); "
                   "--short-side still applies")
    args = p.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="longvideo-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.frames:
        video = work / f"synthetic-{n}.mp4"
        if not video.exists() or not video.with_name(video.stem + "-first.png").exists():
            t0 = time.perf_counter()
            make_video(video, n)
            print(f"wrote {video} ({video.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s",
                  flush=True)
        with tempfile.TemporaryDirectory(dir=work) as out:
            result = run_child(video, Path(out), args.short_side, args.threads, args.device, args.preset)
            written = len(list(Path(out).glob("*.png")))
        if written != n:
            raise SystemExit(f"{n}-frame run wrote {written} masks")
        rows.append({"frames": n, **result})
        gpu = f", peak GPU {result['peak_gpu_mib']:.0f} MiB" if result.get("peak_gpu_mib") is not None else ""
        print(f"{n} frames: {result['seconds']:.0f} s, {n / result['seconds']:.1f} frames/s, "
              f"peak RSS {result['peak_rss_mib']:.0f} MiB{gpu}", flush=True)
    factors = f"preset {args.preset}" if args.preset else "default factors"
    print(f"\n854x480 input, features at short side {args.short_side}, device {args.device}, {factors}, "
          "masks written as produced")
    print("| frames | seconds | frames/s | peak RSS MiB | peak GPU MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        gpu = f"{r['peak_gpu_mib']:.0f}" if r.get("peak_gpu_mib") is not None else "-"
        print(f"| {r['frames']} | {r['seconds']:.0f} | {r['frames'] / r['seconds']:.1f} | {r['peak_rss_mib']:.0f} "
              f"| {gpu} |")
    if len(rows) > 1:
        base = rows[0]["peak_rss_mib"]
        for r in rows[1:]:
            print(f"peak RSS at {r['frames']} frames is {100 * (r['peak_rss_mib'] / base - 1):+.1f}% of {rows[0]['frames']} frames")


if __name__ == "__main__":
    main()
