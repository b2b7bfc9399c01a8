"""Layer maps: uniform student→teacher map, `--layers` parsing, attention vs hidden-state indexing."""

from __future__ import annotations

import pytest

from vlkd_cli.errors import UsageError
from vlkd_cli.losses import hidden_state_index, map_layers
from vlkd_cli.losses.layer_map import map_hidden_layers


def test_equal_depths_map_one_to_one() -> None:
    assert map_layers(3, 3, "all") == [(0, 0), (1, 1), (2, 2)]


def test_pilot_map_two_to_four_is_2l_plus_1() -> None:
    assert map_layers(2, 4, "all") == [(0, 1), (1, 3)]


def test_uniform_map_rounds_half_up_and_ends_on_the_last_layer() -> None:
    # (l+1)·6/4 = 1.5, 3, 4.5, 6 -> rounded half up 2, 3, 5, 6 -> minus one
    assert map_layers(4, 6, "all") == [(0, 1), (1, 2), (2, 4), (3, 5)]
    # 12 -> 6 (MiniLM-L6 style student of a 12-layer teacher reversed): every other teacher layer
    assert map_layers(6, 12, "all") == [(l, 2 * l + 1) for l in range(6)]
    # a deeper student than teacher never maps below 0
    assert map_layers(6, 2, "all") == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1)]


def test_last_and_explicit_lists() -> None:
    assert map_layers(2, 4, "last") == [(1, 3)]
    assert map_layers(12, 12, "0, 11") == [(0, 0), (11, 11)]
    assert map_layers(2, 4, "1,0") == [(1, 3), (0, 1)]


@pytest.mark.parametrize("spec", ["", "first", "1;2", "-1", "0,0", "a,1"])
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError):
        map_layers(4, 4, spec)


def test_out_of_range_student_index_names_the_depth() -> None:
    with pytest.raises(UsageError, match="student has 2 layers"):
        map_layers(2, 4, "2")


def test_hidden_state_indices_skip_the_embeddings() -> None:
    assert hidden_state_index(0) == 1
    assert map_hidden_layers(2, 4, "all") == [(1, 2), (2, 4)]
    assert map_hidden_layers(2, 4, "last") == [(2, 4)]
