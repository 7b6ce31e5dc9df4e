"""Part groups: the object-first, part-second decision, its validation and its command-line syntax."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.core.errors import UsageError
from annotator.core.runs.experiments import RunRecord
from annotator.core.engine.part_groups import format_part_groups, grouped_argmax, parse_part_groups
from annotator.core.engine.propagation import PropagationParams
from annotator.core.engine.upsampling import soft_to_labels, upsample_soft


def pixels(*columns: tuple[float, ...]) -> torch.Tensor:
    """(L, 1, N) probabilities, one column (a pixel) per argument."""
    return torch.tensor(columns, dtype=torch.float32).T[:, None, :]


def test_a_group_beats_background_when_its_parts_together_do():
    # channels: background, parts 3 and 4 of one object
    probs = pixels((0.4, 0.3, 0.3), (0.4, 0.35, 0.25), (0.5, 0.3, 0.2))
    label_ids = (0, 3, 4)
    assert soft_to_labels(probs, label_ids, (1, 3)).tolist() == [[0, 0, 0]]  # plain argmax: background
    grouped = soft_to_labels(probs, label_ids, (1, 3), part_groups=((3, 4),))
    # 0.6 > 0.4: the object wins, then its likelier part (a tie goes to the first, as in argmax); 0.5 = 0.5: background
    assert grouped.tolist() == [[3, 3, 0]]


def test_an_ungrouped_label_competes_with_the_group_as_a_whole():
    # channels: background, object 1 (single label), parts 2 and 3 of another object
    probs = pixels((0.2, 0.45, 0.2, 0.15), (0.1, 0.3, 0.2, 0.4), (0.3, 0.25, 0.25, 0.2))
    labels = grouped_argmax(probs, (0, 1, 2, 3), ((2, 3),))
    assert labels.tolist() == [[1, 3, 2]]  # 0.45 > 0.35; 0.6 > 0.3; 0.45 > 0.3 and part 2 is the likelier
    assert labels.dtype == torch.int64


def test_ids_of_a_group_absent_from_the_run_are_ignored():
    probs = pixels((0.4, 0.3, 0.3))
    assert grouped_argmax(probs, (0, 3, 4), ((3, 4, 9, 10),)).tolist() == [[1]]
    assert grouped_argmax(probs, (0, 3, 4), ((9, 10),)).tolist() == [[0]]  # nothing of it here: plain argmax


def test_without_groups_the_label_map_is_bit_identical_to_argmax():
    gen = torch.Generator().manual_seed(0)
    # coarse values, so that ties (decided by the first maximum) are frequent
    soft = torch.randint(0, 4, (7, 9, 13), generator=gen).float()
    soft = soft / soft.sum(dim=0, keepdim=True).clamp(min=1)
    label_ids = (0, 2, 5, 6, 9, 10, 40)
    expected = np.asarray(label_ids, np.uint8)[upsample_soft(soft, (36, 52)).max(dim=0).indices.numpy()]
    for groups in ((), ((77, 78),), ((2,), (5,), (6,), (9,), (10,), (40,))):
        # no group, a group absent from the run, groups of one: all the same decision, ties included
        assert np.array_equal(soft_to_labels(soft, label_ids, (36, 52), part_groups=groups), expected), groups
    on_grid = upsample_soft(soft, (9, 13))
    assert torch.equal(grouped_argmax(on_grid, label_ids, ()), on_grid.max(dim=0).indices)
    assert not np.array_equal(soft_to_labels(soft, label_ids, (36, 52), part_groups=((2, 5, 6), (9, 10, 40))),
                              expected)


def test_guided_upsampling_takes_the_groups_too():
    frame = np.zeros((16, 16, 3), np.uint8)
    soft = torch.tensor([0.4, 0.3, 0.3])[:, None, None].expand(3, 2, 2)
    labels = soft_to_labels(soft, (0, 1, 2), (16, 16), "guided", frame, part_groups=((1, 2),))
    assert np.all(labels == 1)


@pytest.mark.parametrize(
    "groups, message",
    [
        (((),), "part group 1 is empty"),
        (((1, 2), (2, 3)), "part group 2: id 2 is also in group 1"),
        (((1, 2, 1),), "id 1 is twice in it"),
        (((0, 1),), "0 is background"),
        (((7, 255),), "255 void"),
        (((1.5,),), "1.5 is not an object id"),
        ([[1, 2]], "must be a tuple of tuples"),
    ],
)
def test_params_validation_gives_one_line_messages(groups, message):
    params = PropagationParams(part_groups=groups)
    with pytest.raises(UsageError, match=message) as info:
        params.validate()
    assert "\n" not in str(info.value)


def test_params_with_groups_stay_hashable_and_valid():
    params = PropagationParams(part_groups=((1, 2, 3), (4, 5)))
    params.validate()
    assert hash(params) == hash(PropagationParams(part_groups=((1, 2, 3), (4, 5))))
    assert params != PropagationParams()


def test_parse_ranges_and_plus_joined_members():
    assert parse_part_groups("1-25,26-50") == (tuple(range(1, 26)), tuple(range(26, 51)))
    assert parse_part_groups("1-3+7, 8-12") == ((1, 2, 3, 7), (8, 9, 10, 11, 12))
    assert parse_part_groups("4") == ((4,),)
    assert parse_part_groups("") == parse_part_groups("  ") == ()
    for spec in ("1-25,26-50", "1-3+7,8-12", "5+3", "1,2,3", "1+3+5-9"):
        assert format_part_groups(parse_part_groups(spec)) == spec


@pytest.mark.parametrize(
    "spec, message",
    [
        ("1-3,x", "'x' is not an object id"),
        ("1-3+a-4", "'a-4' is not"),
        ("-2", "'-2' is not"),
        ("9-3", "range '9-3' goes backwards"),
        ("1-3,,5", "empty group"),
        ("1-3+", "'' is not"),
        ("1-5,5-9", "id 5 is also in group 1"),
        ("0-4", "0 is background"),
        ("250-255", "255 void"),
    ],
)
def test_parse_errors_name_the_bad_token(spec, message):
    with pytest.raises(UsageError, match=message) as info:
        parse_part_groups(spec)
    assert "\n" not in str(info.value)


def test_a_run_with_groups_says_so_in_its_description():
    settings = {"backbone": "lite0", "context": 20, "part_groups": [[1, 2, 3], [4, 5]]}
    assert RunRecord("clip", settings).describe() == "lite0 m=20 groups=1-3,4-5"
    assert "groups" not in RunRecord("clip", {**settings, "part_groups": []}).describe()
