"""Benchmark: J, F and J&F of upsampling and refinement variants on DAVIS, from one propagation pass.

With soft context labels (the default), what a frame brings to the context does not depend on how
its soft labels are upsampled or its mask refined afterwards, so one pass gives every variant
exactly: the script keeps each frame's soft labels and scores each variant on them. It also prints
the ms/frame of each variant and the mean J&F of each half of the development set (the first ten
names of ``ImageSets/2016/train.txt``, and the rest), so a variant is chosen on one half and
confirmed on the other. Use --feature-cache to skip the backbone on later runs.

Variants: bilinear (the plain argmax, background bias 0), a stricter or looser decision for the
background (its probability shifted before the argmax; the app's default shifts it by -0.1),
unsharp masking of the probabilities, the guided filter, and a graph cut (OpenCV grabCut) in the
band between "surely object" and "surely background" of the soft labels (issue 20's boundary
idea), optionally guarded: its mask is kept only when its IoU with the plain mask is at least G.
The cut can also start from the app's own masks (bias -0.1) and be kept only on frames where its
colour models tell the surely-object pixels from the surely-background ones, or only grow the app's
masks by colour, as ``--colour-grow`` does (session 50).

    python bench/bench_upsampling.py ../shared/data/davis2016 --feature-cache /tmp/featcache
    python bench/bench_upsampling.py ../shared/data/davis2016 --short-side 600 -r 20 --variants bilinear "background -0.10"
    python bench/bench_upsampling.py ../shared/data/davis2016 --feature-cache /tmp/featcache --threads 1 \
        --variants "background -0.10" "grabcut of the app's masks, separable 0.85, guard 0.6"
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from annotator.core.io import davis
from annotator.core.features.backbones import DEFAULT_FLIP, load_backbone
from annotator.core.features.store import FeatureStore
from annotator.core.io.labels import read_mask_folder
from annotator.core.analysis.metrics import evaluate_sequence, summarize
from annotator.core.engine.colour_grow import cut_by_colour, grow_by_colour
from annotator.core.engine.propagation import PropagationParams
from annotator.core.engine.upsampling import box_filter, guided_filter, grey_guide, soft_to_labels, upsample_soft
from annotator.core.runs.runner import run_video
from annotator.core.video import DEFAULT_SHORT_SIDE, open_video

Variant = Callable[[torch.Tensor, np.ndarray], np.ndarray]
"""(L, H, W) upsampled probabilities and the RGB frame -> (H, W) channel index per pixel."""


def plain(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
    return up.max(0).indices.numpy()


def background_bias(bias: float) -> Variant:
    """The app's own decision with ``PropagationParams.background_bias`` = ``bias`` (``soft_to_labels``;
    with one object a pixel is the object above probability (1 + bias) / 2). Asked first whether a
    stricter decision trims masks that spill past the outline; on DAVIS most masks were too small."""
    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        channels = tuple(range(up.shape[0]))  # label ids = channel indices: the map is the channels
        return soft_to_labels(up, channels, tuple(up.shape[1:]), background_bias=bias).astype(np.int64)
    return run


def sharpened(amount: float, radius: int) -> Variant:
    """Unsharp masking of the probabilities before the argmax: p + amount * (p - box mean of p over
    (2 radius + 1)^2 pixels). The guess it tests: propagated probabilities are the true mask blurred,
    so a thin part's ridge lies below one half while a straight edge's one-half line does not move;
    sharpening would lift the ridge and leave the edge. On DAVIS it helped kite-walk only
    (bench/RESULTS.md): the masks are biased more than blurred."""
    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        return (up + amount * (up - box_filter(up, radius))).max(0).indices.numpy()
    return run


def mass_preserving(low: float = 0.0, high: float = 1.0) -> Variant:
    """Objects against background at the threshold that keeps the mask's area equal to the objects'
    probability mass (the number of pixels the soft labels say are object), per frame: where thin
    parts fall below one half the threshold drops, where the mask spills past the mass it rises.
    The threshold is clipped to [low, high]; the objects then split by their own argmax."""
    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        objects = 1.0 - up[0]
        mass = int(round(float(objects.sum())))
        flat = objects.flatten()
        if mass <= 0:
            return plain(up, frame)
        threshold = float(flat.kthvalue(max(1, flat.numel() - mass + 1)).values) if mass < flat.numel() else 0.0
        threshold = min(max(threshold, low), high)
        winner = up[1:].max(0).indices.numpy() + 1 if up.shape[0] > 1 else np.zeros(objects.shape, np.int64)
        return np.where(objects.numpy() > threshold, winner, 0)
    return run


def guided(radius: int, eps: float) -> Variant:
    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        return guided_filter(grey_guide(frame, up.shape[1:], up.device), up, radius, eps).max(0).indices.numpy()
    return run


def _gmm_log_likelihood(model: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Log-likelihood of (N, 3) BGR ``pixels`` under one of grabCut's colour models (OpenCV's layout of
    its (1, 65) array: 5 weights, 5 means, 5 covariances)."""
    m = model.reshape(-1)
    weights, means, covs = m[:5], m[5:20].reshape(5, 3), m[20:65].reshape(5, 3, 3)
    total = np.zeros(len(pixels))
    for w, mean, cov in zip(weights, means, covs):
        if w <= 0:
            continue
        cov = cov + np.eye(3) * 1e-3
        d = pixels - mean
        q = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
        total += w * np.exp(-0.5 * q) / np.sqrt((2 * np.pi) ** 3 * np.linalg.det(cov))
    return np.log(total + 1e-300)


