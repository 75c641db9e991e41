"""Tests for turning token ids into training tensors (lstm_core.data)."""

import pytest
import torch

from lstm_core.data import (
    SequentialBatches,
    prefix_pairs,
    random_windows,
    train_val_split,
    window_count,
)

# ------------------------------------------------------------------------- prefix pairs


def test_prefix_pairs_hand_example():
    x, y = prefix_pairs([[5, 6, 7, 8], [9], [3, 4]], pad_id=0)
    expected_x = torch.tensor(
        [
            [0, 0, 5],
            [0, 5, 6],
            [5, 6, 7],
            [0, 0, 3],
        ]
    )
    assert torch.equal(x, expected_x)  # pre-padded to the longest prefix
    assert torch.equal(y, torch.tensor([6, 7, 8, 4]))  # the last word (8) is a target
    assert x.dtype == y.dtype == torch.long


def test_prefix_pairs_refuses_too_much_memory():
    with pytest.raises(ValueError, match=r"9 x 9 = 81 elements.*windows"):
        prefix_pairs([list(range(10))], max_elements=80)


def test_prefix_pairs_needs_two_tokens():
    with pytest.raises(ValueError, match="2 or more"):
        prefix_pairs([[1], []])


# ------------------------------------------------------------------------------- split


def test_split_is_a_contiguous_tail():
    ids = torch.arange(100)
    train, val = train_val_split(ids, 0.1)
    assert torch.equal(train, torch.arange(90)) and torch.equal(val, torch.arange(90, 100))
    train, val = train_val_split(ids, 0.0)
    assert len(train) == 100 and len(val) == 0


@pytest.mark.parametrize(("n", "fraction"), [(100, 0.6), (100, -0.1), (10, 0.05), (2, 0.5)])
def test_split_errors(n, fraction):
    with pytest.raises(ValueError):
        train_val_split(torch.arange(n), fraction)


def test_windows_from_train_never_touch_val_tail():
    # Train tokens are ids 0..9, the val tail uses ids 100+: any crossing window would show.
    ids = torch.cat([torch.randint(0, 10, (80,)), torch.arange(100, 120)])
    train, val = train_val_split(ids, 0.2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = random_windows(train, batch_size=16, seq_len=8, generator=gen)
        assert x.max() < 100 and y.max() < 100
    x, y = random_windows(val, batch_size=16, seq_len=8, generator=gen)
    assert x.min() >= 100 and y.min() >= 100


# ------------------------------------------------------------------------- random windows


def test_window_count():
    assert window_count(10, 3) == 7
    assert window_count(4, 3) == 1
    assert window_count(3, 3) == 0
    assert window_count(0, 5) == 0


def test_random_windows_shift_and_shape():
    ids = torch.arange(50)
    gen = torch.Generator().manual_seed(1)
    x, y = random_windows(ids, batch_size=8, seq_len=5, generator=gen)
    assert x.shape == y.shape == (8, 5)
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y, x + 1)  # ids are consecutive, so each row is a real window


def test_random_windows_every_start_reachable_and_repeatable():
    ids = torch.arange(6)  # seq_len 3 -> starts 0, 1, 2
    gen = torch.Generator().manual_seed(0)
    x, _ = random_windows(ids, batch_size=200, seq_len=3, generator=gen)
    assert set(x[:, 0].tolist()) == {0, 1, 2}
    again, _ = random_windows(ids, 200, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_random_windows_too_short():
    with pytest.raises(ValueError, match=r"5 tokens.*seq_len <= 4"):
        random_windows(torch.arange(5), batch_size=2, seq_len=5)


# --------------------------------------------------------------------- sequential batches


def test_sequential_batches_shapes_and_len():
    batches = SequentialBatches(torch.arange(26), batch_size=4, seq_len=2)
    # 26 tokens -> 4 rows of 6 (2 dropped); 5 input columns -> chunks of 2, 2, 1.
    assert torch.equal(batches.rows[1], torch.arange(6, 12))
    shapes = [tuple(x.shape) for x, _ in batches]
    assert shapes == [(4, 2), (4, 2), (4, 1)]
    assert len(batches) == 3


def test_sequential_batches_rows_continue_and_targets_shift():
    batches = SequentialBatches(torch.arange(40), batch_size=4, seq_len=3)
    chunks = list(batches)
    for (x, y), (next_x, _) in zip(chunks, chunks[1:], strict=False):
        assert torch.equal(next_x[:, 0], x[:, -1] + 1)  # chunk k+1 starts where k ended
        assert torch.equal(y, x + 1)
    # Together the chunks cover each row exactly once.
    assert torch.equal(torch.cat([x for x, _ in chunks], dim=1), batches.rows[:, :-1])


def test_sequential_batches_repeatable():
    batches = SequentialBatches(torch.arange(30), batch_size=3, seq_len=4)
    first = [x for x, _ in batches]
    second = [x for x, _ in batches]
    assert len(first) == len(second) == len(batches)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_sequential_batches_errors():
    with pytest.raises(ValueError, match="smaller batch_size"):
        SequentialBatches(torch.arange(7), batch_size=4, seq_len=2)
    with pytest.raises(ValueError, match="seq_len"):
        SequentialBatches(torch.arange(20), batch_size=2, seq_len=0)
    with pytest.raises(ValueError, match="1-D"):
        SequentialBatches(torch.zeros(4, 4, dtype=torch.long), batch_size=2, seq_len=2)


def test_split_at_cuts_at_separators_and_drops_short_pieces():
    from lstm_core.data import split_at

    assert split_at([5, 6, 0, 7, 0, 8, 9, 10], separator=0) == [[5, 6], [8, 9, 10]]
    assert split_at(torch.tensor([1, 2, 3]), separator=None) == [[1, 2, 3]]
