"""The ``annotator`` command: one entry point with subcommands over the Qt-free core.

``annotator`` alone opens the desktop app on the bundled sample clip, and ``annotator demo``
propagates that clip and scores it against its ground truth; ``propagate``, ``eval`` and ``demo``
run the same propagation generator as the GUI, with a progress bar, and end with an exit code and
a one-line message on bad input (no traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from annotator.core.io.atomic import atomic_write_text
from annotator.core.engine.presets import DEFAULT_PRESET, PRESETS, fill_unset_options
from annotator.core.errors import AnnotatorError, SaveError, UsageError, size_text
from annotator.core.runs.experiments import FACTORS, markdown_table
from annotator.core.io.labels import mask_files
from annotator.core.io.outputs import make_folder
from annotator.core.engine.flow import FLOW_PRESETS
from annotator.core.engine.part_groups import parse_part_groups
from annotator.core.engine.propagation import FUSIONS, SPAN_REFERENCES, PropagationParams
from annotator.core.runs.settings import RunSettings
from annotator.core.engine.upsampling import UPSAMPLE_MODES

if TYPE_CHECKING:
    from annotator.core.runs.evaluation import SequenceRun

_DEFAULTS = PropagationParams()


def _add_factor_options(parser: argparse.ArgumentParser, *, label_maps: bool = True) -> None:
    """The propagation factors and backbone options; ``label_maps``: the command decides label maps
    (propagate, eval), so part groups apply (keypoints read heat-map peaks instead)."""
    g = parser.add_argument_group("propagation factors (McKee et al. 2022; defaults from CRW)")
    g.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET,
                   help="speed/quality trade-off that sets mirror features, radius, m, the context stride, the "
                        "reference stride, the label detail, island pruning, the background bias and the working "
                        "resolution "
                        "(an option given explicitly wins): "
                        + "; ".join(f"{p.name}: {p.measured}" for p in PRESETS.values())
                        + " (default %(default)s)")
    g.add_argument("-m", "--context", type=int, default=None,
                   help=f"number of recent propagated frames in the context (default {_DEFAULTS.context}, "
                        "or the preset's)")
    g.add_argument("--context-stride", type=int, default=None, metavar="S",
                   help=f"spacing of those frames: t-1, t-1-S, t-1-2S, ... (default {_DEFAULTS.context_stride}, "
                        "or the preset's)")
    g.add_argument("-k", "--topk", type=int, default=_DEFAULTS.topk,
                   help="affinities kept per target position (default %(default)s)")
    g.add_argument("-t", "--temperature", "--tau", type=float, default=_DEFAULTS.temperature,
                   help="softmax temperature (default %(default)s)")
    g.add_argument("-r", "--radius", type=float, default=None,
                   help=f"spatial radius in feature cells (default {_DEFAULTS.radius:g}, or the preset's; with "
                        "--short-side, scaled to it: the same reach in pixels)")
    g.add_argument("--global-references", action=argparse.BooleanOptionalAction,
                   default=not _DEFAULTS.radius_for_references,
                   help="compare with the whole of each reference frame, not only inside the radius "
                        "(default: on, chosen by measurement; --no-global-references is CRW's setting)")
    g.add_argument("--reference-stride", type=int, default=None, metavar="S",
                   help="compare whole-frame references at every cell inside the radius and at every S-th cell "
                        f"of every S-th row outside it (default {_DEFAULTS.reference_stride}, or the preset's)")
    g.add_argument("--upsample", choices=UPSAMPLE_MODES, default=_DEFAULTS.upsample,
                   help="soft labels to image size: bilinear, or guided by the frame's edges (default %(default)s)")
    g.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=_DEFAULTS.precision,
                   help="dtype of the affinity matmuls; bfloat16 is faster on CPUs with AVX512-BF16 (default %(default)s)")
    g.add_argument("--context-labels", choices=("soft", "hard"), default=_DEFAULTS.context_labels,
                   help="labels propagated frames bring to the context (default %(default)s)")
    g.add_argument("--label-detail", type=int, default=None, metavar="S",
                   help="labels carried as S x S sub-cells per feature cell and moved with the cells that "
                        "match (patch label transfer): masks keep thin parts and boundaries finer than the "
                        "stride-8 grid, at the same affinity cost; 1 = one label per cell "
                        f"(default {_DEFAULTS.label_detail}, or the preset's)")
    g.add_argument("--anchor", action=argparse.BooleanOptionalAction, default=_DEFAULTS.anchor,
                   help="mix into each frame the labels the reference frames alone give, with the share "
                        "sigmoid(m_ref - m_all) of how well they match against the whole context: stops "
                        "errors the recent frames hand on from growing (DAVIS: hike 0.807 -> 0.890, hockey +0.070, "
                        "but motocross-bumps -0.069; default: off)")
    g.add_argument("--appearance", type=float, default=None, metavar="WEIGHT",
                   help="weight of the appearance model, a linear classifier of labels from features fitted on "
                        "the reference frames, whose evidence for an object is added to each frame propagated one "
                        "way (from the first mask, after the last, before the first; not between two masks): "
                        "recovers object parts propagation missed (DAVIS from frame 0 at 0.5: +0.005 / +0.010 on the "
                        "two halves, but more corrections in the effort bench); 0 = off (default "
                        f"{_DEFAULTS.appearance:g}, or the preset's)")
    g.add_argument("--islands", action=argparse.BooleanOptionalAction, default=None,
                   help="prune unsupported islands: every detached island of an object's label but its largest "
                        "takes the labels the reference frames alone give it, unless they give it that label "
                        "too; stops a patch of background that took the label once from keeping it (default: "
                        + ("on" if _DEFAULTS.islands else "off") + ", or the preset's)")
    g.add_argument("--background-bias", type=float, default=None, metavar="B",
                   help="added to the background's probability before each pixel takes its most probable label: "
                        "below 0 masks grow (one object: a pixel is the object above probability (1 + B) / 2); "
                        "propagated masks come out too small on most DAVIS sequences (-0.1: +0.008 / +0.006 mean "
                        "J&F on the two halves over 0; -0.2 gains more from frame 0 but costs corrections) (default "
                        f"{_DEFAULTS.background_bias:g}, or the preset's)")
    g.add_argument("--colour-grow", action=argparse.BooleanOptionalAction, default=None,
                   help="grow each mask by colour where its soft labels are unsure (a graph cut, OpenCV grabCut, of "
                        "which only pixels drawn as background are taken; masks never shrink); output only "
                        "(DAVIS from frame 0: 0.866 / 0.827 on the two halves against 0.851 / 0.805; boat -0.059; "
                        "a simulated annotator painted fewer frames on both halves), about 0.46 s a frame (default: "
                        + ("on" if _DEFAULTS.colour_grow else "off") + ", or the preset's)")
    g.add_argument("--flow", type=float, default=_DEFAULTS.flow, metavar="WEIGHT",
                   help="weight in [0, 1] of the optical-flow cue (DIS flow warps the previous mask "
                        "where forward and backward flow agree); 0 = off (default %(default)s)")
    g.add_argument("--reference-flow", type=float, default=None, metavar="WEIGHT",
                   help="weight in [0, 1] of each reference's own mask carried onto the frames it propagates to "
                        "by dense optical flow between the two frames (pixel-exact outlines near a painted "
                        "frame); the weight falls as WEIGHT / d at d frames from the reference; 0 = off "
                        f"(default {_DEFAULTS.reference_flow:g}, or the preset's)")
    g.add_argument("--flow-preset", choices=FLOW_PRESETS, default=_DEFAULTS.flow_preset,
                   help="OpenCV DIS preset of the optical flow that --reference-flow and --flow use: medium is "
                        "finer and takes about 3x the time of fast, fine about 5x medium's (default %(default)s)")
    g.add_argument("--both-ways", action=argparse.BooleanOptionalAction, default=_DEFAULTS.both_ways,
                   help="fill the frames between two reference masks from both and fuse them; --no-both-ways: "
                        "each frame sees only the references behind it (default: on)")
    g.add_argument("--fusion", choices=FUSIONS, default=_DEFAULTS.fusion,
                   help="how the two directions are fused: distance weights, or those times each direction's "
                        "confidence per position (default %(default)s)")
    g.add_argument("--span-references", choices=SPAN_REFERENCES, default=_DEFAULTS.span_references,
                   help="references in the context of a run between keyframes: the span's two keyframes "
                        "(ends), those and every reference behind the run (behind), those and every reference "
                        "earlier in the video (earlier), or all (default %(default)s)")
    if label_maps:
        g.add_argument("--part-groups", default="", metavar="SPEC",
                       help="object ids that are parts of one whole, e.g. 1-25,26-50 or 1-3+7,8-12: groups "
                            "separated by ',', members joined by '+', each an id N or a range A-B. A pixel "
                            "goes to the group whose parts' summed probability beats background and the "
                            "other labels, then to its most probable part (many part labels per object "
                            "otherwise lose the object's edges to background). Default: none, plain argmax")
    else:
        parser.set_defaults(part_groups="")
    b = parser.add_argument_group("backbone and resolution")
    b.add_argument("--backbone", default="lite0",
                   help="lite0 (embedded, default), lite1, lite2 (embedded, larger), resnet18, resnet50, "
                        "checkpoint:PATH, or an ensemble joined with '&', e.g. 'lite0&lite2' (quoted in a shell); "
                        "'annotator backbones' lists them")
    b.add_argument("--stage", default=None,
                   help="feature stage(s) of the backbone, e.g. s5 or s4+s5 (lite0/1/2; default s4); for an "
                        "ensemble, every member that names none")
    b.add_argument("--weights", default=None, help="local weights file for resnet18/resnet50 (no download)")
    b.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    b.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="test-time augmentation: average the features of each frame and its mirror image "
                        "(+0.016 mean J&F on davis2016 for 2x backbone time; default on, or the preset's)")
    b.add_argument("--half", action=argparse.BooleanOptionalAction, default=None,
                   help="run the backbone in half precision: float16 on a GPU, bfloat16 on a CPU with "
                        "AVX512-BF16/AMX (about 3x faster features there); default: on where it exists, "
                        "--no-half forces float32")
    b.add_argument("--threads", type=int, default=None, help="CPU threads for the backbone and propagation")
    b.add_argument("--feature-cache", default=None, metavar="DIR",
                   help="keep features on disk here (fp16), so later runs on the same video skip the backbone")
    b.add_argument("--short-side", type=int, default=None,
                   help="working resolution: frames are resized to this short side (0 = original; default "
                        f"{PRESETS[DEFAULT_PRESET].short_side}, or the preset's); the radius, unless given, is "
                        "scaled with it")


def _settings(args: argparse.Namespace) -> RunSettings:
    """The run settings the options give (the factors checked)."""
    return RunSettings(params=_params(args), backbone=args.backbone, stage=args.stage, weights=args.weights,
                       device=args.device, half=args.half, flip=args.flip, threads=args.threads,
                       short_side=args.short_side or None, feature_cache=args.feature_cache)


def _params(args: argparse.Namespace) -> PropagationParams:
    params = PropagationParams(context=args.context, context_stride=args.context_stride,
                               reference_stride=args.reference_stride, topk=args.topk,
                               temperature=args.temperature,
                               radius=args.radius, radius_for_references=not args.global_references,
                               context_labels=args.context_labels, upsample=args.upsample,
                               precision=args.precision, flow=args.flow, label_detail=args.label_detail,
                               anchor=args.anchor, islands=args.islands, background_bias=args.background_bias,
                               appearance=args.appearance, reference_flow=args.reference_flow,
                               flow_preset=args.flow_preset, both_ways=args.both_ways, fusion=args.fusion,
                               span_references=args.span_references, colour_grow=args.colour_grow,
                               part_groups=parse_part_groups(args.part_groups))
    params.validate()
    return params


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=quiet, file=sys.stderr, dynamic_ncols=True)


# --------------------------------------------------------------------------------------------- propagate


def cmd_propagate(args: argparse.Namespace) -> int:
    from annotator.core.runs.batch import BatchJob, check_outputs, davis_jobs, list_jobs, run_job

    settings = _settings(args)
    out = Path(args.out)
    source = Path(args.source) if args.source else None
    if args.ray is not None and args.jobs is not None:
        raise UsageError("--jobs is for a batch on this machine; with --ray the cluster's cores (or GPUs) share "
                         "the videos")
    if args.list:
        if source is not None:
            raise UsageError("give either a video (or DAVIS root) or --list, not both")
        return _propagate_batch(args, list_jobs(args.list, out), settings)
    if source is None:
        if args.ray and Path(args.ray).exists():  # `--ray ROOT`: the optional ADDRESS took the root
            raise UsageError(f"--ray read {args.ray} as the cluster's address; give the DAVIS root before --ray "
                             "(annotator propagate ROOT --out DIR --ray), or the address as --ray=ADDRESS")
        raise UsageError("give a video, a frame folder, a DAVIS root or --list FILE")
    if source.is_dir() and (source / "JPEGImages").is_dir():  # a whole DAVIS root
        if args.masks:
            raise UsageError("a DAVIS root brings its own masks (Annotations/): drop --masks")
        return _propagate_batch(args, davis_jobs(source, out, args.resolution, args.sequences), settings)
    if args.ray is not None or args.resume:
        raise UsageError("--ray and --resume apply to a batch (a DAVIS root or --list FILE), not to one video")
    if not args.masks:
        raise UsageError("--masks is needed for a single video (a mask PNG or a folder of NNNNN.png)")
    job = BatchJob(source.stem or source.name, source, Path(args.masks), out, mask_frame=args.frame)
    check_outputs([job], args.overwrite)
    from annotator.core.video import open_video

    with open_video(source) as video:
        n = len(video)
    masks = Path(args.masks)
    # every frame but the references is propagated (a folder may hold several keyframes)
    references = len([i for i in mask_files(masks) if 0 <= i < n]) if masks.is_dir() else 1
    with _progress(max(n - references, 0), source.name, args.quiet) as bar:
        # one video: read-ahead overlaps the backbone and the propagation
        result = run_job(job, settings, on_frame=lambda _i: bar.update(1), backbone=settings.load_backbone(),
                         read_ahead=True, overwrite=args.overwrite)
    if not args.quiet:
        removed = f"; removed {result.removed} older mask(s) beyond its last frame" if result.removed else ""
        print(f"wrote {result.frames} masks ({result.frames - result.propagated} reference, "
              f"{result.propagated} propagated) to {out}{removed}")
    return 0


def _propagate_batch(args: argparse.Namespace, jobs, settings) -> int:
    """Many videos, here (``--jobs``) or on Ray (``--ray``): one progress bar (frames, with videos done and
    failed), a summary table (also ``OUT/summary.csv``), exit 1 if any failed."""
    from annotator.core.runs.batch import check_outputs, run_batch
    from annotator.core.io.outputs import check_new_file

    if args.ray is not None:
        from annotator.core.runs.ray_batch import import_ray

        import_ray()  # without the extra: its one-line message before anything else
    check_outputs(jobs, args.overwrite or args.resume)
    # --resume finishes an earlier run, whose summary it replaces
    check_new_file(Path(args.out) / "summary.csv", args.overwrite or args.resume)
    with _progress(0, f"{len(jobs)} videos", args.quiet) as bar:
        counts = {"done": 0, "failed": 0}

        def total(frames: int) -> None:
            bar.total = frames
            bar.refresh()

        def frame(_name: str, _index: int) -> None:
            bar.update(1)

        def video_done(result) -> None:
            counts["done"] += 1
            counts["failed"] += not result.ok
            failed = f", {counts['failed']} failed" if counts["failed"] else ""
            bar.set_postfix_str(f"{counts['done']}/{len(jobs)} videos done{failed}")

        common = dict(overwrite=args.overwrite, resume=args.resume, on_frame=frame, on_total=total, on_done=video_done)
        if args.ray is not None:
            from annotator.core.runs.ray_batch import run_ray_batch

            results = run_ray_batch(jobs, settings, address=args.ray or None, **common)
        else:
            results = run_batch(jobs, settings, workers=args.jobs or 1, **common)
    rows = [{"video": r.name, "frames": r.frames, "seconds": r.seconds, "frames/s": r.fps,
             "status": r.error if not r.ok else "ok, complete already (--resume)" if r.resumed
             else f"ok, removed {r.removed} older mask(s)" if r.removed else "ok"}
            for r in results]
    done = [r for r in results if r.ok]
    seconds = sum(r.seconds for r in results)
    rows.append({"video": "total", "frames": sum(r.frames for r in results), "seconds": seconds,
                 "frames/s": sum(r.propagated for r in done if not r.resumed) / seconds if seconds else float("nan"),
                 "status": f"{len(done)}/{len(results)} ok"})
    columns = ["video", "frames", "seconds", "frames/s", "status"]
    print(markdown_table(rows, columns))
    make_folder(args.out)
    _write_csv(str(Path(args.out) / "summary.csv"), rows, columns)
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"annotator: {len(failed)} of {len(results)} video(s) failed (see the status column)", file=sys.stderr)
        return 1
    return 0


def cmd_keypoints(args: argparse.Namespace) -> int:
    """``keypoints VIDEO --points refs.json --out tracks.json``: carry points through the video."""
    from annotator.core.features.store import FeatureStore
    from annotator.core.engine.keypoints import propagate_keypoints_video
    from annotator.core.io.keypoints_json import keypoints_json_text, read_keypoints_json
    from annotator.core.video import open_video

    settings = _settings(args)
    params = settings.params
    from annotator.core.io.outputs import check_new_file

    out = Path(args.out)
    check_new_file(out, args.overwrite)
    names, refs = read_keypoints_json(args.points)
    with open_video(args.source) as video:
        store = FeatureStore(video, settings.load_backbone(), short_side=settings.short_side,
                             disk_cache=settings.feature_cache)
        results = []
        with _progress(len(video) - len(refs), video.name, args.quiet) as bar:
            for result in propagate_keypoints_video(store, refs, len(video), params, image_hw=video.hw,
                                                    sigma=args.sigma):
                results.append(result)
                bar.update(1)
        atomic_write_text(out, keypoints_json_text(names, refs, results, video.hw))
    if not args.quiet:
        print(f"wrote {len(names)} point(s) on {len(results) + len(refs)} frames to {out}")
    return 0


# --------------------------------------------------------------------------------------------- eval


def _write_csv(path: str, rows: list[dict], columns: Sequence[str]) -> None:
    """A table as CSV, written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