def colour_separability(image: np.ndarray, fixed_object: np.ndarray, fixed_background: np.ndarray,
                        object_model: np.ndarray, background_model: np.ndarray, samples: int = 4000) -> float:
    """Balanced accuracy of colour alone (grabCut's two fitted models) on the pixels the cut was told
    are surely object and surely background (up to ``samples`` of each, drawn with a fixed seed): near
    0.5 where object and background share colours, where a cut by colour cannot be trusted. NaN
    when either side has fewer than 20 pixels."""
    if fixed_object.sum() < 20 or fixed_background.sum() < 20:
        return float("nan")
    rng = np.random.default_rng(0)
    pixels = image.reshape(-1, 3).astype(np.float64)
    accuracy = []
    for fixed, own, other in ((fixed_object, object_model, background_model),
                              (fixed_background, background_model, object_model)):
        index = np.flatnonzero(fixed)
        x = pixels[rng.choice(index, min(len(index), samples), replace=False)]
        accuracy.append(float((_gmm_log_likelihood(own, x) > _gmm_log_likelihood(other, x)).mean()))
    return 0.5 * sum(accuracy)


def grabcut(sure: float = 0.97, iterations: int = 3, guard: float = 0.0, pad: int = 20, bias: float = 0.0,
            separable: float = 0.0) -> Variant:
    """Foreground (channel 1 against the rest; single-object sequences) re-cut by colour where the soft
    labels are unsure: cells above ``sure`` are fixed object, below 1 - ``sure`` fixed background,
    the rest "probably" one or the other by the decision with background bias ``bias`` (-0.1: the
    app's own masks; pixels the app does not draw as object are never fixed object); the cut runs in
    the box around the unsure pixels (plus ``pad``). With ``guard`` > 0 the cut is dropped when its IoU
    with that decision is below it (a cut that swallowed background of the object's colour); with
    ``separable`` > 0 also when its colour models tell the fixed pixels apart with a balanced accuracy
    below it (:func:`colour_separability`: object and background share colours)."""
    decide = background_bias(bias)

    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        base = decide(up, frame)
        if not (base > 0).any():
            return base
        bgr = np.ascontiguousarray(frame[:, :, ::-1])
        found = cut_by_colour(bgr, base > 0, 1.0 - up[0].numpy(), sure=sure, pad=pad, iterations=iterations)
        if found is None:
            return base
        cut = base > 0
        cut[found.box] = found.cut
        union = np.logical_or(cut, base > 0).sum()
        if guard and union and np.logical_and(cut, base > 0).sum() / union < guard:
            return base
        if separable:
            score = colour_separability(bgr[found.box], found.fixed_object, found.fixed_background,
                                        found.object_model, found.background_model)
            if not score >= separable:  # NaN (too few fixed pixels to tell) keeps the plain mask too
                return base
        return np.where(cut, np.maximum(base, 1), 0)
    return run


def colour_grown(bias: float = -0.1) -> Variant:
    """The app's masks (background bias ``bias``) grown by colour where unsure, as ``--colour-grow`` does
    (:func:`annotator.core.engine.colour_grow.grow_by_colour`): the grabCut above, of which only pixels
    drawn as background are taken (session 50: the cut that also removes pixels lost on DAVIS)."""
    decide = background_bias(bias)

    def run(up: torch.Tensor, frame: np.ndarray) -> np.ndarray:
        labels = decide(up, frame).astype(np.uint8)  # channel indices are the label ids here
        return grow_by_colour(labels, up, frame, tuple(range(up.shape[0]))).astype(np.int64)
    return run


