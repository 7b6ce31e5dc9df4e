"""Benchmark: the whole propagation pipeline on a real sequence, split by stage, naive vs tiled engine.

Runs FeatureStore + propagate over the first N frames of a sequence (DAVIS frame folder or any
video) at the working resolution, each engine in a fresh subprocess so its peak RSS is its own,
and prints ms/frame for decode, features, propagation, upsampling/argmax, plus frames/s end to end
and whether both engines produced identical label maps.

    python bench/bench_pipeline.py ../shared/data/davis2016/JPEGImages/480p/dog-agility --frames 12
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time

import torch

from annotator.core.backbones import load_backbone
from annotator.core.features import FeatureStore
from annotator.core.labels import read_mask
from annotator.core.propagation import PropagationParams, propagate, propagate_frame, propagate_frame_naive
from annotator.core.video import open_video


def run(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    backbone = load_backbone(args.backbone, stage=args.stage, device=args.device)
    engine = propagate_frame if args.engine == "tiled" else propagate_frame_naive
    with open_video(args.source) as video:
        first = read_mask(args.mask) if args.mask else None
        store = FeatureStore(video, backbone, short_side=args.short_side or None)
        if first is None:  # no mask given: a centred box, enough for timing
            import numpy as np

            first = np.zeros(video.hw, np.uint8)
            h, w = video.hw
            first[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
        timings: dict[str, float] = {}
        digest = hashlib.sha256()
        n = min(args.frames, len(video))
        t0 = time.perf_counter()
        for result in propagate(store, {0: first}, 0, n, PropagationParams(), output_hw=video.hw,
                                engine=engine, timings=timings):
            digest.update(result.labels.tobytes())
        seconds = time.perf_counter() - t0
    timings.update(store.timings)
    frames = n - 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"engine": args.engine, "frames": frames, "fps": frames / seconds, "rss_mib": rss,
            "ms": {k: 1000 * v / frames for k, v in timings.items()}, "digest": digest.hexdigest(),
            "backbone": backbone.name, "grid": list(store(0).shape)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="video file or frame folder")
    p.add_argument("--mask", default=None, help="label map of frame 0 (default: a centred box)")
    p.add_argument("--frames", type=int, default=12, help="frames to propagate (naive is slow: keep it small)")
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--stage", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--short-side", type=int, default=480)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--engines", default="tiled,naive")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.engine:
        print(json.dumps(run(args)))
        return
    results = []
    for engine in args.engines.split(","):
        child = [sys.executable, __file__, args.source, "--engine", engine, "--frames", str(args.frames),
                 "--backbone", args.backbone, "--device", args.device, "--short-side", str(args.short_side)]
        for opt in ("mask", "stage", "threads"):
            if getattr(args, opt) is not None:
                child += [f"--{opt}", str(getattr(args, opt))]
        results.append(json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout))
    r0 = results[0]
    print(f"{args.source}: {r0['frames']} frames propagated, backbone {r0['backbone']}, feature grid {r0['grid']}, "
          f"{torch.get_num_threads() if not args.threads else args.threads} threads, device {args.device}")
    stages = ["decode", "features", "propagation", "upsample"]
    print("| engine | " + " | ".join(f"{s} ms/frame" for s in stages) + " | frames/s | peak RSS MiB |")
    print("|---" * (len(stages) + 3) + "|")
    for r in results:
        print(f"| {r['engine']} | " + " | ".join(f"{r['ms'].get(s, 0):.0f}" for s in stages)
              + f" | {r['fps']:.2f} | {r['rss_mib']:.0f} |")
    if len(results) > 1:
        same = len({r["digest"] for r in results}) == 1
        print(f"identical label maps: {same}; end-to-end speed-up {results[0]['fps'] / results[1]['fps']:.1f}x")


if __name__ == "__main__":
    main()
