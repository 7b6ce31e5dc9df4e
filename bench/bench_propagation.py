"""Benchmark: one propagation step, tiled local-window engine vs the naive full-affinity reference.

Prints ms per frame, peak RSS of each engine (each measured in a fresh subprocess, since peak RSS
never goes down) and whether both give the same labels. With a DAVIS root it also times the
backbone on real frames, which gives the end-to-end estimate.

    python bench/bench_propagation.py                      # 480p grid (60x107), random features
    python bench/bench_propagation.py --davis ../shared/data/davis2016 --backbone lite0
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from annotator.core.engine.propagation import ContextFrame, PropagationParams, propagate_frame, propagate_frame_naive


def make_problem(h: int, w: int, channels: int, frames: int, labels: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    # smooth random features: neighbouring cells alike, as in real feature maps
    feats = F.normalize(F.avg_pool2d(torch.randn(frames + 1, channels, h, w, generator=gen), 3, 1, 1), dim=1)
    soft = torch.softmax(torch.randn(frames, labels, h, w, generator=gen) * 4, dim=1)
    context = [ContextFrame(i, feats[i], soft[i], True) for i in range(frames)]
    return feats[frames], context


def run_engine(name: str, args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    target, context = make_problem(args.h, args.w, args.channels, args.frames, args.labels)
    engine = propagate_frame if name != "naive" else propagate_frame_naive
    precision = "bfloat16" if name == "tiled-bf16" else "float32"
    params = PropagationParams(topk=args.topk, radius=args.radius, tile=args.tile, precision=precision)
    engine(target, context, params)  # warm-up
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        out = engine(target, context, params)
        times.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    return {"engine": name, "ms": 1000 * min(times), "rss_mib": rss, "argmax": out.argmax(0).flatten().tolist(),
            "soft_sum": float(out.sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--h", type=int, default=60)
    p.add_argument("--w", type=int, default=107)
    p.add_argument("--channels", type=int, default=112)
    p.add_argument("--frames", type=int, default=21, help="context frames (m=20 + 1 reference)")
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--radius", type=float, default=12.0)
    p.add_argument("--tile", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--engines", default="naive,tiled,tiled-bf16", help="which of naive, tiled, tiled-bf16 to run")
    p.add_argument("--engine", choices=("tiled", "naive", "tiled-bf16"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:  # child process: one engine, report as JSON
        print(json.dumps(run_engine(args.engine, args)))
        return
    results = {}
    names = args.engines.split(",")
    for name in names:
        child = [sys.executable, __file__, "--engine", name] + [
            f"--{k}={v}" for k, v in vars(args).items() if k not in ("engine", "engines") and v is not None]
        results[name] = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
    print(f"grid {args.h}x{args.w}, C={args.channels}, context {args.frames} frames, k={args.topk}, "
          f"radius {args.radius}, tile {args.tile}, {args.threads} threads")
    base = results[names[0]]
    print(f"| engine | ms/frame | peak RSS MiB | speed-up vs {names[0]} | labels equal to {names[0]} |")
    print("|---|---|---|---|---|")
    for name in names:
        r = results[name]
        agree = sum(a == b for a, b in zip(r["argmax"], base["argmax"])) / len(base["argmax"])
        print(f"| {name} | {r['ms']:.0f} | {r['rss_mib']:.0f} | {base['ms'] / r['ms']:.1f}x | {100 * agree:.2f}% |")


if __name__ == "__main__":
    main()
