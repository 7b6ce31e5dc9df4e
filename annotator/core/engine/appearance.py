"""A linear appearance model of the labels, fitted on the reference frames, as a second opinion per frame.

Propagation asks "which context cells does this cell look like, and what were their labels": a
nearest-neighbour rule that hands on its own errors (drift) and has no notion of which feature
directions separate the object from its background. This module fits a multinomial logistic
regression from a cell's features to its label on the frames a person painted (the references of
a run), once per run, and :func:`fuse_appearance` adds its log-odds, times a weight, to the log of
each propagated frame's soft labels (a product of experts). The idea is the discriminative target
model of online video segmentation (FRTM, Robinson et al., CVPR 2020: a small model on frozen
features, fitted on the first frame), without training the backbone and without updating the model
on propagated frames (which would let it drift with them). It shapes each frame's result only; the
frame hands propagation's own soft labels on to the context.

The fit sees every reference cell once, weighted so that each label counts as much as the others
(a small object is not drowned by its background); an L2 penalty keeps the log-odds moderate where
the references say little. Only the model's evidence for an object is used (see
:func:`fuse_appearance`). Cost: one (C x L) matvec per cell and frame, and a fit of a few tens of
milliseconds per run on a CPU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["AppearanceModel", "fuse_appearance"]

_MAX_ITERATIONS = 200
_GRADIENT_TOLERANCE = 1e-7
_LOSS_TOLERANCE = 1e-10
_EPS = 1e-4


class AppearanceModel:
    """Per-label logits ``W @ feature + b`` of a cell's features, fitted on labelled feature maps."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight = weight  # (L, C)
        self.bias = bias  # (L,)

    @classmethod
    def fit(cls, features: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
            penalty: float = 2e-3) -> AppearanceModel:
        """Fit on pairs of (C, h, w) feature maps and (L, h, w) label fractions on the same grid.

        Cells without any label (void) are left out. ``penalty``: L2 weight on ``W`` (on every label's
        row: with two labels the log-odds' weights pay half of it). 2e-3 by measurement on
        ../shared/data/davis2016 (bench/RESULTS.md): weaker penalties gave the same means but let
        bmx-bumps' log-odds grow until they painted background (0.685 at 2e-3, 0.600 at 2e-5)."""
        x = torch.cat([f.float().flatten(1).T for f in features])  # (N, C)
        y = torch.cat([lab.float().flatten(1).T for lab in labels])  # (N, L)
        mass = y.sum(1)
        keep = mass > 0.5
        # float64: the minimiser's line search compares losses that differ in the tenth digit
        x, y = x[keep].cpu().double(), (y[keep] / mass[keep, None]).cpu().double()
        n_labels, n_features = y.shape[1], x.shape[1]
        if not len(y):  # nothing labelled: a model with no opinion
            return cls(torch.zeros(n_labels, n_features), torch.zeros(n_labels))
        # each label's cells together weigh 1 / L: a cell's weight follows the label it mostly holds
        share = y.sum(0).clamp(min=1.0)
        cell_weight = (y / share).sum(1) * (len(y) / n_labels)

        def loss_and_gradient(theta: torch.Tensor) -> tuple[float, torch.Tensor]:
            # theta: every label's weights, then every label's bias; the penalty leaves the biases alone
            weight, bias = theta[:n_labels * n_features].view(n_labels, n_features), theta[n_labels * n_features:]
            logits = x @ weight.T + bias
            log_p = logits.log_softmax(1)
            loss = -(cell_weight * (y * log_p).sum(1)).mean() + penalty * weight.pow(2).sum()
            # d loss / d logits of a cell: its weight x (softmax - target fractions) / N (fractions sum to 1)
            residual = cell_weight[:, None] * (log_p.exp() - y) / len(y)
            grad_weight = residual.T @ x + 2 * penalty * weight
            return float(loss), torch.cat([grad_weight.flatten(), residual.sum(0)])

        theta = _minimise(loss_and_gradient, torch.zeros(n_labels * (n_features + 1), dtype=torch.float64))
        weight, bias = theta[:n_labels * n_features].view(n_labels, n_features), theta[n_labels * n_features:]
        return cls(weight.float(), bias.float())

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(L, h, w) logits of a (C, h, w) feature map."""
        weight = self.weight.to(features.device, torch.float32)
        out = torch.einsum("lc,chw->lhw", weight, features.float())
        return out + self.bias.to(features.device)[:, None, None]


def _minimise(loss_and_gradient: Callable[[torch.Tensor], tuple[float, torch.Tensor]], theta: torch.Tensor,
              history: int = 10) -> torch.Tensor:
    """Minimise a smooth convex function by L-BFGS with a backtracking (Armijo) line search, to convergence.

    Written out rather than taken from ``torch.optim``: constructing any torch optimiser imports
    torch._dynamo, 1.2 to 1.9 s on a 2-core machine, which every command and every worker process
    would pay once for a fit of a few tens of milliseconds. The objective is convex, so the minimum
    (not the path) is what matters: this reaches the one ``torch.optim.LBFGS`` reached (within its
    tolerances) on the 20 DAVIS sequences' first frames."""
    loss, grad = loss_and_gradient(theta)
    steps: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque(maxlen=history)
    for _ in range(_MAX_ITERATIONS):
        if float(grad.abs().max()) <= _GRADIENT_TOLERANCE:
            break
        # two-loop recursion: direction = -H grad, H the inverse-Hessian estimate of the last steps
        direction = -grad
        alphas = []
        for s, g, rho in reversed(steps):
            alpha = rho * float(s @ direction)
            direction = direction - alpha * g
            alphas.append(alpha)
        if steps:
            s, g, _ = steps[-1]
            direction = direction * (float(s @ g) / float(g @ g))
        else:  # first step: a unit-length move, as the gradient's scale says nothing of the curvature
            direction = direction / max(float(grad.abs().sum()), 1.0)
        for (s, g, rho), alpha in zip(steps, reversed(alphas)):
            beta = rho * float(g @ direction)
            direction = direction + (alpha - beta) * s
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (rounding): restart from the gradient
            steps.clear()
            direction = -grad / max(float(grad.abs().sum()), 1.0)
            slope = float(grad @ direction)
        step = 1.0
        for _ in range(30):
            candidate = theta + step * direction
            new_loss, new_grad = loss_and_gradient(candidate)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break  # no decrease left to find at this precision
        s, g = candidate - theta, new_grad - grad
        curvature = float(s @ g)
        if curvature > 1e-10:
            steps.append((s, g, 1.0 / curvature))
        change = loss - new_loss
        theta, loss, grad = candidate, new_loss, new_grad
        if abs(change) <= _LOSS_TOLERANCE:
            break
    return theta


