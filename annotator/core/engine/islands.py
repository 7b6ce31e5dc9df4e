"""Detached islands of an object's label that the reference frames do not support, handed back to them.

Propagated frames join the context with their labels, so a patch of background labelled as the
object once (the object passed in front of it, a shadow matched it) is matched by the same patch
in the next frame and keeps its wrong label for the rest of the run: on DAVIS's hike a rock behind
the hiker's backpack stayed "hiker" for 60 frames. Such a patch is usually a separate island of
the label, away from the object's main body. :func:`prune_islands` asks the references alone (the
frames a person labelled) about every island of a label but its largest: where they do not give the
island that label (mean probability below :data:`ISLAND_SUPPORT`), the island's cells take the
labels the references give them, in the result and in the context the next frames see.

An island the references recognise (an object split in two by an occluder, a hand apart from the
body) keeps its label; the largest island of each label is never touched (the object's body, even
when it changed its look since the references). ``PropagationParams.islands`` turns it on.

The islands are those of the label map the frame is drawn as, the background bias added
(``PropagationParams.background_bias``): with a bias below 0 a patch the context gives the object at
0.45 is drawn as the object while the plain argmax calls it background, so it was no island to ask
about and stayed (hike again, at the bias -0.1: 0.836, and 0.880 with the biased islands).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch

from annotator.core.engine.upsampling import add_background_bias

__all__ = ["ISLAND_SUPPORT", "prune_islands"]

ISLAND_SUPPORT = 0.5
"""An island keeps its label when the references alone give it at least this mean probability."""


def prune_islands(soft: torch.Tensor, label_ids: Sequence[int],
                  reference_soft: Callable[[], torch.Tensor], background_bias: float = 0.0) -> torch.Tensor:
    """``soft`` (L, h, w) with every unsupported island of each object label replaced by the references' labels.

    ``label_ids[j]`` is the id of channel j (0 = background, never pruned). ``reference_soft()``
    gives the (L, h, w) labels the reference frames alone give this frame; it is called at most once,
    and only when some object label has more than one island (8-connected cells of its argmax).
    ``background_bias`` (``PropagationParams.background_bias``) is added to the background before the
    argmax that finds the islands, so they are the islands of the label map the frame is drawn as.
    Returns ``soft`` itself when nothing changes, a new tensor otherwise.
    """
    # the islands of the decision the label map makes (the bias added), not of the plain argmax: with a
    # bias below 0 a patch the context gives the object at 0.45 is drawn as the object, sticks (hike's
    # rock behind the hiker) and was never an island to ask about
    decided = add_background_bias(soft.clone(), label_ids, background_bias) if background_bias else soft
    winner = decided.max(dim=0).indices.cpu().numpy()  # not argmax(0): 10x slower on a CPU (see soft_to_labels)
    references: torch.Tensor | None = None
    pruned: np.ndarray | None = None  # (h, w) bool: the cells of every unsupported island
    for channel, label in enumerate(label_ids):
        if label == 0:
            continue
        count, islands, stats, _ = cv2.connectedComponentsWithStats((winner == channel).astype(np.uint8),
                                                                    connectivity=8)
        if count <= 2:  # background and at most one island
            continue
        if references is None:
            references = reference_soft().to(soft.device)
        # every island's mean reference probability at once: at label detail 8 a frame can hold dozens
        # of islands of a few sub-cells, and one masked mean per island cost more than the engine's step
        areas = stats[:, cv2.CC_STAT_AREA]
        support = np.bincount(islands.ravel(), weights=references[channel].float().cpu().numpy().ravel(),
                              minlength=count) / areas
        unsupported = support < ISLAND_SUPPORT
        unsupported[0] = False  # not this label
        unsupported[1 + int(areas[1:].argmax())] = False  # the largest island: the object's body
        if unsupported.any():
            cells = unsupported[islands]
            pruned = cells if pruned is None else pruned | cells
    if pruned is None or references is None:
        return soft
    out = soft.clone()
    cells = torch.from_numpy(pruned).to(soft.device)
    out[:, cells] = references[:, cells].to(out.dtype)
    return out
