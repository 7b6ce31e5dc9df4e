"""Part groups: label ids that are parts of one whole, decided object first, part second.

With many part labels on one object (25 on a person, as in VIP) the object's probability is split
among its parts at its edges, so a plain per-pixel argmax lets background win there even where the
object as a whole is the more probable. With groups the decision is hierarchical: the winner among
background, each group (the sum of its parts) and each ungrouped label first; where a group wins,
its most probable part. Only label maps are decided this way; soft labels stay per part.

Command-line syntax (:func:`parse_part_groups`): groups separated by ``,``, the members of a group
joined by ``+``, each member an object id ``N`` or an inclusive range ``A-B``:
``1-25,26-50`` (two groups of 25) or ``1-3+7,8-12``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from annotator.core.errors import UsageError

PartGroups = tuple[tuple[int, ...], ...]
"""Groups of object ids; hashable, so it can live in the frozen ``PropagationParams``."""

MIN_OBJECT_ID, MAX_OBJECT_ID = 1, 254  # 0 is background, 255 void: neither can be a part


def parse_part_groups(spec: str) -> PartGroups:
    """``"1-3+7,8-12"`` -> ``((1, 2, 3, 7), (8, 9, 10, 11, 12))``; an empty spec means no groups.

    Raises :class:`UsageError` naming the bad token; the groups are also checked as by
    :func:`check_part_groups`.
    """
    if not spec.strip():
        return ()
    groups = []
    for group_text in spec.split(","):
        if not group_text.strip():
            raise UsageError(f"part groups {spec!r}: empty group (two commas, or one at an end)")
        members: list[int] = []
        for token in group_text.split("+"):
            members.extend(_parse_member(token.strip(), spec))
        groups.append(tuple(members))
    result = tuple(groups)
    check_part_groups(result)
    return result


def _parse_member(token: str, spec: str) -> range:
    """One member of a group: ``N`` or ``A-B`` (inclusive)."""
    first, dash, last = token.partition("-")
    try:
        lo = int(first)
        hi = int(last) if dash else lo
    except ValueError:
        raise UsageError(f"part groups {spec!r}: {token!r} is not an object id or a range A-B") from None
    if hi < lo:
        raise UsageError(f"part groups {spec!r}: range {token!r} goes backwards")
    return range(lo, hi + 1)


def format_part_groups(groups: PartGroups) -> str:
    """The spec :func:`parse_part_groups` reads back to ``groups`` (runs of ids as ranges)."""
    texts = []
    for group in groups:
        runs: list[list[int]] = []
        for i in group:
            if runs and i == runs[-1][1] + 1:
                runs[-1][1] = i
            else:
                runs.append([i, i])
        texts.append("+".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in runs))
    return ",".join(texts)


def check_part_groups(groups: object) -> None:
    """Raise :class:`UsageError` with a one-line message unless ``groups`` is a valid :data:`PartGroups`."""
    if not isinstance(groups, tuple) or not all(isinstance(g, tuple) for g in groups):
        raise UsageError(f"part groups must be a tuple of tuples of object ids, got {groups!r}")
    seen: dict[int, int] = {}
    for n, group in enumerate(groups, start=1):
        if not group:
            raise UsageError(f"part group {n} is empty")
        for i in group:
            if isinstance(i, bool) or not isinstance(i, int):
                raise UsageError(f"part group {n}: {i!r} is not an object id")
            if not MIN_OBJECT_ID <= i <= MAX_OBJECT_ID:
                raise UsageError(f"part group {n}: {i} is not an object id ({MIN_OBJECT_ID}..{MAX_OBJECT_ID}; "
                                 "0 is background and 255 void)")
            if i in seen:
                where = "twice in it" if seen[i] == n else f"also in group {seen[i]}"
                raise UsageError(f"part group {n}: id {i} is {where}; a part belongs to one group")
            seen[i] = n


def group_channels(label_ids: Sequence[int], groups: PartGroups) -> list[list[int]]:
    """The channels of each group among ``label_ids`` (ids absent from the run dropped, empty groups too)."""
    channel_of = {int(label): c for c, label in enumerate(label_ids)}
    present = ([channel_of[i] for i in group if i in channel_of] for group in groups)
    return [channels for channels in present if channels]


def grouped_argmax(probs: torch.Tensor, label_ids: Sequence[int], groups: PartGroups) -> torch.Tensor:
    """Winning channel (H, W) of probabilities (L, H, W): object (or group) first, then part.

    Candidates are background, each group present among ``label_ids`` (its channels summed) and each
    ungrouped channel. Ties go to the candidate with the lowest channel, and within a group to the
    lowest channel, so without groups this is exactly ``probs.max(dim=0).indices``.
    """
    grouped = group_channels(label_ids, groups)
    if not grouped:
        return probs.max(dim=0).indices  # the fast path: max().indices, not argmax (see soft_to_labels)
    # every channel is named by its candidate's lowest channel; numbering candidates in that order
    # makes the first-maximum rule of max() the tie rule
    lowest_of_channel = list(range(probs.shape[0]))
    for channels in grouped:
        for c in channels:
            lowest_of_channel[c] = min(channels)
    number_of = {lowest: n for n, lowest in enumerate(sorted(set(lowest_of_channel)))}
    candidate_of_channel = torch.tensor([number_of[c] for c in lowest_of_channel], device=probs.device)
    totals = probs.new_zeros((len(number_of), *probs.shape[1:])).index_add_(0, candidate_of_channel, probs)
    winner = totals.max(dim=0).indices  # (H, W) candidate
    # then the most probable channel of the winning candidate: for a single label that is itself.
    # One masked pass over all channels costs about 5x the plain argmax whatever the ids look like;
    # per-group slices or index_select cost 4x to 50x, interleaved ids the worst (51 x 480 x 854, measured).
    outside_winner = candidate_of_channel[:, None, None] != winner[None]
    return probs.masked_fill(outside_winner, float("-inf")).max(dim=0).indices