def fuse_appearance(soft: torch.Tensor, logits: torch.Tensor, weight: float) -> torch.Tensor:
    """``soft`` (L, H, W) probabilities with each object's evidence added: channel l > 0 is multiplied by
    exp(``weight`` x max(logits[l] - logits[0], 0)), then every cell renormalised. Channel 0 is the
    background (as :func:`annotator.core.engine.propagation.label_ids_of` orders them).

    Only evidence *for* an object counts: where the model says background, propagation keeps its
    say. Measured on ../shared/data/davis2016 (bench/RESULTS.md), adding the model's full log-odds
    lost on the original ten (drift-turn 0.841 -> 0.832, kite-walk 0.737 -> 0.703: the model, blind to
    place, calls thin or distant object parts background), while the one-sided evidence recovers
    object parts propagation missed and helped both halves. ``logits`` (L, h, w) on the feature grid
    are upsampled bilinearly to the grid of ``soft`` (finer when labels carry sub-cells)."""
    if logits.shape[1:] != soft.shape[1:]:
        logits = F.interpolate(logits[None], size=tuple(soft.shape[1:]), mode="bilinear", align_corners=False)[0]
    evidence = (logits - logits[:1]).clamp(min=0)  # channel 0 (background) gets none
    fused = soft.float().clamp(min=_EPS).log() + weight * evidence
    return fused.softmax(0).to(soft.dtype)
