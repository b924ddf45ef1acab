"""A tiny causal transformer trained with memento attention on `memento train export` output, on CPU.

Run (from the repository root; see README.md here for the whole recipe):

    npx memento toy generate --count 64 --min-blocks 2 --max-blocks 4 --output /tmp/toy.jsonl
    npx memento train export --input /tmp/toy.jsonl --output /tmp/toy-sft.jsonl --toy-tokenizer
    /usr/bin/python3 examples/pytorch-sft/train.py /tmp/toy-sft.jsonl

Owns the model (token + learned position embeddings, pre-norm blocks, tied head), the training loop and the
--dump-masks mode; the data and the mask come from collate.py. Policy:
  1. Every step attends through the batch's Stage-2 mask (collate.py), unless --causal asks for Stage 1.
  2. The loss is next-token cross-entropy on labels shifted by one (labels are unshifted in the export); prompt
     and padding labels (-100) are skipped.
  3. Attention is F.scaled_dot_product_attention with the bool mask where torch has it (>= 2.0); on torch 1.13
     the same product written out (scores + mask, softmax, values); with --flex, FlexAttention's BlockMask.
  4. --dump-masks FILE writes the bool masks the collator built, batch by batch in file order, as JSON, and
     exits without training (the project's test compares them with denseMask()).
  5. A malformed export or option prints one line `train.py: ...` and exits 2; so does a run whose dense
     attention would exceed --max-attention-gib (clause 3's scores are O(T^2): long rows need --flex or a
     shorter export, `memento train export --max-tokens N`).
"""

import argparse
import json
import math
import sys

sys.dont_write_bytecode = True  # no __pycache__ left next to the example

try:
    import torch
except ImportError:
    print(
        "train.py: needs PyTorch, which this Python lacks (on Debian: apt-get install python3-torch)", file=sys.stderr
    )
    sys.exit(2)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import collate  # noqa: E402

DEFAULT_STEPS = 20  # enough to see the loss fall on the toy task, seconds on one CPU core
DEFAULT_BATCH_ROWS = 4
DEFAULT_LAYERS = 2
DEFAULT_HIDDEN = 64  # with 4 heads of 16; the toy vocabulary has a few dozen tokens
DEFAULT_HEADS = 4
DEFAULT_LR = 3e-3  # small models take a large step; AdamW, no schedule (this is a demo, not a recipe)
DEFAULT_SEED = 0
DEFAULT_MAX_ATTENTION_GIB = 4.0  # dense scores are O(T^2): a 15.6K-token trace would need ~15 GiB, refused
DEFAULT_PAD_ID = 0  # `<|endoftext|>` of the toy tokenizer; Qwen3's is 151643 (--pad-id)


# --------------------------------------------------------------------------------------------------------------
# Model (bottom-up: attention, block, transformer)
# --------------------------------------------------------------------------------------------------------------


def attend(q, k, v, mask):
    """Attention of q over k, v ([B, H, T, D]) under mask: bool [B, 1, T, T] (True = may attend) or a BlockMask."""
    if not isinstance(mask, torch.Tensor):
        from torch.nn.attention.flex_attention import flex_attention

        return flex_attention(q, k, v, block_mask=mask)
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # [B, H, T, T]
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v  # [B, H, T, D]


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x, mask):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # [B, H, T, D]
        y = attend(q, k, v, mask).transpose(1, 2).reshape(b, t, c)  # [B, T, C]
        return self.out(y)


class Block(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.attn = SelfAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class TinyTransformer(nn.Module):
    def __init__(self, vocab, positions, hidden, heads, layers):
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden)
        # Positions are the export's logical ones (0..n-1): eviction hides keys, it never renumbers them.
        self.positions = nn.Embedding(positions, hidden)
        self.blocks = nn.ModuleList(Block(hidden, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        # Small embeddings (nanoGPT's 0.02): with the tied head, N(0, 1) ones would start at a loss of ~40.
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, input_ids, position_ids, mask):
        x = self.tokens(input_ids) + self.positions(position_ids)  # [B, T, C]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x) @ self.tokens.weight.T  # [B, T, vocab], tied head


def next_token_loss(logits, labels):
    """Clause 2: token i predicts label i + 1; -100 labels are skipped."""
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=collate.IGNORE_INDEX
    )


# --------------------------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------------------------


def batches_in_order(rows, batch_rows):
    return [rows[i : i + batch_rows] for i in range(0, len(rows), batch_rows)]


