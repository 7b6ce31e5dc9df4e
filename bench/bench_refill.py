"""Benchmark: the re-fill after a correction, with and without the candidate memo (the app keeps one).

Keyframes ``--first`` and ``--last`` of a DAVIS sequence (ground truth), the span filled both ways
with a :class:`~annotator.core.engine.candidates.CandidateMemo`; then a correction half-way (its
ground truth) and the two halves re-filled, once with that memo and once without. Prints both
times and the fraction of equal pixels. Features are computed (or read from ``--feature-cache``)
before the timings.

    python bench/bench_refill.py ../shared/data/davis2016 boat --feature-cache /tmp/featcache
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.keyframes import fill_span
from annotator.core.engine.propagation import PropagationParams
from annotator.core.features.backbones import DEFAULT_FLIP, load_backbone
from annotator.core.features.store import FeatureStore
from annotator.core.io import davis
from annotator.core.io.labels import read_mask_folder
from annotator.core.video import DEFAULT_SHORT_SIDE, open_video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="DAVIS root with a mask on every frame")
    p.add_argument("sequence")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--last", type=int, default=20)
    p.add_argument("--feature-cache", default=None, metavar="DIR")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    gt = read_mask_folder(davis.annotations_dir(args.root, args.sequence))
    backbone = load_backbone("lite0", device="cpu", flip=DEFAULT_FLIP, threads=args.threads)
    params = PropagationParams()
    first, last = args.first, args.last
    middle = (first + last) // 2
    with open_video(davis.frames_dir(args.root, args.sequence)) as video:
        store = FeatureStore(video, backbone, short_side=DEFAULT_SHORT_SIDE, disk_cache=args.feature_cache)
        for i in range(first, last + 1):
            store(i)
        labels = tuple(int(v) for v in np.unique(gt[first]) if v < 255)
        options = dict(output_hw=tuple(video.hw), label_ids=labels, frames=video.frame)
        refs = {first: gt[first], last: gt[last]}
        memo = CandidateMemo()
        t = time.perf_counter()
        list(fill_span(store, refs, first, last, params, memo=memo, **options))
        t_fill = time.perf_counter() - t
        refs[middle] = gt[middle]

        def refill(memo_or_none: CandidateMemo | None) -> tuple[list, float]:
            t0 = time.perf_counter()
            out = [*fill_span(store, refs, first, middle, params, memo=memo_or_none, **options),
                   *fill_span(store, refs, middle, last, params, memo=memo_or_none, **options)]
            return out, time.perf_counter() - t0

        with_memo, t_memo = refill(memo)
        plain, t_plain = refill(None)
        store.close()
    same = np.mean([np.mean(a.labels == b.labels) for a, b in zip(with_memo, plain)])
    print(f"{args.sequence}: fill ({first}, {last}) {t_fill:.1f} s; re-fill after a correction at {middle}: "
          f"{t_plain:.1f} s without the memo, {t_memo:.1f} s with it ({t_plain / t_memo:.1f}x); "
          f"pixels equal {same:.6f}; memo {len(memo)} pairs, {memo.bytes / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