_SCORE_COLUMNS = ("sequence", "J", "F", "J&F", "frames", "frames/s")
"""The columns of the score table of ``eval`` and ``demo`` (printed, and written by ``--csv``)."""


def _print_scores(runs: Sequence[SequenceRun], backbone, params: PropagationParams) -> list[dict]:
    """Print the settings and the table of J, F, J&F, frames and frames/s per sequence, then their mean
    (the dataset mean of ``metrics.summarize``); returns the rows, the mean last."""
    from annotator.core.analysis.metrics import summarize

    rows = [{"sequence": r.scores.name, "J": r.scores.j_mean, "F": r.scores.f_mean, "J&F": r.scores.jf,
             "frames": r.frames, "frames/s": r.fps} for r in runs]
    overall = summarize([r.scores for r in runs])
    frames = sum(r.frames for r in runs)
    seconds = sum(r.seconds for r in runs)
    rows.append({"sequence": "mean", "J": overall.j_mean, "F": overall.f_mean, "J&F": overall.jf,
                 "frames": frames, "frames/s": frames / seconds if seconds else float("nan")})
    print(f"backbone {backbone.name} on {backbone.device}, {params}")
    print(markdown_table(rows, _SCORE_COLUMNS))
    return rows


def cmd_eval(args: argparse.Namespace) -> int:
    from annotator.core.io import davis
    from annotator.core.runs.evaluation import evaluate_davis_sequence

    settings = _settings(args)
    params = settings.params
    names = davis.select_sequences(args.root, args.resolution, args.sequences)
    _check_eval_outputs(args, names)
    total = _eval_frames(args, names)
    if args.grid:
        return _eval_grid(args, settings, names, total)
    backbone = settings.load_backbone()
    runs = []
    with _progress(total, "eval", args.quiet) as bar:
        for name in names:
            bar.set_postfix_str(name)
            runs.append(evaluate_davis_sequence(args.root, name, backbone, params, short_side=settings.short_side,
                                                feature_cache=settings.feature_cache, keyframes=args.keyframes,
                                                resolution=args.resolution, write_dir=args.save_masks,
                                                on_frame=lambda _i: bar.update(1)))
    rows = _print_scores(runs, backbone, params)
    if args.json:
        atomic_write_text(args.json, json.dumps({"backbone": backbone.name, "device": str(backbone.device),
                                               "short_side": settings.short_side or 0,
                                               "params": dataclasses.asdict(params),
                                               "sequences": rows[:-1], "mean": rows[-1]}, indent=2))
    if args.csv:
        _write_csv(args.csv, rows, _SCORE_COLUMNS)
    if args.report:
        _write_reports(args.report, [(r.scores.name, r.scores) for r in runs])
    return 0