def dump_masks(rows, args):
    """Clause 4: {"rows": [{"row", "length", "padded_length", "mask": ["0/1 per key", ... per query]}]}."""
    out = []
    for chunk_index, chunk in enumerate(batches_in_order(rows, args.batch_size)):
        batch = collate.collate(chunk, pad_id=args.pad_id)
        for j, allowed in enumerate(batch["attention_mask"][:, 0]):  # [T, T] per row
            out.append(
                {
                    "row": chunk_index * args.batch_size + j,
                    "length": int(batch["lengths"][j]),
                    "padded_length": allowed.shape[0],
                    "mask": ["".join("1" if a else "0" for a in line.tolist()) for line in allowed],
                }
            )
    with open(args.dump_masks, "w", encoding="utf-8") as f:
        json.dump({"rows": out}, f)
    print(f"wrote {len(out)} masks to {args.dump_masks}")


def dense_attention_bytes(longest, args):
    """Scores and probabilities kept for backward, float32, every layer: 2 * layers * B * H * T^2 * 4 bytes."""
    return 2 * args.layers * args.batch_size * args.heads * longest * longest * 4


def train(rows, args):
    torch.manual_seed(args.seed)
    vocab = max(max(r["input_ids"]) for r in rows) + 1
    vocab = max(vocab, args.pad_id + 1)
    longest = max(len(r["input_ids"]) for r in rows)
    need_gib = dense_attention_bytes(longest, args) / 2**30
    if not args.flex and need_gib > args.max_attention_gib:
        raise collate.UserError(
            f"dense attention over {longest}-token rows needs ~{need_gib:.1f} GiB (> --max-attention-gib "
            f"{args.max_attention_gib:g}); use --flex (torch >= 2.5) or export with --max-tokens"
        )
    model = TinyTransformer(vocab, longest, args.hidden, args.heads, args.layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    params = sum(p.numel() for p in model.parameters())
    mode = "causal (stage 1)" if args.causal else "memento attention (stage 2)"
    print(f"{len(rows)} rows, longest {longest} tokens, vocab {vocab}, {params:,} parameters, {mode}")
    generator = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        pick = torch.randint(len(rows), (args.batch_size,), generator=generator).tolist()
        batch = collate.collate([rows[i] for i in pick], pad_id=args.pad_id)
        if args.causal:
            batch = collate.causal_batch(batch)
        mask = collate.block_mask(batch) if args.flex else batch["attention_mask"]
        logits = model(batch["input_ids"], batch["position_ids"], mask)
        loss = next_token_loss(logits, batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        print(f"step {step}/{args.steps} loss {loss.item():.4f}", flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="`memento train export` output: .jsonl, or .parquet when pyarrow is installed")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimizer steps (default {DEFAULT_STEPS})")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_ROWS, help=f"rows per batch (default {DEFAULT_BATCH_ROWS})"
    )
    p.add_argument("--layers", type=int, default=DEFAULT_LAYERS)
    p.add_argument("--hidden", type=int, default=DEFAULT_HIDDEN)
    p.add_argument("--heads", type=int, default=DEFAULT_HEADS)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--pad-id", type=int, default=DEFAULT_PAD_ID, help="the tokenizer's pad id (toy: 0)")
    p.add_argument("--causal", action="store_true", help="stage 1: plain causal attention, ignore the mask columns")
    p.add_argument("--flex", action="store_true", help="attend through a FlexAttention BlockMask (torch >= 2.5)")
    p.add_argument(
        "--max-attention-gib",
        type=float,
        default=DEFAULT_MAX_ATTENTION_GIB,
        help=f"refuse dense attention needing more memory than this (default {DEFAULT_MAX_ATTENTION_GIB:g})",
    )
    p.add_argument("--dump-masks", metavar="FILE", help="write the collated bool masks as JSON and exit")
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "layers", "hidden", "heads"):
        if getattr(args, name) < 1:
            raise collate.UserError(f"--{name.replace('_', '-')}: expected a positive integer")
    if args.hidden % args.heads:
        raise collate.UserError(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}")
    if args.flex and not collate.has_flex_attention():
        raise collate.UserError(f"--flex needs torch >= 2.5 (FlexAttention); this is torch {torch.__version__}")
    return args


def main(argv):
    try:
        args = parse_args(argv)
        rows = collate.read_export(args.data)
        if args.dump_masks:
            dump_masks(rows, args)
        else:
            train(rows, args)
    except collate.UserError as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
