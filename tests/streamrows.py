"""Helpers for stream tests: whole token rows of a batch, and the biographies in a row."""

import torch


def full_rows(batch):
    """Each row as its token list (x plus the last target)."""
    return torch.cat([batch["x"], batch["y"][:, -1:]], dim=1).tolist()


def split_bios(stream, row):
    """Bios of one token row, without <eos>/<dom>/<pad>."""
    v = stream.vocab
    out, cur = [], []
    for t in row:
        if t in (v.eos_id, v.pad_id):
            if cur:
                out.append(cur)
            cur = []
        elif t != v.dom_id:
            cur.append(t)
    return out
