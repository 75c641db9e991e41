"""Training data as tensors: three ways to cut a token stream into (input, target) batches.

1. ``prefix_pairs`` -- the write-up's recipe: every prefix of a paragraph predicts the next
   word. Simple to explain, but memory grows with the square of the paragraph length.
2. ``random_windows`` -- random fixed-length windows; every position predicts the next token.
3. ``SequentialBatches`` -- the write-up's "better sampling" next step: walk through the text
   in order so the LSTM state can be carried from one chunk to the next.

Everything takes token ids (lists or 1-D LongTensors) and returns LongTensors.
"""

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from lstm_core.vocab import PAD_ID, UNK_ID


def _as_ids(ids: Sequence[int] | Tensor) -> Tensor:
    """Accept a list of ids or a 1-D integer tensor; return a 1-D LongTensor."""
    t = torch.as_tensor(ids, dtype=torch.long) if not isinstance(ids, Tensor) else ids
    if t.dim() != 1:
        raise ValueError(f"token ids must be 1-D, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"token ids must be integers, got dtype {t.dtype}")
    return t.long()


def check_positive(**values: int) -> None:
    """Raise a ValueError naming the first value that is not a whole number >= 1."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")


# --------------------------------------------------------------------------- 1. prefix pairs


def first_known_window(ids: Tensor, length: int) -> int | None:
    """Where the first ``length`` consecutive ids without <unk> start (a cue a learner can
    type), or None when there is no such run."""
    if len(ids) < length:
        return None
    known = (ids != UNK_ID).int().unfold(0, length, 1).sum(dim=1) == length
    return int(known.nonzero()[0]) if known.any() else None


def split_at(ids: Sequence[int] | Tensor, separator: int | None) -> list[list[int]]:
    """Cut a flat id stream into pieces at every ``separator`` id (e.g. paragraph breaks).

    The separators themselves are dropped; pieces shorter than 2 ids (nothing to predict) too.
    With ``separator=None`` the whole stream is one piece.
    """
    pieces, current = [], []
    for token_id in _as_ids(ids).tolist():
        if token_id == separator:
            pieces.append(current)
            current = []
        else:
            current.append(token_id)
    pieces.append(current)
    return [p for p in pieces if len(p) >= 2]


def prefix_pairs(
    paragraphs: list[list[int]], pad_id: int = PAD_ID, max_elements: int = 50_000_000
) -> tuple[Tensor, Tensor]:
    """The write-up's training pairs: each prefix of a paragraph predicts its next word.

    A paragraph ``[5, 6, 7, 8]`` gives three pairs, pre-padded (padding on the left keeps the
    real words next to the output)::

        x = [[pad, pad, 5],      y = [6,
             [pad,   5, 6],           7,
             [  5,   6, 7]]           8]

    Unlike the write-up's ``range(1, len(p) - 1)``, the last word (8) is used as a target.
    Paragraphs shorter than 2 tokens give no pairs.

    Memory: x has N rows (one per target: about the number of words) and L columns (the
    longest paragraph), so it holds N x L ids. That grows with words x longest paragraph,
    i.e. quadratically in paragraph length. If N x L would exceed ``max_elements`` a
    ValueError is raised before anything is allocated; use the windows recipe instead.

    Returns ``x`` of shape (N, L) and ``y`` of shape (N,).
    """
    paragraphs = [_as_ids(p) for p in paragraphs]
    n = sum(max(len(p) - 1, 0) for p in paragraphs)  # one pair per word after the first
    width = max((len(p) - 1 for p in paragraphs), default=0)  # the longest prefix
    if n == 0:
        raise ValueError("no paragraph has 2 or more tokens, so there are no prefix pairs")
    if n * width > max_elements:
        raise ValueError(
            f"prefix pairs would need {n:,} x {width:,} = {n * width:,} elements "
            f"(more than max_elements={max_elements:,}): every target gets a row padded to "
            "the longest paragraph, so memory grows with words x paragraph length. "
            "Use the windows recipe (random_windows / SequentialBatches) instead."
        )
    x = torch.full((n, width), pad_id, dtype=torch.long)
    y = torch.empty(n, dtype=torch.long)
    row = 0
    for p in paragraphs:
        for i in range(1, len(p)):
            x[row, width - i :] = p[:i]  # pre-padding: the prefix sits at the right end
            y[row] = p[i]
            row += 1
    return x, y


# ------------------------------------------------------------------ 2. train/validation split


def split_point(n_tokens: int, val_fraction: float) -> int:
    """How many of ``n_tokens`` tokens form the training head; the rest is the validation tail.

    The validation set is the last ``val_fraction`` of the tokens, in one piece, so it is text
    the model never trained on (random tokens would leak their neighbours into training).
    """
    if not 0 <= val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be between 0 and 0.5, got {val_fraction!r}")
    n_val = round(n_tokens * val_fraction)
    n_train = n_tokens - n_val
    if n_train < 2:
        raise ValueError(f"the training part would have {n_train} tokens; it needs at least 2")
    if val_fraction > 0 and n_val < 2:
        raise ValueError(
            f"the validation part would have {n_val} tokens out of {n_tokens}; it needs at "
            "least 2. Use a larger val_fraction, a longer text, or val_fraction=0"
        )
    return n_train


def train_val_split(ids: Sequence[int] | Tensor, val_fraction: float) -> tuple[Tensor, Tensor]:
    """Split a token stream into a training head and a validation tail (see ``split_point``);
    ``val_fraction=0`` gives an empty validation tensor."""
    ids = _as_ids(ids)
    n_train = split_point(len(ids), val_fraction)
    return ids[:n_train], ids[n_train:]


# ---------------------------------------------------------------------- 3. random windows


def window_count(n_tokens: int, seq_len: int) -> int:
    """How many windows of ``seq_len`` inputs (plus one target) fit in ``n_tokens`` tokens."""
    check_positive(seq_len=seq_len)
    return max(n_tokens - seq_len, 0)


def random_windows(
    ids: Sequence[int] | Tensor,
    batch_size: int,
    seq_len: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw ``batch_size`` random contiguous windows; ``y`` is ``x`` shifted by one token.

    Windows stay inside ``ids``: cut them from the training part and the validation part
    separately and no window crosses the split. Only the batch is built, never all windows,
    so memory does not grow with the corpus.

    Returns ``x`` and ``y``, both of shape (batch_size, seq_len).
    """
    ids = _as_ids(ids)
    check_positive(batch_size=batch_size, seq_len=seq_len)
    n_starts = window_count(len(ids), seq_len)
    if n_starts == 0:
        hint = f"use seq_len <= {len(ids) - 1}" if len(ids) >= 2 else "use a longer text"
        raise ValueError(
            f"the text has {len(ids)} tokens, too short for seq_len={seq_len} (a window needs "
            f"seq_len + 1 tokens); {hint}"
        )
    starts = torch.randint(0, n_starts, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(seq_len + 1)  # (T+1,)
    windows = ids[starts[:, None] + offsets]  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]


# ------------------------------------------------------------------- 4. sequential batches


class SequentialBatches:
    """Walk through the text in order, ``batch_size`` rows side by side.

    The stream is cut into ``batch_size`` equal contiguous rows (the remainder that does not
    fill a row is dropped). With the stream a b c ... x and batch_size=4::

        a b c d e f        row 0
        g h i j k l        row 1      each chunk is a slice of columns:
        m n o p q r        row 2      x = columns [t, t+seq_len), y = x shifted by one
        s t u v w x        row 3

    Iterating yields ``(x, y)`` of shape (batch_size, <=seq_len), left to right. Chunk k+1 of
    a row continues exactly where chunk k ended, so a trainer can carry the LSTM state from
    one chunk to the next (detached, so gradients stop at the chunk boundary). Every pass over
    the object is one epoch, starting again from the first column.
    """

    def __init__(self, ids: Sequence[int] | Tensor, batch_size: int, seq_len: int):
        ids = _as_ids(ids)
        check_positive(batch_size=batch_size, seq_len=seq_len)
        row_len = len(ids) // batch_size
        if row_len < 2:
            raise ValueError(
                f"{len(ids)} tokens cut into batch_size={batch_size} rows gives rows of "
                f"{row_len} token(s); each row needs at least 2. Use a smaller batch_size"
            )
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.rows = ids[: row_len * batch_size].view(batch_size, row_len)  # (B, row_len)

    def __len__(self) -> int:
        """Chunks per epoch; the last one may be shorter than seq_len."""
        n_inputs = self.rows.shape[1] - 1  # the last column is only ever a target
        return -(-n_inputs // self.seq_len)  # ceiling division

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n_inputs = self.rows.shape[1] - 1
        for start in range(0, n_inputs, self.seq_len):
            end = min(start + self.seq_len, n_inputs)
            yield self.rows[:, start:end], self.rows[:, start + 1 : end + 1]  # (B, T) each
