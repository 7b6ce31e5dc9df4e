"""The benchmark scripts run as documented: every preset field reaches them (a field a preset sets but a
script's parser lacks stopped bench_pipeline.py before its first frame)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.synthetic import clip_on_disk, make_davis_root

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("preset", ["quality", "fast"])
def test_bench_pipeline_runs_a_preset_and_names_its_settings(tmp_path, preset):
    from annotator.core.engine.presets import PRESETS

    frames, mask, _ = clip_on_disk(tmp_path, n_frames=3)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = run_script("bench_pipeline.py", str(frames), "--mask", str(mask), "--frames", "2", "--engines", "default",
                     "--threads", "1", "--preset", preset, "--short-side", "0", env={"TMPDIR": str(scratch)})
    assert not list(scratch.glob("bench-masks-*"))  # the masks it wrote for timing are removed
    chosen = PRESETS[preset]
    assert f"appearance {chosen.appearance:g}," in out and f"label detail {chosen.label_detail}," in out
    assert re.search(r"^\| lite0\S* \| 96x64 \| default \| 1 \|", out, re.MULTILINE)  # the table's row of the run


def test_bench_effort_runs_and_records_the_appearance_weight(tmp_path):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=4)
    results = tmp_path / "rows.jsonl"
    out = run_script("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "forward", "--threads", "1",
                     "--short-side", "0", "--appearance", "0.25", "--results", str(results))
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["sequence"], r["strategy"], r["appearance"]) for r in rows] == [("alpha", "forward", 0.25)]
    assert "appearance=0.25" in out  # the run's parameters as printed
    # where the app would first have said "you may be done", and the table's lines for a person who stops there
    hint = rows[0]["done_hint"]
    assert hint is None or set(hint) == {"painted", "accepted", "below", "worst_j"}
    assert re.search(r'^\| painted per 100, stopping at "you may be done" \(1 sequences\) \| - \| \d+\.\d \|$', out,
                     re.MULTILINE)
    # the same command again finds its row; another weight does not reuse it
    run_script("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "forward", "--threads", "1",
               "--short-side", "0", "--appearance", "0.25", "--results", str(results))
    assert len(results.read_text().splitlines()) == 1
    run_script("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "forward", "--threads", "1",
               "--short-side", "0", "--appearance", "0", "--results", str(results))
    assert len(results.read_text().splitlines()) == 2


def test_bench_effort_scales_the_radius_with_the_working_size(tmp_path):
    from annotator.core.engine.presets import DEFAULT_PRESET, PRESETS

    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=3)
    chosen = PRESETS[DEFAULT_PRESET]  # the bench's preset when none is given
    for short_side, radius in ((0, chosen.radius), (chosen.short_side // 4, chosen.radius / 4)):
        out = run_script("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "forward", "--threads", "1",
                         "--short-side", str(short_side), "--results", str(tmp_path / f"rows{short_side}.jsonl"))
        assert f"features at short side {short_side}," in out and f" radius={radius}," in out


def test_bench_effort_keeps_rows_of_each_suggestion_rule_apart(tmp_path):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=4)
    results = tmp_path / "rows.jsonl"
    # a row from before session 35 (no "suggestion": the first failing frame, onset fallback)
    results.write_text(json.dumps({"sequence": "alpha", "frames": 4, "goal": 0.5, "strategy": "both",
                                   "annotated": 1, "frames_annotated": [0], "seconds": 0.0,
                                   "span_references": "earlier", "preset": "quality", "label_detail": 8,
                                   "islands": True, "background_bias": -0.1, "short_side": 0,
                                   "appearance": 0.0}) + "\n")
    args = ("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "both", "--threads", "1", "--preset",
            "quality", "--short-side", "0", "--appearance", "0", "--reference-flow", "0", "--results", str(results),
            "--good-frames", "paint")  # what every row before session 40 did
    run_script(*args)  # the app's rule, which the old row's was: found, not recomputed
    assert len(results.read_text().splitlines()) == 1
    run_script(*args, "--leap")
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r.get("suggestion") for r in rows] == [None, "leap-onset"]  # the old row was not taken for this rule
    run_script(*args, "--fallback", "max")
    run_script(*args, "--fallback", "max")  # found again
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r.get("suggestion") for r in rows] == [None, "leap-onset", "first-max"]
    run_script(*args[:-1], "accept")  # accepting good frames is another annotator: a row of its own
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r.get("good_frames") for r in rows] == [None, "paint", "paint", "accept"]
    assert isinstance(rows[-1]["accepted"], int) and rows[-1]["frames_accepted"] is not None


def _bench_effort_module():
    sys.path.insert(0, str(BENCH))
    try:
        import bench_effort
    finally:
        sys.path.remove(str(BENCH))
    return bench_effort


class _FakeRuns:
    """Runs of a 9-frame clip with references at 0 and 8: a frame's J falls with its distance from the
    nearest reference, faster from an accepted one; every frame equally uncertain."""

    n = 9

    def __init__(self, bench_effort, painted_decay: float = 0.1, accepted_decay: float = 0.2) -> None:
        self.be, self.decays = bench_effort, (painted_decay, accepted_decay)
        self.sources: list[dict[int, bytes]] = []

    def span(self, first, last, refs, accepted):
        self.sources.append(dict(accepted))
        out = {}
        for f in range(first + 1, self.n if last is None else last):
            near = min(refs, key=lambda r: abs(r - f))
            j = 1.0 - self.decays[near in accepted] * abs(near - f)
            out[f] = self.be.Value(j, 0.5, f"labels of {f}".encode())
        return out


def test_the_simulated_annotator_accepts_a_suggested_frame_that_is_already_good():
    be = _bench_effort_module()
    runs = _FakeRuns(be)
    # frame 1 is suggested first (every frame looks alike; the first in time order) and is good (J 0.9)
    painted, accepted, hint = be.suggested(runs, 0.75, both=True, first={0, 8}, good="accept")
    assert accepted and accepted[0] == 1 and not set(painted) & set(accepted)
    assert all(runs.sources[-1][f] == f"labels of {f}".encode() for f in accepted)  # its own labels, kept
    assert 0 in painted and 8 in painted
    # the acceptance of frame 1 (uncertainty 0.5, estimated J 0.5) says its J met the goal 0.75: the
    # calibration trusts the uncertainty a little more, but a frame as doubtful is still estimated below the
    # goal, so the app never says "you may be done" while frames are below it
    assert hint is None or hint.below == 0
    # session 40's rule (an accepted frame taught J 1) said it at once, with frames 3, 4 and 5 below the goal
    # (J 0.6, 0.4, 0.7 from the accepted frame 1 and the painted 8); the person went on all the same
    *_, hint_one = be.suggested(_FakeRuns(be), 0.75, both=True, first={0, 8}, good="accept", accepted_teaches="one")
    assert hint_one == be.DoneHint(painted=2, accepted=1, below=3, worst_j=pytest.approx(0.4))
    # painting instead: the same first pick is painted, nothing is accepted
    painted_only, none, _ = be.suggested(_FakeRuns(be), 0.75, both=True, first={0, 8}, good="paint")
    assert none == [] and 1 in painted_only


def test_bench_flow_times_every_dis_preset(tmp_path):
    from annotator.core.engine.flow import FLOW_PRESETS

    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=3)
    out = run_script("bench_flow.py", str(root), "--time-presets")
    timed = re.findall(r"^\| (\w+) \| (\d+) \|$", out, re.MULTILINE)
    assert [name for name, _ in timed] == list(FLOW_PRESETS)


def test_bench_effort_records_masks_grown_by_colour_apart(tmp_path):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=4)
    results = tmp_path / "rows.jsonl"
    args = ("bench_effort.py", str(root), "--goal", "0.5", "--strategies", "forward", "--threads", "1",
            "--short-side", "0", "--results", str(results))
    out = run_script(*args)  # the app's default grows (session 53)
    assert "colour_grow=True" in out
    run_script(*args, "--no-colour-grow")  # another setting: a second row
    run_script(*args, "--colour-grow")  # the default's own: its row is there, so nothing runs
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["colour_grow"] for r in rows] == [True, False]


def test_bench_upsampling_scores_the_grown_masks(tmp_path):
    root = tmp_path / "davis"
    make_davis_root(root, names=("alpha",), n_frames=4)
    out = run_script("bench_upsampling.py", str(root), "--threads", "1", "--short-side", "0", "--variants",
                     "background -0.10", "grown by colour (--colour-grow)")
    assert re.search(r"^\| grown by colour \(--colour-grow\) \| [01]\.\d{3} \|", out, re.MULTILINE)


def test_bench_long_video_runs_annotator_propagate_with_a_preset(tmp_path):
    # gpu_check.sh runs the long videos with --preset quality (no colour grow, which runs on the CPU)
    out = run_script("bench_long_video.py", "--frames", "3", "--short-side", "64", "--threads", "1",
                     "--preset", "quality", "--workdir", str(tmp_path))
    assert "preset quality" in out
    assert re.search(r"^\| 3 \| \d+ \| [\d.]+ \| \d+ \| - \|$", out, re.MULTILINE)  # its row: 3 frames on the CPU
