"""The ``annotator`` command line: propagate and eval end to end, and one-line errors with exit codes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from annotator.cli import main
from annotator.core.engine.propagation import PropagationParams
from annotator.core.io.labels import read_mask, read_mask_folder, write_mask, write_mask_folder
from tests.synthetic import clip_on_disk, moving_objects_clip, write_frames

FAST = ["--short-side", "0", "--stage", "s3", "-q"]


@pytest.fixture()
def clip(tmp_path):
    return clip_on_disk(tmp_path, n_frames=6)


def test_propagate_writes_a_mask_for_every_frame(clip, tmp_path, capsys):
    folder, mask, truth = clip
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(out), *FAST]) == 0
    written = read_mask_folder(out)
    assert sorted(written) == list(range(6))
    assert np.array_equal(written[0], truth[0])
    assert all(m.shape == (64, 96) for m in written.values())
    assert (written[5] == 1).sum() > 0.5 * (truth[5] == 1).sum()
    # a second run refuses to overwrite without being asked
    assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(out), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_a_run_that_fails_partway_says_which_masks_it_left(tmp_path, capsys):
    frames, truth = moving_objects_clip(n_frames=6, hw=(64, 96), size=24, step=4)
    folder = write_frames(tmp_path / "frames", frames)
    write_mask(tmp_path / "first.png", truth[0])
    (folder / "00004.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # frame 4 cannot be decoded
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(tmp_path / "first.png"), "--out", str(out), *FAST]) == 3
    err = capsys.readouterr().err.strip()
    assert "00004.png" in err and f"after 4 of 6 masks were written to {out}; they are left there" in err
    assert "\n" not in err and sorted(read_mask_folder(out)) == [0, 1, 2, 3]


def test_overwrite_removes_older_masks_beyond_the_new_videos_end(clip, tmp_path, capsys):
    folder, mask, truth = clip
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(out), *FAST]) == 0
    shorter = write_frames(tmp_path / "short", list(moving_objects_clip(n_frames=4, hw=(64, 96), size=24, step=4)[0]))
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    argv = ["propagate", str(shorter), "--masks", str(mask), "--out", str(out), "--overwrite", "--short-side", "0",
            "--stage", "s3"]
    assert main(argv) == 0
    assert sorted(read_mask_folder(out)) == [0, 1, 2, 3]  # not mixed with the old run's frames 4 and 5
    assert (out / "notes.txt").read_text() == "mine"  # only masks are touched
    assert "removed 2 older mask(s) beyond its last frame" in capsys.readouterr().out


def test_propagate_from_a_folder_of_references(clip, tmp_path):
    folder, _, truth = clip
    refs = tmp_path / "refs"
    refs.mkdir()
    write_mask(refs / "00002.png", truth[2])
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(refs), "--out", str(out), *FAST]) == 0
    written = read_mask_folder(out)
    assert sorted(written) == list(range(6))  # backward to 0 and forward to the end
    assert np.array_equal(written[2], truth[2])


def test_propagate_from_a_mask_folder_holding_other_files(clip, tmp_path):
    folder, _, truth = clip
    refs = tmp_path / "refs"
    refs.mkdir()
    write_mask(refs / "00000.png", truth[0])
    for name in ("Thumbs.db", "desktop.ini", "notes.txt", "00000.png.bak"):  # what a user's folder holds
        (refs / name).write_bytes(b"x")
    out = tmp_path / "out"
    assert main(["propagate", str(folder), "--masks", str(refs), "--out", str(out), *FAST]) == 0
    assert sorted(read_mask_folder(out)) == list(range(6))


@pytest.mark.parametrize(
    "change, code, message",
    [
        ({"source": "missing"}, 3, "missing"),
        ({"mask_hw": (32, 48)}, 4, "mask of frame 0 is 48x32 but the video is 96x64; masks must have the video's original size"),
        ({"extra": ["--topk", "0"]}, 2, "top-k must be >= 1"),
        ({"extra": ["--backbone", "vgg99"]}, 5, "vgg99"),
        ({"extra": ["--frame", "9"]}, 2, "the video has 6 frames"),
    ],
)
def test_propagate_bad_input_gives_one_line_and_exit_code(clip, tmp_path, capsys, change, code, message):
    folder, mask, truth = clip
    source = tmp_path / change["source"] if "source" in change else folder
    if "mask_hw" in change:
        write_mask(mask, np.zeros(change["mask_hw"], np.uint8))
    argv = ["propagate", str(source), "--masks", str(mask), "--out", str(tmp_path / "out"), *FAST,
            *change.get("extra", [])]
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error:") and message in err
    assert "\n" not in err and "Traceback" not in err


@pytest.fixture()
def davis_root(tmp_path):
    root = tmp_path / "davis"
    for name, seed in (("alpha", 1), ("beta", 2)):
        frames, truth = moving_objects_clip(n_frames=5, hw=(64, 96), size=24, step=4, seed=seed)
        write_frames(root / "JPEGImages" / "480p" / name, frames)
        write_mask_folder(root / "Annotations" / "480p" / name, dict(enumerate(truth)))
    return root


def test_eval_prints_the_table_and_writes_json_and_csv(davis_root, tmp_path, capsys):
    js, cs, masks = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "masks"
    assert main(["eval", str(davis_root), "--json", str(js), "--csv", str(cs), "--save-masks", str(masks), *FAST]) == 0
    out = capsys.readouterr().out
    assert "| alpha" in out and "| beta" in out and "| mean" in out and "J&F" in out and "frames/s" in out
    report = json.loads(js.read_text())
    assert [s["sequence"] for s in report["sequences"]] == ["alpha", "beta"]
    assert 0.5 < report["mean"]["J&F"] <= 1.0
    assert report["params"]["topk"] == 10
    rows = list(csv.DictReader(cs.open()))
    assert rows[-1]["sequence"] == "mean" and float(rows[-1]["J"]) == pytest.approx(report["mean"]["J"], abs=1e-3)
    assert read_mask(masks / "beta" / "00004.png").shape == (64, 96)


def test_eval_refuses_to_replace_masks_json_csv_or_reports_without_overwrite(davis_root, tmp_path, capsys):
    masks, js, cs, report = tmp_path / "masks", tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "report"
    (masks / "beta").mkdir(parents=True)
    write_mask(masks / "beta" / "00000.png", np.zeros((64, 96), np.uint8))
    js.write_text("mine")
    cs.write_text("mine")
    report.mkdir()
    (report / "beta.csv").write_text("mine")
    mine = read_mask(masks / "beta" / "00000.png").copy()
    for option, path, message in (("--save-masks", masks, f"{masks / 'beta'} already holds masks"),
                                  ("--json", js, f"{js} exists"), ("--csv", cs, f"{cs} exists"),
                                  ("--report", report, f"{report / 'beta.csv'} exists")):
        assert main(["eval", str(davis_root), option, str(path), *FAST]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("annotator: error:") and message in err and "--overwrite" in err and "\n" not in err
    assert js.read_text() == cs.read_text() == (report / "beta.csv").read_text() == "mine"
    assert np.array_equal(read_mask(masks / "beta" / "00000.png"), mine) and not (masks / "alpha").exists()
    argv = ["eval", str(davis_root), "--save-masks", str(masks), "--json", str(js), "--csv", str(cs),
            "--report", str(report), "--overwrite", *FAST]
    assert main(argv) == 0
    assert json.loads(js.read_text())["mean"]["sequence"] == "mean" and cs.read_text().startswith("sequence,")
    assert sorted(read_mask_folder(masks / "beta")) == list(range(5))


def test_eval_only_some_sequences_and_unknown_ones(davis_root, capsys):
    assert main(["eval", str(davis_root), "--sequences", "beta", *FAST]) == 0
    out = capsys.readouterr().out
    assert "| beta" in out and "| alpha" not in out
    assert main(["eval", str(davis_root), "--sequences", "gamma", *FAST]) == 2
    assert "unknown sequence 'gamma'" in capsys.readouterr().err


def test_eval_on_a_folder_that_is_not_davis(tmp_path, capsys):
    assert main(["eval", str(tmp_path), *FAST]) == 2
    assert "is not a DAVIS root" in capsys.readouterr().err


def test_part_groups_option_decides_the_object_before_its_parts(clip, tmp_path, capsys):
    folder, mask, truth = clip
    ys, xs = np.nonzero(truth[0] == 1)
    quadrants = np.zeros_like(truth[0])  # the object as four parts, ids 1..4
    cy, cx = (ys.min() + ys.max() + 1) // 2, (xs.min() + xs.max() + 1) // 2
    quadrants[ys, xs] = 1 + (ys >= cy) * 2 + (xs >= cx)
    write_mask(mask, quadrants)
    runs = {}
    # without the reference flow, whose warped reference mask tracks this clip's object to the pixel
    # and leaves the parts' outlines nothing to decide
    for name, extra in (("plain", []), ("grouped", ["--part-groups", "1-4"])):
        assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(tmp_path / name), *FAST,
                     "--reference-flow", "0", *extra]) == 0
        runs[name] = read_mask_folder(tmp_path / name)
    assert set(np.unique(runs["grouped"][5])) == {0, 1, 2, 3, 4}  # still four parts, not one object
    plain, grouped = (np.isin(runs[n][5], [1, 2, 3, 4]) for n in ("plain", "grouped"))
    # where a part wins alone, the group wins too; at the edges the group also wins where no part does
    assert np.all(grouped[plain]) and grouped.sum() > plain.sum()
    assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(tmp_path / "bad"), *FAST,
                 "--part-groups", "1-2,2+x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error: part groups '1-2,2+x': 'x' is not an object id") and "\n" not in err


def test_eval_takes_part_groups_and_records_them(davis_root, tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(["eval", str(davis_root), "--json", str(js), "--part-groups", "1+2", *FAST]) == 0
    assert json.loads(js.read_text())["params"]["part_groups"] == [[1, 2]]
    assert main(["eval", str(davis_root), "--part-groups", "0-2", *FAST]) == 2
    assert "0 is background" in capsys.readouterr().err


def test_preset_sets_the_speed_factors_and_explicit_options_win(davis_root, tmp_path):
    fast, mixed = tmp_path / "fast.json", tmp_path / "mixed.json"
    assert main(["eval", str(davis_root), "--preset", "fast", "--json", str(fast), *FAST]) == 0
    assert main(["eval", str(davis_root), "--preset", "fast", "-r", "5", "--flip", "--json", str(mixed), *FAST]) == 0
    fast_report, mixed_report = json.loads(fast.read_text()), json.loads(mixed.read_text())
    fast_params = fast_report["params"]
    assert (fast_params["radius"], fast_params["context"], fast_params["context_stride"],
            fast_params["reference_stride"], fast_params["label_detail"], fast_params["islands"]) \
        == (12.0, 10, 2, 2, 1, False)  # one label per cell, as fast was measured, not the default's 8
    assert "+flip" not in fast_report["backbone"]
    assert fast_report["short_side"] == 0  # the working size given (FAST: the frames' own) wins over the preset's
    assert mixed_report["params"]["radius"] == 5.0 and mixed_report["params"]["context"] == 10
    quality, explicit = tmp_path / "quality.json", tmp_path / "explicit.json"
    assert main(["eval", str(davis_root), "--json", str(quality), *FAST]) == 0
    assert main(["eval", str(davis_root), "--preset", "fast", "--label-detail", "4", "--islands",
                 "--json", str(explicit), *FAST]) == 0
    quality_params = json.loads(quality.read_text())["params"]
    assert (quality_params["label_detail"], quality_params["islands"]) == (8, True)
    explicit_params = json.loads(explicit.read_text())["params"]
    assert (explicit_params["label_detail"], explicit_params["islands"], explicit_params["radius"]) == (4, True, 12.0)
    assert "+flip" in mixed_report["backbone"]


def test_best_preset_is_the_default_settings():
    from dataclasses import replace

    from annotator.core.features.backbones import DEFAULT_FLIP
    from annotator.core.engine.presets import DEFAULT_PRESET, PRESETS, preset
    from annotator.core.engine.propagation import PropagationParams
    from annotator.core.runs.settings import RunSettings
    from annotator.core.video import DEFAULT_SHORT_SIDE

    best = PRESETS[DEFAULT_PRESET]
    assert best.name == "best" and RunSettings().short_side == DEFAULT_SHORT_SIDE == 600
    assert best.apply(PropagationParams()) == PropagationParams() and best.flip == DEFAULT_FLIP
    assert best.short_side == RunSettings().short_side
    assert best.matches(PropagationParams(), DEFAULT_FLIP, RunSettings().short_side)
    assert not best.matches(PropagationParams(), DEFAULT_FLIP, 480)  # the working resolution counts
    assert not PRESETS["fast"].matches(PropagationParams(), DEFAULT_FLIP, RunSettings().short_side)
    quality = PRESETS["quality"]  # the defaults at a smaller working size, the radius keeping its reach in pixels
    assert quality.short_side == 480 < best.short_side
    assert quality.radius == pytest.approx(best.radius * quality.short_side / best.short_side) == 16
    assert best.colour_grow and not quality.colour_grow  # the grow's 0.46 s a frame is not quality's to pay
    assert replace(quality, name="best", measured=best.measured, radius=best.radius,
                   short_side=best.short_side, colour_grow=True) == best
    from annotator.core.errors import UsageError

    with pytest.raises(UsageError, match="fast"):
        preset("fastest")


def test_the_preset_sets_the_working_resolution_unless_given():
    from annotator.cli import _settings, build_parser
    from annotator.core.engine.presets import PRESETS, fill_unset_options

    def settings(argv):
        args = build_parser().parse_args(argv)
        fill_unset_options(args, args.preset)  # as main() does
        return _settings(args)

    for name, chosen in PRESETS.items():
        assert settings(["eval", "x", "--preset", name]).short_side == chosen.short_side
        assert settings(["eval", "x", "--preset", name]).params.radius == chosen.radius
    assert settings(["eval", "x", "--short-side", "720"]).short_side == 720
    assert settings(["eval", "x", "--short-side", "0"]).short_side is None  # the frames' own size
    # a working size without a radius: the preset's radius scaled to it, the same reach in pixels
    assert settings(["eval", "x", "--short-side", "480"]).params.radius == PRESETS["quality"].radius == 16
    assert settings(["eval", "x", "--preset", "quality", "--short-side", "600"]).params.radius == 20
    assert settings(["eval", "x", "--short-side", "480", "-r", "12"]).params.radius == 12  # given: kept
    assert settings(["eval", "x", "--short-side", "0"]).params.radius == PRESETS["best"].radius


@pytest.mark.parametrize("command", ["propagate", "eval"])
def test_keyframe_options_reach_the_factors(command):
    from annotator.cli import _params, build_parser
    from annotator.core.engine.presets import fill_unset_options

    def parse(argv):
        args = build_parser().parse_args(argv)
        fill_unset_options(args, args.preset)  # as main() does
        return args

    required = [command, "x", *(["--out", "y"] if command == "propagate" else [])]
    args = parse([*required, "--no-both-ways", "--fusion", "match", "--span-references", "all"])
    params = _params(args)
    assert (params.both_ways, params.fusion, params.span_references) == (False, "match", "all")
    defaults = _params(parse(required))
    assert (defaults.both_ways, defaults.fusion, defaults.span_references) == (True, "distance",
                                                                                PropagationParams().span_references)


def test_progress_of_a_video_with_several_masks_counts_the_frames_to_propagate(clip, tmp_path, capsys):
    folder, _mask, truth = clip
    masks = tmp_path / "keyframes"
    write_mask_folder(masks, {0: truth[0], 3: truth[3]})
    out = tmp_path / "out"
    fast = [a for a in FAST if a != "-q"]
    assert main(["propagate", str(folder), "--masks", str(masks), "--out", str(out), *fast]) == 0
    bar = capsys.readouterr().err
    assert "4/4" in bar and "/5" not in bar  # 6 frames, 2 references: 4 propagated, the bar ends full