VARIANTS: dict[str, Variant] = {
    "bilinear": plain,
    **{f"background {b:+.2f}": background_bias(b) for b in (0.1, -0.05, -0.1, -0.15, -0.2, -0.3)},
    **{f"sharpen {a:g} r{r}": sharpened(a, r) for r in (4, 8, 16) for a in (0.5, 1, 2)},
    "mass": mass_preserving(),
    "mass, 0.35-0.55": mass_preserving(0.35, 0.55),
    "mass, 0.4-0.5": mass_preserving(0.4, 0.5),
    "guided r8 eps1e-3": guided(8, 1e-3),
    "grabcut": grabcut(),
    "grabcut, guard IoU 0.7": grabcut(guard=0.7),
    "grabcut, guard IoU 0.8": grabcut(guard=0.8),
    # session 50: the app's masks (bias -0.1) as the prior, kept only where colour tells object from background
    "grabcut of the app's masks": grabcut(bias=-0.1),
    "grabcut of the app's masks, separable 0.85, guard 0.6": grabcut(bias=-0.1, separable=0.85, guard=0.6),
    "grabcut of the app's masks, separable 0.93, guard 0.7": grabcut(bias=-0.1, separable=0.93, guard=0.7),
    "grown by colour (--colour-grow)": colour_grown(),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root")
    p.add_argument("--sequences", nargs="+", default=None)
    p.add_argument("--backbone", default="lite0")
    p.add_argument("--feature-cache", default=None)
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=DEFAULT_FLIP,
                   help="mirror features, as the app (default %(default)s)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                   help="only these variants (default: all; quote names with spaces)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--short-side", type=int, default=DEFAULT_SHORT_SIDE, help="working resolution (default %(default)s)")
    p.add_argument("-r", "--radius", type=float, default=None,
                   help="spatial radius in feature cells (default: the app's; scale it with --short-side)")
    args = p.parse_args()
    # the variants draw every mask themselves from the soft labels (the grow is one of them): the run's
    # own grow would only cost time (the soft labels and the context do not depend on it)
    params = PropagationParams(colour_grow=False)
    if args.radius is not None:
        params = replace(params, radius=args.radius)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = {name: VARIANTS[name] for name in args.variants}
    backbone = load_backbone(args.backbone, device="cpu", flip=args.flip)
    names = args.sequences or davis.list_sequences(args.root)
    split = Path(args.root, "ImageSets", "2016", "train.txt")
    first_half = set(split.read_text().split()[:10]) if split.is_file() else set(names)
    scores = {v: [] for v in variants}
    seconds = {v: 0.0 for v in variants}
    frames = 0
    for name in names:
        gt = read_mask_folder(davis.annotations_dir(args.root, name))
        with open_video(davis.frames_dir(args.root, name)) as video:
            store = FeatureStore(video, backbone, short_side=args.short_side or None, disk_cache=args.feature_cache)
            preds = {v: {0: gt[0]} for v in variants}
            for r in run_video(store, {0: gt[0]}, params):
                frame = video.frame(r.index)
                up = upsample_soft(r.soft, video.hw)
                frames += 1
                for variant, run in variants.items():
                    t0 = time.perf_counter()
                    preds[variant][r.index] = np.asarray(r.label_ids, np.uint8)[run(up, frame)]
                    seconds[variant] += time.perf_counter() - t0
        for variant in variants:
            scores[variant].append(evaluate_sequence(preds[variant], gt, name=name))
        print(name, " ".join(f"{v}: {scores[v][-1].jf:.3f}" for v in variants), flush=True)

    def half(variant: str, first: bool) -> str:
        chosen = [s for s in scores[variant] if (s.name in first_half) == first]
        return f"{summarize(chosen).jf:.3f}" if chosen else "-"

    print(f"\n{len(names)} sequences, {frames} frames, backbone {backbone.name}, short side {args.short_side}, "
          f"radius {params.radius:g}, default factors otherwise (the run itself without the colour grow)")
    print("| variant | J | F | J&F | first ten | the rest | ms/frame |")
    print("|---|---|---|---|---|---|---|")
    for variant in variants:
        d = summarize(scores[variant])
        print(f"| {variant} | {d.j_mean:.3f} | {d.f_mean:.3f} | {d.jf:.3f} | {half(variant, True)} | "
              f"{half(variant, False)} | {1000 * seconds[variant] / frames:.0f} |")


if __name__ == "__main__":
    main()
