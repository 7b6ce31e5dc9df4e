"""Benchmark: J, F, J&F and frames/s on DAVIS without and with the optical-flow cue (issue 7, item 1).

The flow cue changes what joins the context, so every weight is a propagation pass of its own.
Use --feature-cache so the backbone runs once per sequence; frames/s then covers propagation,
flow and upsampling (the backbone's cost is the same for every weight and is left out).

    python bench/bench_flow.py ../shared/data/davis2016 --feature-cache /tmp/featcache --weights 0 0.3 0.5

``--time-presets`` only times one DIS flow between consecutive frames for each preset of
:data:`~annotator.core.engine.flow.FLOW_PRESETS` (the reference flow computes two per frame it mixes,
forward and backward), on the first sequence, at the frames' own size, with OpenCV on one thread:

    python bench/bench_flow.py ../shared/data/davis2016 --sequences boat --time-presets
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from annotator.core.io import davis
from annotator.core.features.backbones import load_backbone
from annotator.core.runs.evaluation import evaluate_davis_sequence
from annotator.core.analysis.metrics import summarize
from annotator.core.engine.flow import FLOW_PRESETS, dis_flow, make_dis
from annotator.core.engine.propagation import PropagationParams
from annotator.core.video import open_video


def time_presets(root: str, name: str, pairs: int = 10) -> None:
    """Print the mean milliseconds of one DIS flow per preset over ``pairs`` consecutive frame pairs."""
    cv2.setNumThreads(1)
    with open_video(davis.frames_dir(root, name)) as video:
        grey = [cv2.cvtColor(np.ascontiguousarray(video.frame(i)), cv2.COLOR_RGB2GRAY)
                for i in range(min(pairs + 1, video.num_frames))]
    print(f"| DIS preset | ms per flow ({name}, {grey[0].shape[1]}x{grey[0].shape[0]}, one thread) |")
    print("|---|---|")
    for preset in FLOW_PRESETS:
        dis = make_dis(preset)  # type: ignore[arg-type]
        dis_flow(grey[0], grey[1], dis)  # warm-up
        t0 = time.perf_counter()
        for a, b in zip(grey, grey[1:]):
            dis_flow(a, b, dis)
        print(f"| {preset} | {1000 * (time.perf_counter() - t0) / (len(grey) - 1):.0f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.3, 0.5])
    p.add_argument("--stage", default=None)
    p.add_argument("--feature-cache", default=None)
    p.add_argument("--time-presets", action="store_true", help="only time one flow of each DIS preset")
    args = p.parse_args()
    if args.time_presets:
        time_presets(args.root, (args.sequences or davis.list_sequences(args.root))[0])
        return
    backbone = load_backbone("lite0", stage=args.stage, device="cpu")
    names = args.sequences or davis.list_sequences(args.root)
    runs: dict[float, list] = {w: [] for w in args.weights}
    for name in names:
        for weight in args.weights:
            run = evaluate_davis_sequence(args.root, name, backbone, PropagationParams(flow=weight),
                                          feature_cache=args.feature_cache)
            runs[weight].append(run)
            compute = sum(v for k, v in run.timings.items() if k not in ("decode", "features"))
            print(f"{name} flow={weight}: J&F {run.scores.jf:.3f} ({run.frames / compute:.2f} frames/s)", flush=True)

    header = " | ".join(f"flow {w}" for w in args.weights)
    print(f"\n{len(names)} sequences, backbone {backbone.name}, default factors; J&F per sequence")
    print(f"| sequence | {header} |")
    print("|---" * (len(args.weights) + 1) + "|")
    for i, name in enumerate(names):
        print(f"| {name} | " + " | ".join(f"{runs[w][i].scores.jf:.3f}" for w in args.weights) + " |")
    print("\n| flow weight | J | F | J&F | frames/s (no backbone) | flow ms/frame |")
    print("|---|---|---|---|---|---|")
    for weight in args.weights:
        d = summarize([r.scores for r in runs[weight]])
        frames = sum(r.frames for r in runs[weight])
        compute = sum(v for r in runs[weight] for k, v in r.timings.items() if k not in ("decode", "features"))
        flow = sum(r.timings.get("flow", 0.0) for r in runs[weight])
        print(f"| {weight} | {d.j_mean:.3f} | {d.f_mean:.3f} | {d.jf:.3f} | {frames / compute:.2f} | "
              f"{1000 * flow / frames:.0f} |")


if __name__ == "__main__":
    main()
