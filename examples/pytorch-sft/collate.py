"""Reads `memento train export` rows and collates them into padded PyTorch batches with memento attention.

Owns: reading the export (JSONL always; Parquet only when pyarrow imports), checking each row, and building the
Stage-2 attention mask of a padded batch from the compact form. Never touches the model or the optimizer.
Dependencies: torch and the standard library (pyarrow optional, for Parquet only).

Export row (one JSON object per line, or one Parquet row whose list columns hold int32):

    input_ids              int[n]   token ids of the rendered chat example
    labels                 int[n]   input_ids with -100 on the prompt (unshifted: the trainer shifts)
    prompt_length          int      number of prompt tokens
    memento_visible_until  int[n]   per KEY k: the position whose processing evicts k (it still sees k); -1 never
    view_at                int[n]   per QUERY q: q itself, except memento rows recomputed in restart mode

Policy:
  1. The mask rule is the one of src/masking/masks.ts (denseMask): query q sees key k iff
     k <= q and view_at[q] <= VU[k], where VU[k] = memento_visible_until[k], or +infinity when it is -1.
  2. Batches are right-padded to the longest row (or `pad_to`); rows keep their order. Padding ids are `pad_id`,
     padding labels -100, padding position ids 0.
  3. Real queries never see padding keys. A padding query sees only itself: every softmax row has one finite
     entry, so no NaN reaches the real rows through 0 * NaN in the value product; its label is -100.
  4. Masks come out as bool [B, 1, T, T] (True = may attend; SDPA's convention) and, on request, additive
     (0 / -inf) in a float dtype. With torch >= 2.5, `block_mask` builds the same rule as a FlexAttention
     BlockMask from a mask_mod (TODO(verify): not run on the 1.13 machine this was written on).
  5. A malformed row is a UserError naming the file, the line (1-based; Parquet: row + 1) and the field.
"""

import json
import os

import torch

IGNORE_INDEX = -100
"""Label value the loss skips (torch.nn.CrossEntropyLoss's default ignore_index)."""

NEVER_EVICTED = -1
"""memento_visible_until of a key that stays visible to every later query."""

_VISIBLE_FOREVER = torch.iinfo(torch.int64).max
"""What NEVER_EVICTED becomes before comparing: larger than any view_at."""

EXPORT_FIELDS = ("input_ids", "labels", "prompt_length", "memento_visible_until", "view_at")
_LIST_FIELDS = ("input_ids", "labels", "memento_visible_until", "view_at")


class UserError(Exception):
    """The user's mistake (a file or row that is not a valid export, a bad option), not a bug."""


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def has_parquet():
    """Whether Parquet exports can be read here (pyarrow importable)."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _check_row(row, where):
    """Returns the row if it has the five fields with consistent lengths, else raises UserError."""
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected a JSON object")
    for name in EXPORT_FIELDS:
        if name not in row:
            raise UserError(f"{where}: missing field {name!r}")
    n = len(row["input_ids"])
    if n == 0:
        raise UserError(f"{where}: input_ids is empty")
    for name in _LIST_FIELDS:
        values = row[name]
        if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
            raise UserError(f"{where}: {name} must be a list of integers")
        if len(values) != n:
            raise UserError(f"{where}: {name} has {len(values)} entries, input_ids has {n}")
    if not isinstance(row["prompt_length"], int) or not 0 <= row["prompt_length"] <= n:
        raise UserError(f"{where}: prompt_length must be an integer in [0, {n}]")
    return row


def read_export(path):
    """All rows of an export file (.parquet via pyarrow, anything else as JSONL), checked, in file order."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    if path.lower().endswith(".parquet"):
        if not has_parquet():
            raise UserError(
                f"{path}: reading Parquet needs pyarrow, which this Python lacks; "
                "export JSONL instead (memento train export --output FILE.jsonl)"
            )
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
        return [_check_row(r, f"{path}: row {i + 1}") for i, r in enumerate(rows)]
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{line_no}: malformed JSON ({e.msg})") from None
            rows.append(_check_row(row, f"{path}:{line_no}"))
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


# --------------------------------------------------------------------------------------------------------------
# The mask
# --------------------------------------------------------------------------------------------------------------


