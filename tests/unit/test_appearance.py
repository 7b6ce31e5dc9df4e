"""The appearance model (``PropagationParams.appearance``): a linear classifier fitted on the reference frames
that adds its evidence for an object to each frame's result, and never to what the frame hands on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from annotator.core.engine.appearance import AppearanceModel, fuse_appearance
from annotator.core.engine.keyframes import fill_span
from annotator.core.engine.propagation import PropagationParams, propagate
from annotator.core.errors import UsageError

H, W, C = 8, 16, 16
LIKENESS = 0.5


def features_with(regions: dict[int, tuple[slice, slice]], seed: int, likeness: float = 0.0) -> torch.Tensor:
    """(C, H, W) unit features: background cells near one direction, the cells of object j near another
    whose cosine with the background's is ``likeness``."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.eye(C)
    directions[1:] = likeness * directions[0] + (1 - likeness ** 2) ** 0.5 * directions[1:]
    feats = directions[0][:, None, None] + 0.15 * torch.randn(C, H, W, generator=g)
    for label, (rows, cols) in regions.items():
        patch = directions[label][:, None, None] + 0.15 * torch.randn(C, H, W, generator=g)
        feats[:, rows, cols] = patch[:, rows, cols]
    return feats / feats.norm(dim=0, keepdim=True)


def one_hot(regions: dict[int, tuple[slice, slice]], n_labels: int) -> torch.Tensor:
    labels = torch.zeros(n_labels, H, W)
    labels[0] = 1
    for label, (rows, cols) in regions.items():
        labels[:, rows, cols] = 0
        labels[label, rows, cols] = 1
    return labels


def test_the_model_tells_each_object_from_the_background_where_it_moved():
    before = {1: (slice(1, 4), slice(1, 4)), 2: (slice(4, 7), slice(8, 12))}
    after = {1: (slice(3, 6), slice(4, 7)), 2: (slice(0, 3), slice(11, 15))}  # both moved elsewhere
    model = AppearanceModel.fit([features_with(before, 0)], [one_hot(before, 3)])
    predicted = model.logits(features_with(after, 1)).argmax(0)
    assert torch.equal(predicted, one_hot(after, 3).argmax(0))


def test_a_small_object_is_not_drowned_by_its_background():
    """Four object cells against 124 of background that looks somewhat alike: fitted with every cell
    weighing the same, the model gives the background's side of the boundary and misses object cells."""
    small = {1: (slice(3, 5), slice(7, 9))}
    model = AppearanceModel.fit([features_with(small, 2, LIKENESS)], [one_hot(small, 2)])
    logits = model.logits(features_with(small, 3, LIKENESS))
    assert bool((logits[1] > logits[0])[3:5, 7:9].all())
    assert int((logits[1] > logits[0]).sum()) == 4


def test_fusion_adds_evidence_for_an_object_and_nothing_where_the_model_says_background():
    soft = torch.tensor([0.7, 0.3])[:, None, None].repeat(1, H, W)
    logits = torch.zeros(2, H, W)
    logits[1, :, :8] = 2.0  # left half: the model says object
    logits[0, :, 8:] = 5.0  # right half: the model says background, strongly
    fused = fuse_appearance(soft, logits, 0.5)
    assert bool((fused[1, :, :8] > 0.5).all())  # 0.3 * e / (0.7 + 0.3 * e) = 0.54: now the object
    torch.testing.assert_close(fused[:, :, 8:], soft[:, :, 8:])  # untouched, however sure the model is
    torch.testing.assert_close(fused.sum(0), torch.ones(H, W))
    finer = fuse_appearance(soft.repeat_interleave(4, 1).repeat_interleave(4, 2), logits, 0.5)
    assert finer.shape == (2, 4 * H, 4 * W)  # sub-cell labels: the logits are upsampled onto their grid
    assert bool((finer[1, :, :28] > 0.5).all()) and bool((finer[1, :, 36:] < 0.5).all())


