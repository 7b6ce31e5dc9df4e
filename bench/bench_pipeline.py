"""Benchmark: the whole propagation pipeline on a real sequence, split by stage, naive vs tiled engine.

Runs FeatureStore + propagate over the first N frames of a sequence (DAVIS frame folder or any
video) at the working resolution, each (backbone, input size, engine) in a fresh subprocess so its
peak RSS is its own, and prints ms/frame for decode, features, propagation, upsampling/argmax and
mask writing, plus frames/s end to end, and whether the tiled and naive engines (both float32)
produced identical label maps. ``default`` is the tiled engine with the default settings (bfloat16
features and matmuls on a CPU that has them); ``ahead`` is ``default`` with the feature store's
read-ahead (the backbone of frame t+1 in a background thread during the propagation of frame t;
``--ahead-threads`` sets torch's threads for that run, shared by both threads); ``torch-topk`` is
``default`` with torch's top-k instead of the compiled selection (the GPU engine, run on this device).

    python bench/bench_pipeline.py ../shared/data/davis2016/JPEGImages/480p/dog-agility --frames 12
    python bench/bench_pipeline.py SEQ --backbones lite0,resnet18,resnet50 --inputs 480p,1080p --frames 6

``--inputs 1080p`` runs on a copy of the frames upscaled to 1920x1080 JPEGs (decode, resizing and
mask writing at full size; the features stay at the working resolution). ResNets use ``--weights``
when given, else randomly initialised torchvision weights saved to a local file (this machine has
no internet: timings only, the labels are meaningless; the loading path is the local-weights one).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from annotator.core.features.backbones import load_backbone
from annotator.core.features.store import FeatureStore
from annotator.core.io.labels import read_mask, write_mask
from annotator.core.engine.flow import FLOW_PRESETS
from annotator.core.engine.presets import DEFAULT_PRESET, PRESETS, fill_unset_options
from annotator.core.engine.propagation import (
    PropagationParams,
    propagate,
    propagate_frame,
    propagate_frame_naive,
    propagate_frame_torch,
)
from annotator.core.video import open_video


def run(args: argparse.Namespace) -> dict:
    threads = args.ahead_threads if args.engine == "ahead" and args.ahead_threads else args.threads
    if threads:
        torch.set_num_threads(threads)
    weights = args.weights
    if args.backbone.startswith("resnet") and weights is None:
        import torchvision

        weights = str(Path(tempfile.mkdtemp()) / f"{args.backbone}-random.pth")
        torch.save(getattr(torchvision.models, args.backbone)().state_dict(), weights)
    # "tiled" and "naive" run in float32 throughout, so their labels can be compared bit for bit;
    # "default" is what the app and the command line do (half precision where the device has it)
    exact = args.engine in ("tiled", "naive")
    backbone = load_backbone(args.backbone, stage=args.stage, device=args.device, weights=weights,
                             half=False if exact else None, flip=args.flip)
    params = PropagationParams(radius=args.radius, context=args.context, context_stride=args.context_stride,
                               reference_stride=args.reference_stride, label_detail=args.label_detail,
                               islands=args.islands, background_bias=args.background_bias,
                               appearance=args.appearance, reference_flow=args.reference_flow,
                               flow_preset=args.flow_preset, colour_grow=args.colour_grow,
                               precision="float32" if exact else "auto")
    engine = {"naive": propagate_frame_naive, "torch-topk": propagate_frame_torch}.get(args.engine, propagate_frame)
    # the masks are written for the write's time only: a folder of its own, removed after the run
    with open_video(args.source) as video, tempfile.TemporaryDirectory(prefix="bench-masks-") as masks:
        out_dir = Path(masks)
        first = read_mask(args.mask) if args.mask else None
        store = FeatureStore(video, backbone, short_side=args.short_side or None, read_ahead=args.engine == "ahead")
        if first is None:  # no mask given: a centred box, enough for timing
            import numpy as np

            first = np.zeros(video.hw, np.uint8)
            h, w = video.hw
            first[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
        timings: dict[str, float] = {}
        digest = hashlib.sha256()
        n = min(args.frames, len(video))
        t0 = time.perf_counter()
        for result in propagate(store, {0: first}, 0, n, params, output_hw=video.hw,
                                engine=engine, timings=timings, frames=video.frame):
            digest.update(result.labels.tobytes())
            t_write = time.perf_counter()
            write_mask(out_dir / f"{result.index:05d}.png", result.labels)
            timings["write"] = timings.get("write", 0.0) + time.perf_counter() - t_write
        seconds = time.perf_counter() - t0
        # frame 0's features may have left the store's bounded cache on a long run, and the video
        # closes with this block: take the grid's shape while both are open
        grid = list(store(0).shape)
        store.close()
    timings.update(store.timings)
    frames = n - 1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # on a GPU the memory that matters is the device's (the allocator's peak, tensors and cache)
    gpu = torch.cuda.max_memory_reserved() / 2**20 if torch.device(args.device).type == "cuda" else None
    return {"engine": args.engine, "frames": frames, "fps": frames / seconds, "rss_mib": rss, "gpu_mib": gpu,
            "ms": {k: 1000 * v / frames for k, v in timings.items()}, "digest": digest.hexdigest(),
            "threads": torch.get_num_threads(), "backbone": backbone.name + ("+bf16" if backbone.dtype == torch.bfloat16 else ""), "grid": grid, "input": f"{video.hw[1]}x{video.hw[0]}"}


def upscaled_copy(source: str, frames: int, hw: tuple[int, int] = (1080, 1920)) -> Path:
    """The first frames of a video as JPEGs at 1920x1080 in a temporary folder (the caller deletes it)."""
    import cv2

    folder = Path(tempfile.mkdtemp(prefix="bench-1080p-"))
    with open_video(source) as video:
        for i in range(min(frames, len(video))):
            big = cv2.resize(video.frame(i), (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(folder / f"{i:05d}.jpg"), big[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="video file or frame folder")
    p.add_argument("--mask", default=None, help="label map of frame 0 (default: a centred box)")
    p.add_argument("--frames", type=int, default=12, help="frames to propagate (naive is slow: keep it small)")
    p.add_argument("--backbones", default="lite0", help="comma-separated: lite0, resnet18, resnet50")
    p.add_argument("--backbone", default="lite0", help=argparse.SUPPRESS)
    p.add_argument("--inputs", default="480p", help="comma-separated: 480p (the source as is), 1080p (upscaled copy)")
    p.add_argument("--weights", default=None, help="local weights file for a ResNet (default: random, timing only)")
    p.add_argument("--stage", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--short-side", type=int, default=None, help="working resolution (default: the preset's)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                   help="the app's preset for the speed options below (default %(default)s); given options win")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="mirror features")
    p.add_argument("--radius", type=float, default=None, help="radius in feature cells")
    p.add_argument("--context", "-m", type=int, default=None, help="m, recent frames in the context")
    p.add_argument("--context-stride", type=int, default=None, help="spacing of the recent frames")
    p.add_argument("--reference-stride", type=int, default=None, help="grid step of whole-frame references")
    p.add_argument("--label-detail", type=int, default=None, metavar="S",
                   help="sub-cells per feature cell side that carry labels (default: the preset's)")
    p.add_argument("--islands", action=argparse.BooleanOptionalAction, default=None,
                   help="prune unsupported islands (PropagationParams.islands; default: the preset's)")
    p.add_argument("--background-bias", type=float, default=None, metavar="B",
                   help="added to the background's probability before the argmax (default: the preset's)")
    p.add_argument("--appearance", type=float, default=None, metavar="WEIGHT",
                   help="weight of the appearance model, 0 = off (PropagationParams.appearance; default: the preset's)")
    p.add_argument("--reference-flow", type=float, default=None, metavar="WEIGHT",
                   help="weight of the reference's mask carried by optical flow, 0 = off "
                        "(PropagationParams.reference_flow; default: the preset's)")
    p.add_argument("--colour-grow", action=argparse.BooleanOptionalAction, default=None,
                   help="grow masks by colour where unsure (PropagationParams.colour_grow; default: the preset's)")
    p.add_argument("--flow-preset", choices=FLOW_PRESETS, default=PropagationParams().flow_preset,
                   help="DIS preset of the optical flow (PropagationParams.flow_preset; default %(default)s)")
    p.add_argument("--engines", default="default,tiled,naive",
                   help="default (the app's settings: half precision where the device has it), ahead (default with "
                        "feature read-ahead), torch-topk (default with torch's top-k), tiled and naive (both "
                        "float32, compared bit for bit)")
    p.add_argument("--ahead-threads", type=int, default=None, help="torch threads of the 'ahead' run (default --threads)")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    args = p.parse_args()
    fill_unset_options(args, args.preset)
    if args.engine:
        print(json.dumps(run(args)))
        return
    results = []
    inputs = args.inputs.split(",")
    copies = {"1080p": upscaled_copy(args.source, args.frames)} if "1080p" in inputs else {}
    try:
        for backbone in args.backbones.split(","):
            for size in inputs:
                source = str(copies.get(size, args.source))
                for engine in args.engines.split(","):
                    child = [sys.executable, __file__, source, "--engine", engine, "--frames", str(args.frames),
                             "--backbone", backbone, "--device", args.device, "--short-side", str(args.short_side),
                             "--radius", str(args.radius), "--flip" if args.flip else "--no-flip",
                             "--context", str(args.context), "--context-stride", str(args.context_stride),
                             "--reference-stride", str(args.reference_stride),
                             "--label-detail", str(args.label_detail),
                             "--islands" if args.islands else "--no-islands",
                             f"--background-bias={args.background_bias}", f"--appearance={args.appearance}",
                             f"--reference-flow={args.reference_flow}", f"--flow-preset={args.flow_preset}",
                             "--colour-grow" if args.colour_grow else "--no-colour-grow"]
                    for opt in ("stage", "threads", "weights", "ahead_threads"):
                        if getattr(args, opt) is not None:
                            child += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
                    if args.mask is not None and size != "1080p":
                        child += ["--mask", args.mask]
                    done = subprocess.run(child, capture_output=True, text=True)
                    if done.returncode != 0:
                        raise SystemExit(f"{backbone} {size} {engine} failed:\n{done.stderr[-3000:]}")
                    results.append({**json.loads(done.stdout), "size": size})
    finally:
        for folder in copies.values():
            shutil.rmtree(folder, ignore_errors=True)
    r0 = results[0]
    print(f"{args.source}: {r0['frames']} frames propagated, feature grid {r0['grid']} (lite0), "
          f"{torch.get_num_threads() if not args.threads else args.threads} threads, device {args.device}, "
          f"preset {args.preset}: radius {args.radius:g}, m {args.context}, stride {args.context_stride}, "
          f"reference stride {args.reference_stride}, label detail {args.label_detail}, "
          f"islands {'on' if args.islands else 'off'}, background bias {args.background_bias:g}, "
          f"appearance {args.appearance:g}, reference flow {args.reference_flow:g} (DIS {args.flow_preset}), "
          f"colour grow {'on' if args.colour_grow else 'off'}, mirror features {'on' if args.flip else 'off'}")
    stages = ["decode", "features", "propagation", "flow", "upsample", "write"]
    on_gpu = any(r.get("gpu_mib") is not None for r in results)
    print("| backbone | input | engine | threads | " + " | ".join(f"{s} ms/frame" for s in stages)
          + " | frames/s | peak RSS MiB |" + (" peak GPU MiB |" if on_gpu else ""))
    print("|---" * (len(stages) + 6 + on_gpu) + "|")
    for r in results:
        print(f"| {r['backbone']} | {r['input']} | {r['engine']} | {r['threads']} | "
              + " | ".join(f"{r['ms'].get(s, 0):.0f}" for s in stages) + f" | {r['fps']:.2f} | {r['rss_mib']:.0f} |"
              + (f" {r['gpu_mib']:.0f} |" if on_gpu else ""))
    if on_gpu:
        print("(on a GPU the stages run asynchronously, so the per-stage columns are only indicative; frames/s is "
              "end to end, each mask copied back and written)")
    if any(r["engine"] == "ahead" for r in results):
        print("(with read-ahead the decode and features columns are the background thread's time, overlapped)")
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r["engine"] in ("tiled", "naive"):
            groups.setdefault((r["backbone"].replace("+bf16", ""), r["size"]), []).append(r)
    for r in results:
        if r["engine"] in ("ahead", "torch-topk"):
            base = next((d for d in results if d["engine"] == "default" and d["backbone"] == r["backbone"]
                         and d["size"] == r["size"]), None)
            if base is not None:
                print(f"{r['backbone']} {r['size']}: {r['engine']} labels identical to default: "
                      f"{base['digest'] == r['digest']}; default is {base['fps'] / r['fps']:.2f}x its speed")
    for (backbone, size), rs in groups.items():
        if len(rs) > 1:
            same = len({r["digest"] for r in rs}) == 1
            print(f"{backbone} {size}: identical label maps: {same}; end-to-end speed-up "
                  f"{rs[0]['fps'] / rs[1]['fps']:.1f}x ({rs[0]['engine']} vs {rs[1]['engine']})")


if __name__ == "__main__":
    main()
