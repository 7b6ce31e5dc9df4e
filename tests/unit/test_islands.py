"""Unsupported islands (``PropagationParams.islands``): a detached island of an object's label that the
references alone do not give that label takes their labels, in the result and in the next frame's context;
the largest island, islands the references support and background are left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.islands import prune_islands
from annotator.core.engine.propagation import (
    ContextFrame,
    PropagationParams,
    propagate,
    propagate_frame,
    propagate_frame_naive,
    propagate_frame_torch,
)

from tests.synthetic import unit_features

H, W = 8, 16


def two_islands(p: float = 0.9) -> torch.Tensor:
    """(2, H, W) labels: the object (channel 1) over a big block on the left and a small one on the right."""
    obj = torch.full((H, W), 1 - p)
    obj[1:7, 1:7] = p  # 36 cells: the largest island
    obj[2:5, 11:14] = p  # 9 cells, detached
    return torch.stack([1 - obj, obj])


def background_only() -> torch.Tensor:
    return torch.stack([torch.full((H, W), 0.8), torch.full((H, W), 0.2)])


def test_an_island_the_references_call_background_takes_their_labels():
    soft = two_islands()
    references = background_only()
    out = prune_islands(soft, (0, 1), lambda: references)
    torch.testing.assert_close(out[:, 2:5, 11:14], references[:, 2:5, 11:14])
    torch.testing.assert_close(out[:, 1:7, 1:7], soft[:, 1:7, 1:7])  # the largest island is kept
    assert out.argmax(0)[:, 8:].sum() == 0  # no object cell left on the right
    assert soft[1, 3, 12] == pytest.approx(0.9)  # the input is not changed in place


def test_islands_are_those_of_the_biased_decision_the_label_map_makes():
    """A patch at 0.47 is background to a plain argmax but the object in a label map drawn with the bias
    -0.1 (a pixel is the object above 0.45): with the bias it is an island, asked of the references."""
    soft = two_islands()
    soft[:, 2:5, 11:14] = torch.tensor([0.53, 0.47])[:, None, None]
    references = background_only()
    assert prune_islands(soft, (0, 1), lambda: references) is soft  # no bias: one island, nothing asked
    out = prune_islands(soft, (0, 1), lambda: references, background_bias=-0.1)
    torch.testing.assert_close(out[:, 2:5, 11:14], references[:, 2:5, 11:14])
    torch.testing.assert_close(out[:, 1:7, 1:7], soft[:, 1:7, 1:7])
    assert soft[0, 3, 12] == pytest.approx(0.53)  # the bias does not leak into the caller's labels
    # a bias above 0 shrinks what is drawn: the same patch at 0.55 is no island of the decision
    soft[:, 2:5, 11:14] = torch.tensor([0.45, 0.55])[:, None, None]
    assert prune_islands(soft, (0, 1), lambda: references, background_bias=0.2) is soft
    assert prune_islands(soft, (0, 1), lambda: references) is not soft


def test_an_island_the_references_recognise_keeps_its_label():
    soft = two_islands()
    references = torch.stack([torch.full((H, W), 0.3), torch.full((H, W), 0.7)])  # they say: the object
    assert prune_islands(soft, (0, 1), lambda: references) is soft


def test_the_largest_island_is_never_pruned_and_one_island_asks_nothing():
    soft = torch.zeros(2, H, W)
    soft[0] = 1.0
    soft[:, 1:7, 1:7] = torch.tensor([0.1, 0.9])[:, None, None]

    def no_question() -> torch.Tensor:
        raise AssertionError("the references were asked about a frame with one island")

    assert prune_islands(soft, (0, 1), no_question) is soft


def test_background_islands_and_each_object_on_its_own():
    # objects 3 and 7 each one island, background in two pieces (a hole in object 3): nothing to prune
    soft = torch.zeros(3, H, W)
    soft[0] = 1.0
    soft[:, 1:7, 1:7] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    soft[:, 3:5, 3:5] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # hole: a second background island
    soft[:, 1:3, 10:15] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    assert prune_islands(soft, (0, 3, 7), lambda: torch.zeros(3, H, W)) is soft


def _islands_of(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected islands of ``mask``, each a bool mask (a plain flood fill, independent of OpenCV)."""
    seen = np.zeros_like(mask, bool)
    found = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        island = np.zeros_like(mask, bool)
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            island[y, x] = True
            for ny in range(max(y - 1, 0), min(y + 2, mask.shape[0])):
                for nx in range(max(x - 1, 0), min(x + 2, mask.shape[1])):
                    if mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
        found.append(island)
    return found


def test_many_islands_each_judged_by_its_own_mean():
    """Random labels with dozens of islands per object: each island but the largest is kept or replaced by
    its own mean reference probability (all islands are judged at once in prune_islands; one by one here)."""
    rng = np.random.default_rng(3)
    soft = torch.softmax(torch.from_numpy(rng.normal(0, 2, (3, 40, 56))).float(), 0)
    references = torch.softmax(torch.from_numpy(rng.normal(0, 1, (3, 40, 56))).float(), 0)
    out = prune_islands(soft, (0, 4, 9), lambda: references)
    winner = soft.argmax(0).numpy()
    pruned_count = kept_count = 0
    for channel in (1, 2):
        islands = _islands_of(winner == channel)
        assert len(islands) > 10
        largest = max(range(len(islands)), key=lambda i: islands[i].sum())
        for i, island in enumerate(islands):
            cells = torch.from_numpy(island)
            pruned = i != largest and float(references[channel][cells].mean()) < 0.5
            torch.testing.assert_close(out[:, cells], (references if pruned else soft)[:, cells])
            pruned_count += pruned
            kept_count += not pruned
    assert pruned_count > 5 and kept_count > 5  # both ways were exercised
    background = torch.from_numpy(winner == 0)
    torch.testing.assert_close(out[:, background], soft[:, background])


