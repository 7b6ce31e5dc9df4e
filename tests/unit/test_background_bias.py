"""The background bias (``PropagationParams.background_bias``): it moves only the label maps' decision
between background and the objects, on one-way and on both-ways frames; the soft labels and the
context stay as they were; bad values are refused; the quality preset carries it, the others do not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.cli import main
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.presets import PRESETS
from annotator.core.engine.propagation import PropagationParams
from annotator.core.errors import UsageError

H, W = 6, 8  # feature grid; the output is 8 pixels per cell


class Features:
    """A feature source of constant maps (the fake engine below does not look at them)."""

    def __call__(self, index: int) -> torch.Tensor:
        return torch.zeros(4, H, W)


def run(bias: float, references: dict[int, np.ndarray], frames: int) -> tuple[dict, list]:
    """Results by frame, and the labels of every propagated frame the engine saw in its context."""
    seen: list[torch.Tensor] = []

    def engine(target, context, params, **_):
        seen.extend(frame.labels.clone() for frame in context if not frame.reference)
        soft = torch.zeros(2, H, W)
        soft[1, :, :4] = 0.9  # surely the object
        soft[1, :, 4:6] = 0.45  # unsure: object only with a bias below -0.1
        soft[0] = 1 - soft[1]
        return soft

    params = PropagationParams(reference_flow=0, colour_grow=False, background_bias=bias, label_detail=1, islands=False, context=2)
    results = {r.index: r for r in propagate_video(Features(), references, frames, params, engine=engine)}
    return results, seen


def test_the_bias_moves_only_the_label_maps_one_way_and_both_ways():
    mask = np.zeros((H * 8, W * 8), np.uint8)
    mask[:, :32] = 1
    references = {1: mask, 5: mask}  # frames 2-4 are filled both ways, 0 and 6-7 one way
    plain, plain_context = run(0.0, references, 8)
    grown, grown_context = run(-0.2, references, 8)
    assert sorted(plain) == sorted(grown) == [0, 2, 3, 4, 6, 7]
    assert {r.keyframes for r in grown.values()} == {1, 2}
    for t in plain:
        assert plain[t].labels[:, :32].all() and grown[t].labels[:, :32].all()
        # pixels 32-47 lie in the unsure cells (bilinear blends the edges of the neighbouring cells)
        assert not plain[t].labels[:, 36:].any(), t  # 0.45 is background at one half
        assert grown[t].labels[:, 32:44].all() and not grown[t].labels[:, 48:].any(), t  # above 0.4: object
        assert torch.equal(plain[t].soft, grown[t].soft)
    assert len(plain_context) == len(grown_context) > 0
    assert all(torch.equal(a, b) for a, b in zip(plain_context, grown_context))  # the context is untouched
    shrunk, _ = run(0.9, references, 8)
    assert not any(r.labels.any() for r in shrunk.values())  # 0.9 for the object is below (1 + 0.9) / 2


@pytest.mark.parametrize("bias", [-1.0, 1.0, 2.5, float("nan")])
def test_bad_biases_are_refused(bias):
    with pytest.raises(UsageError, match="background bias"):
        PropagationParams(background_bias=bias).validate()


def test_the_command_line_option_and_the_presets(clip, tmp_path, capsys):
    folder, mask, _ = clip
    assert main(["propagate", str(folder), "--masks", str(mask), "--out", str(tmp_path / "o"),
                 "--background-bias", "1.5", "-q"]) == 2
    assert "background bias must be between -1 and 1" in capsys.readouterr().err
    assert PRESETS["best"].background_bias == PRESETS["quality"].background_bias == PropagationParams().background_bias \
        == -0.1
    assert PRESETS["fast"].background_bias == PRESETS["balanced"].background_bias == 0.0  # as they were measured
    assert PRESETS["fast"].apply(PropagationParams()).background_bias == 0.0
