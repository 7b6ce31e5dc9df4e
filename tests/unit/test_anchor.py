"""Anchoring to the references (``PropagationParams.anchor``): the three engines agree, the references'
share follows sigmoid(m_ref - m_all), and runs anchor every frame that has propagated frames in its context."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from annotator.core.engine.candidates import CandidateMemo
from annotator.core.engine.propagation import (
    ContextFrame,
    PropagationParams,
    propagate,
    propagate_frame,
    propagate_frame_naive,
    propagate_frame_torch,
)

from tests.synthetic import unit_features

ENGINES = [propagate_frame, propagate_frame_torch, propagate_frame_naive]


def mixed_context(h: int, w: int, local: list[bool], references: list[bool], seed: int) -> list[ContextFrame]:
    gen = torch.Generator().manual_seed(seed + 1)
    feats = unit_features(len(local), 16, h, w, seed)
    labels = torch.softmax(torch.randn(len(local), 3, h, w, generator=gen) * 3, dim=1)
    return [ContextFrame(i, feats[i], labels[i], local[i], reference=references[i]) for i in range(len(local))]


@pytest.mark.parametrize("h, w, radius, topk, local, references", [
    (11, 13, 3.0, 10, [False, True, True], [True, False, False]),
    (9, 17, 2.5, 5, [False, False, True, True], [True, True, False, False]),
    (7, 9, 4.2, 20, [True, True, True], [True, False, False]),  # references inside the radius too
    (10, 7, 0.0, 10, [True, True], [True, False]),  # radius 0: fewer candidates than k
])
@pytest.mark.parametrize("engine", [propagate_frame, propagate_frame_torch], ids=["compiled-topk", "torch-topk"])
def test_anchored_engines_equal_the_naive_reference(h, w, radius, topk, local, references, engine):
    context = mixed_context(h, w, local, references, seed=h * w)
    target = unit_features(1, 16, h, w, seed=5)[0]
    params = PropagationParams(radius=radius, tile=4, topk=topk, temperature=0.07, precision="float32", anchor=True)
    naive = propagate_frame_naive(target, context, params)
    torch.testing.assert_close(engine(target, context, params), naive, atol=1e-5, rtol=1e-5)
    # anchoring changes the labels: the test would pass trivially if it were ignored
    assert not torch.allclose(propagate_frame_naive(target, context, replace(params, anchor=False)), naive, atol=1e-3)


def test_anchored_compiled_engine_with_a_candidate_memo_equals_the_naive_reference():
    context = mixed_context(9, 11, [False, True, True], [True, False, False], seed=3)
    target = unit_features(1, 16, 9, 11, seed=8)[0]
    params = PropagationParams(radius=3.0, tile=4, topk=8, temperature=0.07, precision="float32", anchor=True)
    memo = CandidateMemo(100)
    for _ in range(2):  # computed, then looked up
        out = propagate_frame(target, context, params, memo=memo, target_index=7)
        torch.testing.assert_close(out, propagate_frame_naive(target, context, params), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("engine", ENGINES, ids=["compiled-topk", "torch-topk", "naive"])
def test_a_reference_matching_as_well_as_six_recent_frames_gets_its_share(engine):
    # Every frame holds the target's own features; radius 0 leaves one candidate per frame (affinity 1).
    # The reference says label A, five propagated frames say B. Plain: A gets 1/6 of the vote. Anchored:
    # m_ref = 1/tau, m_all = 1/tau + log 6, share = sigmoid(-log 6) = 1/7, so A = 1/7 + 6/7 * 1/6 = 2/7.
    h, w = 4, 5
    feats = unit_features(1, 8, h, w, seed=1)[0]
    a, b = torch.zeros(2, h, w), torch.zeros(2, h, w)
    a[0], b[1] = 1.0, 1.0
    context = [ContextFrame(0, feats, a, True, reference=True), *(ContextFrame(i, feats, b, True) for i in range(1, 6))]
    params = PropagationParams(radius=0.0, topk=6, temperature=0.05, precision="float32", radius_for_references=True)
    plain = engine(feats, context, params)
    anchored = engine(feats, context, replace(params, anchor=True))
    torch.testing.assert_close(plain[0], torch.full((h, w), 1 / 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(anchored[0], torch.full((h, w), 2 / 7), atol=1e-5, rtol=0)
    torch.testing.assert_close(anchored.sum(0), torch.ones(h, w), atol=1e-5, rtol=0)


@pytest.mark.parametrize("engine", ENGINES, ids=["compiled-topk", "torch-topk", "naive"])
def test_recent_frames_that_match_far_better_keep_the_cell(engine):
    # The object changed its look: the reference's features are orthogonal to the target's (affinity 0),
    # the recent frame's equal them (affinity 1 at the same cell). The reference's share is about
    # sigmoid(log 5 - 1 / tau) = 1e-8.
    h, w = 4, 5
    target = F.pad(unit_features(1, 4, h, w, seed=1)[0], (0, 0, 0, 0, 0, 4))  # channels 0-3
    far = torch.zeros(8, h, w)
    far[7] = 1.0
    a, b = torch.zeros(2, h, w), torch.zeros(2, h, w)
    a[0], b[1] = 1.0, 1.0
    context = [ContextFrame(0, far, a, False, reference=True), ContextFrame(1, target, b, True)]
    params = PropagationParams(radius=1.0, topk=5, temperature=0.05, precision="float32", anchor=True)
    assert float(engine(target, context, params)[1].min()) > 0.999


def test_without_propagated_frames_in_the_context_anchoring_changes_nothing():
    context = mixed_context(8, 9, [False, False], [True, True], seed=4)
    target = unit_features(1, 16, 8, 9, seed=6)[0]
    params = PropagationParams(radius=2.0, topk=6, temperature=0.07, precision="float32")
    assert torch.equal(propagate_frame(target, context, replace(params, anchor=True)), propagate_frame(target, context, params))


def test_a_run_anchors_from_its_second_frame_on():
    # propagate() marks its references: the first frame after the reference has only references in its
    # context (nothing to anchor), every later frame has propagated frames too and is anchored.
    h, w = 6, 8
    feats = unit_features(6, 16, h, w, seed=11)
    mask = np.zeros((h * 8, w * 8), np.uint8)
    mask[8:40, 16:48] = 1
    params = PropagationParams(reference_flow=0, colour_grow=False, radius=3.0, topk=5, temperature=0.05, precision="float32")
    plain = list(propagate(lambda i: feats[i], {0: mask}, 0, 6, params))
    anchored = list(propagate(lambda i: feats[i], {0: mask}, 0, 6, replace(params, anchor=True)))
    assert torch.equal(plain[0].soft, anchored[0].soft)
    for p, a in zip(plain[1:], anchored[1:]):
        assert not torch.allclose(p.soft, a.soft, atol=1e-4), p.index