def test_islands_are_pruned_before_the_frame_joins_the_context():
    """Through ``propagate``: an engine whose context frames report an island the references call background."""
    reference = np.zeros((H * 8, W * 8), np.uint8)
    reference[8:56, 8:56] = 1
    seen: list[torch.Tensor] = []

    def engine(target, context, params, *, references=None, **_):
        assert (references is not None) == params.islands  # asked for exactly when pruning
        if references is not None:
            references.copy_(background_only())  # the references alone: background everywhere
        seen.extend(frame.labels for frame in context if not frame.reference)
        return two_islands()

    def run(islands: bool) -> list:
        seen.clear()
        params = PropagationParams(reference_flow=0, colour_grow=False, islands=islands, context=3, label_detail=1)  # the fake engine answers per cell
        return list(propagate(lambda i: torch.zeros(4, H, W), {0: reference}, 0, 3, params, engine=engine))

    kept = run(False)
    assert kept[0].labels[26:30, 98:102].all()  # without pruning the island is in the mask...
    assert all(bool(labels[1, 2:5, 11:14].gt(0.5).all()) for labels in seen)  # ...and in the context

    pruned = run(True)
    for result in pruned:
        assert not result.labels[:, 64:].any()
        assert result.labels[12:52, 12:52].all()
        assert result.soft[1, 2:5, 11:14].max() < 0.5
    assert seen and all(float(labels[1, 2:5, 11:14].max()) < 0.5 for labels in seen)


@pytest.mark.parametrize("bias, pruned", [(-0.1, True), (0.0, False)])
def test_propagate_finds_islands_with_the_runs_background_bias(bias, pruned):
    """A faint patch (0.47) that the biased label map would draw as the object is pruned, in the mask and in
    the context; without the bias it is no part of the mask, no island, and keeps its labels."""
    reference = np.zeros((H * 8, W * 8), np.uint8)
    reference[8:56, 8:56] = 1
    faint = two_islands()
    faint[:, 2:5, 11:14] = torch.tensor([0.53, 0.47])[:, None, None]
    seen: list[torch.Tensor] = []

    def engine(target, context, params, *, references=None, **_):
        references.copy_(background_only())
        seen.extend(frame.labels for frame in context if not frame.reference)
        return faint

    params = PropagationParams(reference_flow=0, colour_grow=False, islands=True, context=3, label_detail=1, background_bias=bias)
    results = list(propagate(lambda i: torch.zeros(4, H, W), {0: reference}, 0, 3, params, engine=engine))
    for result in results:
        assert not result.labels[:, 64:].any()  # drawn nowhere: pruned, or below the plain argmax's 0.5
        assert float(result.soft[1, 3, 12]) == pytest.approx(0.2 if pruned else 0.47)
    assert seen and all(float(labels[1, 3, 12]) == pytest.approx(0.2 if pruned else 0.47) for labels in seen)


def test_a_real_run_keeps_an_island_that_looks_like_the_reference_object():
    """The engine's own answer for the references: a second patch with the object's look stays object."""
    a = torch.zeros(4)
    a[0] = 1.0
    b = torch.zeros(4)
    b[1] = 1.0
    frame0 = b[:, None, None].repeat(1, H, W)
    frame0[:, 1:7, 1:7] = a[:, None, None]
    later = frame0.clone()
    later[:, 2:5, 11:14] = a[:, None, None]  # a second patch that looks like the object

    reference = np.zeros((H * 8, W * 8), np.uint8)
    reference[8:56, 8:56] = 1
    params = PropagationParams(reference_flow=0, colour_grow=False, islands=True, precision="float32", radius=2, tile=4)
    results = list(propagate(lambda i: frame0 if i == 0 else later, {0: reference}, 0, 3, params))
    for result in results:
        assert result.labels[26:30, 98:102].all()  # two islands, both kept: the references recognise both
        assert result.labels[12:52, 12:52].all()


@pytest.mark.parametrize("engine, memo", [(propagate_frame, False), (propagate_frame, True),
                                          (propagate_frame_torch, False), (propagate_frame_naive, False)],
                         ids=["compiled-topk", "compiled-topk-memo", "torch-topk", "naive"])
def test_what_the_engines_say_for_the_references_is_a_run_over_the_references_alone(engine, memo):
    h, w = 9, 11
    feats = unit_features(4, 16, h, w, seed=4)
    gen = torch.Generator().manual_seed(9)
    labels = torch.softmax(torch.randn(4, 3, h, w, generator=gen) * 3, dim=1)
    is_reference = [True, True, False, False]
    context = [ContextFrame(i, feats[i], labels[i], local=not is_reference[i] or i == 1, reference=is_reference[i])
               for i in range(4)]
    target = unit_features(1, 16, h, w, seed=7)[0]
    params = PropagationParams(radius=3.0, tile=4, topk=6, temperature=0.07, precision="float32")
    extra = {"memo": CandidateMemo(100), "target_index": 5} if memo else {}
    alone = torch.full((3, h, w), float("nan"))
    out = engine(target, context, params, references=alone, **extra)
    torch.testing.assert_close(alone, propagate_frame_naive(target, context[:2], params), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, propagate_frame_naive(target, context, params), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(alone, out, atol=1e-3)  # the recent frames do change the answer
