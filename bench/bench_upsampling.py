"""Benchmark: J, F and J&F of upsampling variants on DAVIS, from one propagation pass per sequence.

With soft context labels (the default), what a frame brings to the context does not depend on how
its soft labels are upsampled, so one pass gives every variant exactly: the script keeps each
frame's soft labels and scores each upsampling on them. It also prints the ms/frame of each
variant. Use --feature-cache to skip the backbone on later runs.

    python bench/bench_upsampling.py ../shared/data/davis2016 --feature-cache /tmp/featcache
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from annotator.core.io import davis
from annotator.core.features.backbones import DEFAULT_FLIP, load_backbone
from annotator.core.features.store import FeatureStore
from annotator.core.io.labels import read_mask_folder
from annotator.core.analysis.metrics import evaluate_sequence, summarize
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.propagation import PropagationParams
from annotator.core.engine.upsampling import guided_filter, grey_guide, upsample_soft
from annotator.core.video import open_video

VARIANTS = {
    "bilinear": None,
    "guided r4 eps1e-3": (4, 1e-3),
    "guided r8 eps1e-3": (8, 1e-3),
    "guided r8 eps1e-2": (8, 1e-2),
    "guided r16 eps1e-2": (16, 1e-2),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--stage", default=None)
    p.add_argument("--feature-cache", default=None)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=DEFAULT_FLIP,
                   help="mirror features, as the app (default %(default)s)")
    args = p.parse_args()
    backbone = load_backbone("lite0", stage=args.stage, device="cpu", flip=args.flip)
    names = args.sequences or davis.list_sequences(args.root)
    scores = {v: [] for v in VARIANTS}
    seconds = {v: 0.0 for v in VARIANTS}
    frames = 0
    for name in names:
        gt = read_mask_folder(davis.annotations_dir(args.root, name))
        with open_video(davis.frames_dir(args.root, name)) as video:
            store = FeatureStore(video, backbone, disk_cache=args.feature_cache)
            preds = {v: {0: gt[0]} for v in VARIANTS}
            for r in propagate_video(store, {0: gt[0]}, len(video), PropagationParams(), output_hw=video.hw):
                frame = video.frame(r.index)
                frames += 1
                for variant, setting in VARIANTS.items():
                    t0 = time.perf_counter()
                    up = upsample_soft(r.soft, video.hw)
                    if setting is not None:
                        up = guided_filter(grey_guide(frame, video.hw, up.device), up, *setting)
                    preds[variant][r.index] = np.asarray(r.label_ids, np.uint8)[up.max(0).indices.numpy()]
                    seconds[variant] += time.perf_counter() - t0
        for variant in VARIANTS:
            s = evaluate_sequence(preds[variant], gt, name=name)
            scores[variant].append(s)
        print(name, " ".join(f"{v}: {scores[v][-1].jf:.3f}" for v in VARIANTS), flush=True)
    print(f"\n{len(names)} sequences, {frames} frames, backbone {backbone.name}, default factors")
    print("| upsampling | J | F | J&F | ms/frame |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        d = summarize(scores[variant])
        print(f"| {variant} | {d.j_mean:.3f} | {d.f_mean:.3f} | {d.jf:.3f} | {1000 * seconds[variant] / frames:.0f} |")


if __name__ == "__main__":
    main()
