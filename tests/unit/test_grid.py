"""``eval --grid`` runs every factor it advertises, through the same run-and-score as ``eval``."""

from __future__ import annotations

import csv

import pytest

from annotator.cli import build_parser, main
from annotator.core.runs.experiments import FACTORS
from tests.synthetic import make_davis_root

# a value of each factor other than the command line's default (the base row of --one-at-a-time)
OTHER_VALUE = {
    "context": "2", "context_stride": "2", "reference_stride": "2", "topk": "3", "temperature": "0.1",
    "radius": "4", "radius_for_references": "yes", "context_labels": "hard", "upsample": "guided",
    "flow": "0.5", "short_side": "48", "stage": "s3", "label_detail": "2", "anchor": "yes", "islands": "no",
    "background_bias": "-0.3", "appearance": "1.5", "reference_flow": "0.5",
    "flow_preset": "ultrafast", "colour_grow": "no",
}
BASE = ["--short-side", "0", "-q"]


@pytest.fixture()
def davis_root(tmp_path):
    make_davis_root(tmp_path / "davis", ("alpha",), n_frames=7, seed=2)
    return tmp_path / "davis"


def _rows(path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def test_the_help_advertises_exactly_the_grid_factors():
    eval_parser = build_parser()._subparsers._group_actions[0].choices["eval"]  # noqa: SLF001
    help_text = next(a.help for a in eval_parser._actions if "--grid" in a.option_strings)  # noqa: SLF001
    for aliases, _ in FACTORS.values():
        assert aliases[0] in help_text
    assert set(OTHER_VALUE) | {"backbone"} == set(FACTORS)  # a new factor is added to the test below


def test_guided_upsampling_and_flow_in_a_grid(davis_root, tmp_path):
    """The frames reach the engine: guided upsampling and the flow cue need them (they failed in a grid)."""
    out = tmp_path / "grid.csv"
    assert main(["eval", str(davis_root), *BASE, "--stage", "s3", "--grid", "upsample=guided,bilinear",
                 "--grid", "flow=0,0.5", "--csv", str(out)]) == 0
    rows = _rows(out)
    assert [(r["upsample"], r["flow"]) for r in rows] == [("guided", "0.0"), ("guided", "0.5"), ("bilinear", "0.0"),
                                                          ("bilinear", "0.5")]
    assert all(0.5 < float(r["J&F"]) <= 1 for r in rows)


def test_a_grid_row_scores_as_eval_does_with_keyframes(davis_root, tmp_path):
    """A grid point with eval's own settings gives eval's J&F, --keyframes included."""
    options = [*BASE, "--stage", "s3", "--keyframes", "3"]
    assert main(["eval", str(davis_root), *options, "--csv", str(tmp_path / "eval.csv")]) == 0
    assert main(["eval", str(davis_root), *options, "--grid", "k=10,1", "--csv", str(tmp_path / "grid.csv")]) == 0
    plain, grid = _rows(tmp_path / "eval.csv"), _rows(tmp_path / "grid.csv")
    assert plain[0]["frames"] == "4"  # 7 frames, keyframes 0, 3, 6
    assert grid[0]["J&F"] == plain[-1]["J&F"]
    assert grid[1]["J&F"] != grid[0]["J&F"]


def test_every_grid_factor_runs(davis_root, tmp_path):
    out = tmp_path / "axes.csv"
    grids = [f"{name}={value}" for name, value in OTHER_VALUE.items()]
    assert main(["eval", str(davis_root), *BASE, "--one-at-a-time", *(a for g in grids for a in ("--grid", g)),
                 "--csv", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 1 + len(OTHER_VALUE)  # the base row, then one factor changed each
    assert all(0 <= float(r["J&F"]) <= 1 for r in rows)
    # the backbone factor on its own: a stage in the spec would clash with the stage factor's base value
    assert main(["eval", str(davis_root), *BASE, "--grid", "backbone=lite0:s3,lite0:s4", "--csv", str(out),
                 "--overwrite"]) == 0
    rows = _rows(out)
    assert [r["backbone"] for r in rows] == ["lite0:s3", "lite0:s4"] and rows[0]["J&F"] != rows[1]["J&F"]