def visible_mask(visible_until, view_at, lengths):
    """Stage-2 mask of a padded batch (clauses 1 and 3): bool [B, T, T], True where query q may see key k.

    visible_until, view_at: int64 [B, T] (padding entries are ignored); lengths: int64 [B], real tokens per row.
    """
    _, t = view_at.shape
    pos = torch.arange(t)
    real = pos[None, :] < lengths[:, None]  # [B, T]
    vu = torch.where(visible_until == NEVER_EVICTED, torch.full_like(visible_until, _VISIBLE_FOREVER), visible_until)
    causal = pos[None, :] <= pos[:, None]  # [T, T]  k <= q
    not_evicted = view_at[:, :, None] <= vu[:, None, :]  # [B, T, T]  view_at[q] <= VU[k]
    allowed = causal[None] & not_evicted & real[:, :, None] & real[:, None, :]
    pad_self = torch.eye(t, dtype=torch.bool)[None] & ~real[:, :, None]  # a padding query sees itself only
    return allowed | pad_self


def additive_mask(allowed, dtype=torch.float32):
    """0 where allowed, -inf elsewhere (for attention code that adds a bias to the scores)."""
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, float("-inf"))


def has_flex_attention():
    """Whether torch.nn.attention.flex_attention exists (torch >= 2.5)."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def block_mask(batch, device="cpu"):
    """The batch's mask as a FlexAttention BlockMask (torch >= 2.5), the same rule as visible_mask.

    TODO(verify): written against the torch 2.5 API and not run here (the machine this example was written on has
    torch 1.13): that create_block_mask evaluates mask_mod only at q, k < T when T is not a multiple of its block
    size (128); if not, pad the batch with collate(..., pad_to=a multiple of 128).
    """
    from torch.nn.attention.flex_attention import create_block_mask

    vu = batch["visible_until"].to(device)
    vu = torch.where(vu == NEVER_EVICTED, torch.full_like(vu, _VISIBLE_FOREVER), vu)
    va = batch["view_at"].to(device)
    n = batch["lengths"].to(device)

    def mask_mod(b, h, q, k):
        real = (q < n[b]) & (k < n[b])
        memento = (k <= q) & (va[b, q] <= vu[b, k]) & real
        return memento | ((q >= n[b]) & (q == k))

    rows, t = va.shape
    return create_block_mask(mask_mod, rows, None, t, t, device=device)


# --------------------------------------------------------------------------------------------------------------
# Collation
# --------------------------------------------------------------------------------------------------------------


def collate(rows, pad_id=0, pad_to=None, additive_dtype=None):
    """Pads export rows (in order) into one batch.

    Returns a dict of tensors: input_ids, labels, position_ids (int64 [B, T]), lengths (int64 [B]),
    visible_until and view_at (int64 [B, T], the compact form, padded with -1 and the position), attention_mask
    (bool [B, 1, T, T]) and, when additive_dtype is given, attention_bias (that dtype, [B, 1, T, T], 0 / -inf).
    pad_id: the tokenizer's pad id (`<|endoftext|>`: 0 for the toy tokenizer).
    """
    longest = max(len(r["input_ids"]) for r in rows)
    t = longest if pad_to is None else pad_to
    if longest > t:
        raise UserError(f"a row has {longest} tokens, more than pad_to={t}")
    b = len(rows)
    input_ids = torch.full((b, t), pad_id, dtype=torch.int64)
    labels = torch.full((b, t), IGNORE_INDEX, dtype=torch.int64)
    position_ids = torch.zeros((b, t), dtype=torch.int64)
    visible_until = torch.full((b, t), NEVER_EVICTED, dtype=torch.int64)
    view_at = torch.arange(t, dtype=torch.int64).repeat(b, 1)
    lengths = torch.tensor([len(r["input_ids"]) for r in rows], dtype=torch.int64)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        input_ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        position_ids[i, :n] = torch.arange(n)
        visible_until[i, :n] = torch.tensor(r["memento_visible_until"])
        view_at[i, :n] = torch.tensor(r["view_at"])
    allowed = visible_mask(visible_until, view_at, lengths)
    batch = {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "lengths": lengths,
        "visible_until": visible_until,
        "view_at": view_at,
        "attention_mask": allowed[:, None],  # [B, 1, T, T], broadcast over heads
    }
    if additive_dtype is not None:
        batch["attention_bias"] = additive_mask(allowed[:, None], additive_dtype)
    return batch


def causal_batch(batch):
    """The same batch under Stage-1 (plain causal) attention: a copy whose masks ignore the compact form."""
    out = dict(batch)
    never = torch.full_like(batch["visible_until"], NEVER_EVICTED)
    out["visible_until"] = never
    out["view_at"] = torch.arange(never.shape[1]).repeat(never.shape[0], 1)
    out["attention_mask"] = visible_mask(never, out["view_at"], batch["lengths"])[:, None]
    if "attention_bias" in batch:
        out["attention_bias"] = additive_mask(out["attention_mask"], batch["attention_bias"].dtype)
    return out