def _eval_frames(args: argparse.Namespace, names: Sequence[str]) -> int:
    """Frames ``eval`` propagates per grid point: all but the first of each sequence, or all but its keyframes."""
    from annotator.core.io import davis
    from annotator.core.runs.evaluation import keyframe_indices

    lengths = [len(list(davis.frames_dir(args.root, n, args.resolution).iterdir())) for n in names]
    return sum(n - (1 if args.keyframes is None else len(keyframe_indices(list(range(n)), args.keyframes)))
               for n in lengths)


def _check_eval_outputs(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Before any propagation: refuse outputs that would replace files, unless ``--overwrite``."""
    from annotator.core.io.outputs import check_mask_folder, check_new_files

    check_new_files([args.json, args.csv], args.overwrite)
    if args.save_masks is not None:
        for name in names:
            check_mask_folder(Path(args.save_masks) / name, args.overwrite)
    if args.report is not None and not args.grid:  # a grid's reports go to one new folder per point
        check_new_files([Path(args.report) / f"{n}.{ext}" for n in names for ext in ("csv", "png")], args.overwrite)


def _write_reports(folder: str, named_scores) -> None:
    from annotator.core.io.report import write_report

    for name, s in named_scores:
        write_report(folder, name, s.object_ids, s.frames, s.J, s.F)
    print(f"wrote per-frame metrics (CSV) and curves (PNG) of {len(named_scores)} sequence(s) to {folder}")


def _eval_grid(args: argparse.Namespace, settings: RunSettings, names: list[str], frames: int) -> int:
    """``eval --grid``: every combination of the swept factors, one row each (an ablation table)."""
    from annotator.core.runs.experiments import axis_points, dataset_means, evaluate_grid, grid_points, parse_grid

    grid = parse_grid(args.grid)
    if args.one_at_a_time:
        from annotator.core.features.backbones import ENSEMBLE_SEPARATOR
        from annotator.core.features.backbones.lite import VARIANTS

        variant = VARIANTS.get(args.backbone.partition(":")[0].strip().lower())
        if ENSEMBLE_SEPARATOR in args.backbone:
            default_stage = None  # each member's own
        else:
            default_stage = variant.default_stage if variant is not None else "layer3"
        base = {**dataclasses.asdict(settings.params), "short_side": args.short_side, "backbone": args.backbone,
                "stage": args.stage or default_stage}
        points = axis_points(grid, base)
    else:
        points = grid_points(grid)
    with _progress(len(points) * frames, "grid", args.quiet) as bar:
        results = evaluate_grid(args.root, names, points, settings, resolution=args.resolution,
                                keyframes=args.keyframes, on_frame=lambda _i: bar.update(1))
    rows = [{**point, **dataset_means(records)} for point, records in zip(points, results)]
    columns = [*grid, "J", "F", "J&F", "frames/s"]
    print(f"grid over {len(names)} sequence(s), other factors: {settings.params}")
    print(markdown_table(rows, columns))
    if args.csv:
        _write_csv(args.csv, rows, columns)
    if args.json:
        atomic_write_text(args.json, json.dumps({"grid": grid, "rows": rows}, indent=2, default=str))
    if args.report:
        for point, records in zip(points, results):
            label = "_".join(f"{k}={v}" for k, v in point.items()).replace("/", "-")
            _write_reports(str(Path(args.report) / label), [(r.name, r) for r in records])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo [--out DIR]``: propagate the bundled sample clip from its first mask, write the masks and print
    J, F, J&F and frames/s against its ground truth: the check that an install works, no data needed."""
    import shutil
    import tempfile

    from annotator.core.io.outputs import check_mask_folder
    from annotator.core.runs.evaluation import evaluate_video
    from annotator.core.io.labels import mask_files
    from annotator.core.runs.sample import SAMPLE_GROUNDTRUTH, SAMPLE_NAME, SAMPLE_VIDEO

    settings = _settings(args)
    params = settings.params
    if args.out is not None:
        check_mask_folder(Path(args.out), args.overwrite)
    backbone = settings.load_backbone()
    # by default a new folder each run, so the demo never touches anyone's files
    out = Path(args.out) if args.out is not None else Path(tempfile.mkdtemp(prefix="annotator-demo-"))
    total = len(mask_files(SAMPLE_GROUNDTRUTH)) - 1
    try:
        with _progress(total, SAMPLE_NAME, args.quiet) as bar:
            run = evaluate_video(SAMPLE_VIDEO, SAMPLE_GROUNDTRUTH, backbone, params, name=SAMPLE_NAME,
                                 short_side=settings.short_side, write_dir=out,
                                 feature_cache=settings.feature_cache, on_frame=lambda _i: bar.update(1))
    except BaseException:
        if args.out is None:  # no empty folder left behind by a failed or interrupted run
            shutil.rmtree(out, ignore_errors=True)
        raise
    _print_scores([run], backbone, params)
    print(f"wrote the {run.frames + 1} masks of the bundled sample clip to {out}")
    return 0


# --------------------------------------------------------------------------------------------- gui / misc


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from annotator.gui.app import run_app
    except ImportError as exc:  # a core-only install (no PySide6) can still propagate and evaluate
        raise UsageError(f"the desktop app is not available: {exc}") from exc
    return run_app(args.path)


def cmd_backbones(args: argparse.Namespace) -> int:
    from annotator.core.features.backbones import available_backbones

    for line in available_backbones():
        print(line)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``export PROJECT --out DIR [--keypoints FILE]``: a project's label maps as DAVIS masks at the video's
    original size, and its keypoints as the JSON ``annotator keypoints`` writes."""
    import numpy as np

    from annotator.core.io.labels import write_mask
    from annotator.core.project.folder import read_project
    from annotator.core.io.export import davis_paths, keypoints_export_text  # the same as the GUI's exports
    from annotator.core.io.outputs import check_mask_folder, check_new_file

    content = read_project(args.project, with_video=False)  # the masks are enough: no video needed
    video = content.data.video
    name = args.name or Path(video.absolute).stem
    folder, _ = davis_paths(args.out, name)
    check_mask_folder(folder, args.overwrite)
    if args.keypoints is not None:
        check_new_file(args.keypoints, args.overwrite)
        # checked before any mask is written: a project without keypoints fails without side effects
        keypoints_text = keypoints_export_text(content.data.keypoints, content.data.points, video.hw)
    make_folder(folder)
    empty = np.zeros(video.hw, np.uint8)
    for i in range(video.frames):
        write_mask(folder / f"{i:05d}.png", content.labels.get(i, empty))
    if not args.quiet:
        print(f"wrote {video.frames} masks ({len(content.labels)} labelled) of {size_text(video.hw)} to {folder}")
    if args.keypoints is not None:
        atomic_write_text(args.keypoints, keypoints_text)
        if not args.quiet:
            print(f"wrote {len(content.data.keypoints)} keypoint(s) on {len(content.data.points)} frames "
                  f"to {args.keypoints}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="annotator", description="Label objects in video: paint a frame, "
                                     "propagate the masks, correct, export DAVIS masks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('annotator').__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("gui", help="open the desktop annotator (default command)")
    p.add_argument("path", nargs="?", default=None, help="video, frame folder, DAVIS sequence or project")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("propagate", help="propagate masks through a video (or many) and write DAVIS Annotations folders",
                       description="One video: --masks gives its reference mask(s) and --out receives NNNNN.png. "
                                   "A DAVIS root (a folder with JPEGImages/ and Annotations/) or --list FILE "
                                   "propagates every video into OUT/<name>/, --jobs at a time (or on a Ray cluster: "
                                   "--ray), with one progress bar and a summary (OUT/summary.csv); one failing video "
                                   "does not stop the others.")
    p.add_argument("source", nargs="?", default=None,
                   help="video file (mp4/avi/mov/mkv), frame folder, DAVIS sequence folder, or a DAVIS root")
    p.add_argument("--masks", default=None, help="a mask PNG (frame 0, or --frame N) or a folder of NNNNN.png")
    p.add_argument("--frame", type=int, default=None, help="frame index of a single mask file (default 0)")
    p.add_argument("--out", required=True, help="output folder for NNNNN.png label maps (one sub-folder per video in a batch)")
    p.add_argument("--list", default=None, metavar="FILE", help="batch: a text file with one 'VIDEO MASKS' per line")
    p.add_argument("--jobs", type=int, default=None, help="batch: videos propagated side by side, each in its own "
                   "process with its share of the CPU threads (or its own GPU) (default 1)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="batch: one Ray task per video (needs pip install 'annotator[ray]'). ADDRESS (or RAY_ADDRESS): "
                        "the cluster to run on, every node seeing the inputs and --out at the same paths; without "
                        "it a local Ray with one worker per core. A task takes a GPU where the cluster has them")
    p.add_argument("--resume", action="store_true",
                   help="batch: skip the videos whose output folder is complete (an earlier run with the same "
                        "options finished it) and run the others again: finishes an interrupted run")
    p.add_argument("--sequences", nargs="+", default=None, help="DAVIS root: only these sequences")
    p.add_argument("--resolution", default="480p", help="DAVIS root: resolution folder (default %(default)s)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace masks already in --out (older masks beyond the video's last frame are removed)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_factor_options(p)
    p.set_defaults(func=cmd_propagate)

    p = sub.add_parser("eval", help="propagate DAVIS sequences from their first mask and print J, F, J&F")
    p.add_argument("root", help="DAVIS root (with JPEGImages/480p and Annotations/480p)")
    p.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    p.add_argument("--resolution", default="480p", help="DAVIS resolution folder (default %(default)s)")
    p.add_argument("--json", default=None, help="write the table as JSON here")
    p.add_argument("--csv", default=None, help="write the table as CSV here")
    p.add_argument("--save-masks", default=None, help="write the propagated masks under this folder")
    p.add_argument("--grid", action="append", default=[], metavar="FACTOR=V1,V2,...",
                   help=f"sweep a factor ({', '.join(aliases[0] for aliases, _ in FACTORS.values())}); repeat for "
                        "a grid; prints the ablation table (--csv writes it)")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="with --grid: vary one factor at a time around the other options' values (the paper's "
                        "ablations) instead of every combination")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write per-frame metrics (CSV) and a plot of the curves (PNG) per sequence here")
    p.add_argument("--keyframes", type=int, default=None, metavar="K",
                   help="keyframe protocol: the ground truth of every K-th frame and of the last frame are the "
                        "references, every other frame is scored (default: the first frame only, DAVIS protocol)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --json, --csv and --report files and --save-masks masks already there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_factor_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="propagate the bundled sample clip and print J, F, J&F against its ground truth",
                       description="Propagates the bundled sample clip (40 frames of 640x360, drawn procedurally "
                                   "with its true masks) from its first mask, writes the masks and prints J, F, J&F "
                                   "and frames/s: a check that the install works, no data needed. The propagation and "
                                   "backbone options are eval's; the clip is propagated at its own size (--short-side 0): 25-35 s on 2 idle "
                                   "cores.")
    p.add_argument("--out", default=None,
                   help="folder for the NNNNN.png masks (default: a new folder under the temp dir, printed at the end)")
    p.add_argument("--overwrite", action="store_true", help="replace masks already in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_factor_options(p)
    p.set_defaults(func=cmd_demo, short_side=0)

    p = sub.add_parser("backbones", help="list the available backbones")
    p.set_defaults(func=cmd_backbones)

    p = sub.add_parser("keypoints", help="propagate keypoints (e.g. a pose) through a video; JSON in, JSON out",
                       description='Points are carried as Gaussian heat-map labels through the same propagation '
                                   'as masks and read back at their peak. --points: {"FRAME": {"NAME": [x, y], ...}} '
                                   '(pixels of the original video; every frame given is a reference). --out: every '
                                   'frame\'s points with a confidence (the heat-map peak relative to a reference\'s).')
    p.add_argument("source", help="video file, frame folder or DAVIS sequence folder")
    p.add_argument("--points", required=True, help="JSON file of reference keypoints")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--sigma", type=float, default=1.0, help="heat-map width in feature cells (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_factor_options(p, label_maps=False)
    p.set_defaults(func=cmd_keypoints)

    p = sub.add_parser("export", help="write a project's masks as a DAVIS Annotations folder (original size)")
    p.add_argument("project", help="annotation project folder (with project.json)")
    p.add_argument("--out", required=True, help="DAVIS root to write Annotations/480p/<name>/NNNNN.png under")
    p.add_argument("--name", default=None, help="sequence name (default: the video's name)")
    p.add_argument("--keypoints", default=None, metavar="FILE",
                   help="also write the project's keypoints to this JSON file (the format of 'annotator keypoints')")
    p.add_argument("--overwrite", action="store_true", help="replace masks (and --keypoints) already there")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui", *(argv or [])])
    if hasattr(args, "preset"):  # the speed options the command line left out come from --preset
        fill_unset_options(args, args.preset)
    try:
        return args.func(args)
    except AnnotatorError as exc:
        print(f"annotator: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a folder we cannot create, a disk that is full...
        print(f"annotator: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("annotator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