def test_a_run_recovers_a_missed_part_and_hands_on_propagations_own_labels():
    """A fake engine that misses the right half of the object; the features show it is the object."""
    obj = {1: (slice(2, 6), slice(4, 12))}
    feats = features_with(obj, 4)
    reference = np.zeros((H * 8, W * 8), np.uint8)
    reference[16:48, 32:96] = 1
    missed = one_hot({1: (slice(2, 6), slice(4, 8))}, 2) * 0.8 + 0.1  # right half of the object: p = 0.1
    handed_on: list[torch.Tensor] = []

    def engine(target, context, params, **_):
        handed_on.extend(frame.labels.float() for frame in context if not frame.reference)
        return missed.clone()

    def run(weight: float) -> list:
        handed_on.clear()
        params = PropagationParams(reference_flow=0, colour_grow=False, appearance=weight, context=3, label_detail=1, islands=False)
        return list(propagate(lambda i: feats, {0: reference}, 0, 4, params, engine=engine))

    plain = run(0.0)
    assert not plain[0].labels[16:48, 72:88].any()  # the missed half stays background without the model
    fused = run(2.0)
    for result in fused:
        assert result.labels[20:44, 36:92].all()  # the whole object, the missed half recovered
        assert not result.labels[:, :24].any() and not result.labels[:, 104:].any()  # no background taken
    assert handed_on and all(torch.allclose(labels, missed) for labels in handed_on)  # the context: unfused


def test_frames_between_two_keyframes_are_left_to_propagation():
    """The keyframe fill runs without the model (it lost there); the one-way run after the last keyframe uses it."""
    obj = {1: (slice(2, 6), slice(4, 12))}
    feats = features_with(obj, 5)
    reference = np.zeros((H * 8, W * 8), np.uint8)
    reference[16:48, 32:96] = 1
    missed = one_hot({1: (slice(2, 6), slice(4, 8))}, 2) * 0.8 + 0.1

    def engine(target, context, params, **_):
        return missed.clone()

    def labels(weight: float, fill: bool) -> list[np.ndarray]:
        params = PropagationParams(reference_flow=0, colour_grow=False, appearance=weight, context=3, label_detail=1, islands=False)
        references = {0: reference, 4: reference}
        results = fill_span(lambda i: feats, references, 0, 4, params, engine=engine) if fill else \
            propagate(lambda i: feats, references, 4, 7, params, engine=engine)
        return [r.labels for r in results]

    for with_model, without in zip(labels(2.0, True), labels(0.0, True), strict=True):
        np.testing.assert_array_equal(with_model, without)
    after_last = labels(2.0, False)
    assert len(after_last) == 2 and all(lab[20:44, 72:88].all() for lab in after_last)


def test_a_negative_weight_is_refused():
    with pytest.raises(UsageError, match="appearance"):
        PropagationParams(appearance=-0.5).validate()


def test_the_fit_reaches_the_minimum_of_its_objective():
    """The hand-written L-BFGS stops where the penalised, label-balanced cross-entropy has no slope left
    (its gradient taken here by autograd, independently of the fit's own)."""
    regions = {1: (slice(1, 4), slice(1, 4)), 2: (slice(4, 7), slice(8, 12))}
    feats = features_with(regions, 6, LIKENESS)
    labels = one_hot(regions, 3)
    labels[:, 0, 0] = torch.tensor([0.5, 0.5, 0.0])  # a mixed cell counts with its fractions
    penalty = 2e-3
    model = AppearanceModel.fit([feats], [labels], penalty=penalty)
    x, y = feats.double().flatten(1).T, labels.double().flatten(1).T
    cell_weight = (y / y.sum(0)).sum(1) * (len(y) / 3)
    weight = model.weight.double().requires_grad_()
    bias = model.bias.double().requires_grad_()
    loss = -(cell_weight * (y * (x @ weight.T + bias).log_softmax(1)).sum(1)).mean() + penalty * weight.pow(2).sum()
    loss.backward()
    assert float(weight.grad.abs().max()) < 1e-5 and float(bias.grad.abs().max()) < 1e-5
    assert float(model.weight.abs().max()) > 0.5  # and it moved: zero weights are not the minimum here


def test_fitting_does_not_import_the_compiler():
    """torch.optim's optimisers import torch._dynamo on first use (over a second on this machine): the
    fit must not, or every command and worker process pays it."""
    code = ("import sys, torch\n"
            "from annotator.core.engine.appearance import AppearanceModel\n"
            "AppearanceModel.fit([torch.randn(4, 3, 3)], [torch.ones(1, 3, 3).repeat(2, 1, 1) / 2])\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
