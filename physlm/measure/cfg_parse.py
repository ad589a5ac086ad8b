"""Batched dynamic programming over a layered CFG: membership, sentence probability, next-token law.

Part 1 (arXiv 2305.13673, Sec. 3) scores a generation as correct only if the whole sentence is in
the grammar's language, decided by dynamic programming; its KL/entropy measures (Sec. 3 and the
official `demo2_advanced_dp.py`) need the exact next-token distribution of the grammar after
every prefix. Part 4.1 (App. A.5) reuses both for the Lano task.

All three run here as tensor programs over a batch of sentences, on the device of the input:

* The grammar is layered: a level-l symbol spans a contiguous run of level-(l+1) symbols, with a
  width in a known band [lo, hi]. The chart is built level by level, bottom up (CKY restricted
  to the layered structure); a chart row (start, symbol) holds the widths of its spans.
* Right sides are split right-associatively, `B (C D)`: a join pairs every span of the left
  symbol with the row of the right chain where that span ends. Charts are sparse (at cfg3f's top
  levels about 5% of rows hold any span), so joins enumerate the spans that exist instead of
  looping over widths, and membership stores only non-empty rows (sorted keys, bool widths).
* At the root only spans from position 0 matter: root rules that are no other rule's tail are
  joined from position 0 only.
* Probabilities use the sum-product (inside) semiring in float64. A prefix chart pi carries an
  extra axis for the token right after the known prefix; it obeys the same recursion as the
  inside chart, so one pass gives P(prefix, next token) for every prefix length at once. Entries
  are rescaled by s^width (s from the grammar's entropy rate), which keeps cfg3k-length sentences
  (probabilities below e^-745) inside float64 and cancels exactly in every ratio.

Cost: membership takes about 0.5 ms per cfg3f sentence on one CPU thread (`physlm bench cfg`).
The probability pass keeps dense (batch, T, symbols, width, V) charts: about 30-60 ms and 50 MB
per cfg3f sentence; lower `batch_size` for long sentences (cfg3j/k: about 0.5 GB per sentence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from physlm.data.cfg import Grammar

Chain = tuple[int, ...]
_PAIR_BUDGET = 1 << 22  # entries of right-chain rows gathered at once by a probability join


@dataclass(frozen=True)
class _Join:
    """A group of chains of one length: chain c = symbol left[c] followed by chain right[c].

    `right` indexes chain group `source` (0: the symbols of the level below). An anchored group
    is only needed from position 0 (root rules that are no other rule's tail).
    """

    left: tuple[int, ...]
    right: tuple[int, ...]
    source: int
    anchored: bool
    lo: int  # narrowest width of any left symbol
    hi: int  # widest width of any left symbol
    hi_out: int  # widest width of any output chain


@dataclass(frozen=True)
class _Level:
    """How the chart of one level is built from the chart of the level below."""

    joins: tuple[_Join, ...]  # joins[g - 1] builds chain group g
    rules: tuple[tuple[tuple[int, int, float], ...], ...]  # per symbol: (group, index, prob)
    hi: int  # widest span of the level
    anchored: bool  # the root: only spans from position 0 are needed


@dataclass(frozen=True)
class _Plan:
    levels: tuple[_Level, ...]  # levels[l] builds level l; levels[0] is the root
    scale: float  # s: every width-w chart entry is stored times s**w


def _level_plan(grammar: Grammar, level: int) -> _Level:
    """Split every right side right-associatively into chains and group them by length."""
    child = grammar.width_bounds[level + 1]
    rhs_all = [rhs for rhs_list in grammar.rules[level] for rhs in rhs_list]
    tails = {rhs[k:] for rhs in rhs_all for k in range(1, len(rhs) - 1)}
    groups: list[list[Chain]] = [[]]  # group 0 stands for the child symbols
    where: dict[Chain, tuple[int, int]] = {(c,): (0, c) for c in range(len(child))}
    joins = []
    for length in range(2, max(len(r) for r in rhs_all) + 1):
        wanted = sorted({r[-length:] for r in rhs_all if len(r) >= length})
        free = [c for c in wanted if level > 0 or c in tails]
        pinned = [c for c in wanted if c not in free]
        for chains, anchored in ((free, False), (pinned, True)):
            if not chains:
                continue
            source = {where[c[1:]][0] for c in chains}.pop()
            joins.append(
                _Join(
                    left=tuple(c[0] for c in chains),
                    right=tuple(where[c[1:]][1] for c in chains),
                    source=source,
                    anchored=anchored,
                    lo=min(child[c[0]][0] for c in chains),
                    hi=max(child[c[0]][1] for c in chains),
                    hi_out=max(sum(child[x][1] for x in c) for c in chains),
                )
            )
            groups.append(chains)
            where.update({c: (len(groups) - 1, i) for i, c in enumerate(chains)})
    rules = tuple(
        tuple((*where[rhs], 1.0 / len(rhs_list)) for rhs in rhs_list)
        for rhs_list in grammar.rules[level]
    )
    hi = max(b[1] for b in grammar.width_bounds[level])
    return _Level(tuple(joins), rules, hi, anchored=level == 0)


@lru_cache(maxsize=32)
def _plan(grammar: Grammar) -> _Plan:
    levels = tuple(_level_plan(grammar, level) for level in range(grammar.depth))
    return _Plan(levels, math.exp(grammar.nll_per_token))


def _check_tokens(tokens: Tensor, lengths: Tensor) -> None:
    if tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"tokens must be an int tensor of shape (batch, time), got "
                         f"{tuple(tokens.shape)} {tokens.dtype}")
    if lengths.shape != tokens.shape[:1]:
        raise ValueError(
            f"lengths must have shape ({tokens.shape[0]},), got {tuple(lengths.shape)}"
        )
    if len(lengths) and (int(lengths.min()) < 0 or int(lengths.max()) > tokens.shape[1]):
        raise ValueError(f"lengths must lie in [0, {tokens.shape[1]}] (the padded width)")


def pad_sentences(
    sentences: Sequence[Sequence[int]], device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """(tokens, lengths): sentences right-padded with 0, which no grammar uses as a terminal."""
    lengths = torch.tensor([len(s) for s in sentences], dtype=torch.int64)
    width = max(1, int(lengths.max())) if len(sentences) else 1
    tokens = torch.zeros((len(sentences), width), dtype=torch.int64)
    for i, s in enumerate(sentences):
        if len(s):
            tokens[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.int64)
    return tokens.to(device), lengths.to(device)


def _masked_tokens(tokens: Tensor, lengths: Tensor) -> Tensor:
    """Tokens with everything at or after each sentence's length set to 0 (no terminal)."""
    keep = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
    return torch.where(keep, tokens.long(), torch.zeros_like(tokens, dtype=torch.long))


# ------------------------------------------------------------------ membership (bool)


@dataclass(frozen=True)
class _Rows:
    """A sparse span chart: only rows (position, symbol) that hold a span are stored.

    key[r] = position * syms + symbol, with position = b * T + i over the flattened batch; keys
    are sorted and unique. spans[r, w] says the symbol derives tokens[i : i + w].
    """

    key: Tensor
    spans: Tensor
    syms: int

    def lookup(self, key: Tensor) -> Tensor:
        """Row index of each key, -1 where the row is empty."""
        pos = torch.searchsorted(self.key, key).clamp_max(max(len(self.key) - 1, 0))
        hit = self.key[pos] == key if len(self.key) else torch.zeros_like(key, dtype=torch.bool)
        return torch.where(hit, pos, -1)


def _gather_rows(keys: Tensor, src: Tensor, cols: Tensor, width: int, syms: int) -> _Rows:
    """Rows with span bits (keys[p], cols[p]) set; keys may repeat."""
    uniq, inv = torch.unique(keys, return_inverse=True)
    spans = torch.zeros((len(uniq), width), dtype=torch.bool, device=keys.device)
    spans[inv[src], cols] = True
    return _Rows(uniq, spans, syms)


def _bool_join(child: _Rows, right: _Rows, join: _Join, time: int) -> _Rows:
    """Rows of the chains `left symbol + right chain` of one join.

    Enumerates the spans that exist (charts are sparse: at cfg3f's top levels about 5% of
    (start, symbol) rows hold any span) and joins each to the right chain's row where it ends.
    """
    dev = child.key.device
    r, m = child.spans.nonzero(as_tuple=True)
    pos, sym = child.key[r] // child.syms, child.key[r] % child.syms
    if join.anchored:
        first = pos % time == 0
        pos, sym, m = pos[first], sym[first], m[first]
    link = torch.zeros((child.syms, len(join.left)), dtype=torch.bool, device=dev)
    link[torch.tensor(join.left, device=dev), torch.arange(len(join.left), device=dev)] = True
    p, c = link[sym].nonzero(as_tuple=True)  # every chain whose left symbol this span is
    pos, m = pos[p], m[p]
    nxt = pos + m
    rsel = torch.tensor(join.right, device=dev)
    row = right.lookup(nxt * right.syms + rsel[c])
    ok = (row >= 0) & ((pos % time) + m < time)
    pos, m, c, row = pos[ok], m[ok], c[ok], row[ok]
    q, w = right.spans[row].nonzero(as_tuple=True)
    width = min(join.hi, time) + right.spans.shape[1]
    out = _gather_rows(pos * len(join.left) + c, q, m[q] + w, width, len(join.left))
    return _Rows(out.key, out.spans[:, : min(join.hi_out, time) + 1], out.syms)


def _bool_level(child: _Rows, lv: _Level, time: int) -> _Rows:
    """Span rows of one level from the span rows of the level below."""
    chains = [child]
    for join in lv.joins:
        chains.append(_bool_join(child, chains[join.source], join, time))
    width = min(lv.hi, time) + 1  # no span is wider than the padded batch
    keys, srcs, cols = [], [], []
    base = 0
    for sym, rules in enumerate(lv.rules):
        for group, idx, _ in rules:
            chain = chains[group]
            mine = (chain.key % chain.syms) == idx
            rows = chain.spans[mine][:, :width]
            q, w = rows.nonzero(as_tuple=True)
            keys.append((chain.key[mine] // chain.syms) * len(lv.rules) + sym)
            srcs.append(q + base)
            cols.append(w)
            base += len(rows)
    return _gather_rows(torch.cat(keys), torch.cat(srcs), torch.cat(cols), width, len(lv.rules))


WILDCARD = -1  # a token position that may hold any terminal (see `accepts`)


def _terminal_rows(tokens: Tensor, vocab: int) -> _Rows:
    """Width-1 rows: one per real token, one per terminal at a `WILDCARD` position."""
    flat = tokens.reshape(-1)
    pos = (flat >= 1).logical_and(flat <= vocab).nonzero(as_tuple=True)[0]
    keys = pos * vocab + flat[pos] - 1
    wild = (flat == WILDCARD).nonzero(as_tuple=True)[0]
    if len(wild):
        every = torch.arange(vocab, device=tokens.device)
        keys = torch.cat([keys, (wild[:, None] * vocab + every[None, :]).reshape(-1)]).sort()[0]
    spans = torch.zeros((len(keys), 2), dtype=torch.bool, device=tokens.device)
    spans[:, 1] = True
    return _Rows(keys, spans, vocab)


@torch.no_grad()
def accepts(grammar: Grammar, tokens: Tensor, lengths: Tensor) -> Tensor:
    """Bool (B,): is tokens[b, :lengths[b]] a sentence of the grammar? Runs on tokens' device.

    A `WILDCARD` token stands for any terminal: the answer is then whether *some* choice of
    terminals at those positions gives a sentence (each position is covered once by a parse, so
    the chart can hold every choice at once). The membership test of Part 1's generation
    accuracy (the official `solve_dp_noneq_fast` returns 0 exactly for these sentences).
    """
    _check_tokens(tokens, lengths)
    plan = _plan(grammar)
    toks = _masked_tokens(tokens, lengths)
    batch, time = toks.shape
    lens = lengths.to(toks.device).long()
    rows = _terminal_rows(toks, grammar.num_terminals)
    for level in range(grammar.depth - 1, -1, -1):
        rows = _bool_level(rows, plan.levels[level], time)
    start = torch.arange(batch, device=toks.device) * time  # the root row at position 0
    row = rows.lookup(start)
    width = rows.spans.shape[1]
    fits = (row >= 0) & (lens > 0) & (lens < width)
    hit = rows.spans[row.clamp_min(0), lens.clamp_max(width - 1)] if len(rows.key) else fits
    return hit & fits


def accepts_sentences(
    grammar: Grammar,
    sentences: Sequence[Sequence[int]],
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> list[bool]:
    """`accepts` over a list of sentences, in length-sorted batches to limit padding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    result = [False] * len(sentences)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        tokens, lengths = pad_sentences([sentences[i] for i in chunk], device)
        for i, ok in zip(chunk, accepts(grammar, tokens, lengths).tolist(), strict=True):
            result[i] = bool(ok)
    return result


# ------------------------------------------------------- probabilities (float64 bands)


def _pairs(
    left_mask: Tensor, right_rows: Tensor | None, join: _Join, time: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Every (b, i, c, m, j): chain c's left symbol spans [i, i+m) and its right part starts at j.

    Enumerates the spans that exist (charts are sparse: at cfg3f's top levels about 5% of
    (start, symbol) rows hold any span) instead of looping over all widths. With `right_rows`
    (B, T, C') given, pairs whose right chain has no span at j are dropped too.
    """
    sel = torch.tensor(join.left, device=left_mask.device)
    b, i, c, m = left_mask.index_select(2, sel).nonzero(as_tuple=True)
    j = i + m
    keep = j < time
    if right_rows is not None:
        rsel = torch.tensor(join.right, device=left_mask.device)
        keep &= right_rows[b, j.clamp_max(time - 1), rsel[c]]
    return b[keep], i[keep], c[keep], m[keep], j[keep]


def _sum_join(beta: Tensor, right: Tensor, right_rows: Tensor | None, join: _Join) -> Tensor:
    """out[b, i, c, m + w, ...] += beta[b, i, left_c, m] * right[b, i + m, right_c, w, ...]."""
    lhs = beta[:, :1] if join.anchored else beta
    time = beta.shape[1]
    b, i, c, m, j = _pairs(lhs > 0, right_rows, join, time)
    lsel = torch.tensor(join.left, device=beta.device)
    rsel = torch.tensor(join.right, device=beta.device)
    w_right = right.shape[3]
    shape = lhs.shape[:2] + (len(join.left), min(join.hi, time) + w_right) + right.shape[4:]
    out = beta.new_zeros(shape)
    step = max(1, _PAIR_BUDGET // right[0, 0, 0].numel())  # bound the gathered rows' memory
    for k in range(0, len(b), step):
        bb, ii, cc, mm, jj = (x[k : k + step] for x in (b, i, c, m, j))
        rows = right[bb, jj, rsel[cc]]  # (P, WR, ...)
        weight = beta[bb, ii, lsel[cc], mm].reshape((-1,) + (1,) * (rows.dim() - 1))
        cols = mm[:, None] + torch.arange(w_right, device=beta.device)[None, :]
        out.index_put_((bb[:, None], ii[:, None], cc[:, None], cols), weight * rows,
                       accumulate=True)
    return out[:, :, :, : min(join.hi_out, time) + 1]


def _combine(chains: list[Tensor], lv: _Level, width: int) -> Tensor:
    """Level chart (B, T, S, width, ...): per symbol, its rules' chains weighted by probability.

    The root's chart is only kept at position 0.
    """
    first = chains[0][:, :1] if lv.anchored else chains[0]
    out = first.new_zeros(first.shape[:2] + (len(lv.rules), width) + first.shape[4:])
    for sym, rules in enumerate(lv.rules):
        for group, idx, prob in rules:
            part = chains[group][:, : out.shape[1], idx, :width]
            out[:, :, sym, : part.shape[2]] += prob * part
    return out


def _sum_level(beta: Tensor, pi: Tensor, lv: _Level) -> tuple[Tensor, Tensor]:
    """Inside chart beta (B, T, S, W) and prefix chart pi (B, T, S, W, V) of one level.

    pi[b, i, a, d, v]: probability that symbol a's string begins with tokens[i : i+d-1] followed
    by terminal v. For a chain `X rest`, the slot falls inside X (pi of X), or X derives a span
    of known tokens and the slot falls in `rest` (beta of X times pi of `rest`).
    """
    chains_b, chains_p = [beta], [pi]
    for join in lv.joins:
        right_b, right_p = chains_b[join.source], chains_p[join.source]
        chains_b.append(_sum_join(beta, right_b, (right_b > 0).any(-1), join))
        joined = _sum_join(beta, right_p, None, join)
        own = pi[:, : joined.shape[1]].index_select(2, torch.tensor(join.left, device=pi.device))
        width = min(own.shape[3], joined.shape[3])
        joined[:, :, :, :width] += own[:, :, :, :width]
        chains_p.append(joined)
    width = min(lv.hi, beta.shape[1]) + 1  # no span is wider than the padded batch
    return _combine(chains_b, lv, width), _combine(chains_p, lv, width)


def _terminal_chart(tokens: Tensor, vocab: int) -> Tensor:
    """Dense (B, T, V, 2) chart of width-1 spans."""
    terms = torch.arange(1, vocab + 1, device=tokens.device)
    return F.pad((tokens[:, :, None] == terms)[..., None], (1, 0))


def _inside_prefix(grammar: Grammar, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Scaled root rows from position 0: beta (B, W) over end e, pi (B, W, V) over slot end e."""
    plan = _plan(grammar)
    toks = F.pad(_masked_tokens(tokens, lengths), (0, 1))  # one more start for the last slot
    vocab = grammar.num_terminals
    beta = _terminal_chart(toks, vocab).double() * plan.scale
    pi = torch.zeros(beta.shape + (vocab,), dtype=torch.float64, device=toks.device)
    pi[:, :, :, 1] = torch.eye(vocab, dtype=torch.float64, device=toks.device) * plan.scale
    for level in range(grammar.depth - 1, -1, -1):
        beta, pi = _sum_level(beta, pi, plan.levels[level])
    return beta[:, 0, 0], pi[:, 0, 0]


def _in_chunks(
    fn: Callable[[Tensor, Tensor], Tensor], tokens: Tensor, lengths: Tensor, batch_size: int
) -> list[Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [fn(tokens[i : i + batch_size], lengths[i : i + batch_size])
            for i in range(0, tokens.shape[0], batch_size)]


@torch.no_grad()
def sentence_logprob(
    grammar: Grammar, tokens: Tensor, lengths: Tensor, batch_size: int = 8
) -> Tensor:
    """Float64 (B,): log P(sentence) under uniform rule choice, summed over all its parses.

    -inf outside the language. The inside algorithm on the band chart.
    """
    _check_tokens(tokens, lengths)
    log_s = math.log(_plan(grammar).scale)

    def one(tok: Tensor, lens: Tensor) -> Tensor:
        row_b, _ = _inside_prefix(grammar, tok, lens)
        lens = lens.to(row_b.device).long()
        fits = lens < row_b.shape[1]
        val = row_b.gather(1, lens.clamp_max(row_b.shape[1] - 1)[:, None])[:, 0] * fits
        return torch.log(val) - lens.double() * log_s

    parts = _in_chunks(one, tokens, lengths, batch_size)
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def next_token_probs(
    grammar: Grammar, tokens: Tensor, lengths: Tensor, batch_size: int = 8
) -> Tensor:
    """Float64 (B, T+1, V+1): the grammar's law of the token after each prefix.

    Row t is P(x_t = v | x_0..x_{t-1}) for terminals v = 1..V (columns 0..V-1) and P(end of
    sentence | prefix) in column V, for t = 0..lengths[b]; that is the target of Part 1's KL
    measure (official `solve_dp_prob_highprecision`). Rows past the length, and rows whose prefix
    no sentence starts with, are NaN. Each defined row sums to one.
    """
    _check_tokens(tokens, lengths)
    s = _plan(grammar).scale
    time = tokens.shape[1]

    def one(tok: Tensor, lens: Tensor) -> Tensor:
        row_b, row_p = _inside_prefix(grammar, tok, lens)
        need = time + 2 - row_b.shape[1]
        if need > 0:  # sentences longer than the grammar allows: pad with zero probability
            row_b = F.pad(row_b, (0, need))
            row_p = F.pad(row_p, (0, 0, 0, need))
        cont = row_p[:, 1 : time + 2]  # prefix length t: the slot ends at e = t + 1
        stop = row_b[:, : time + 1, None] * s  # beta at end t, one width short of pi's scale
        table = torch.cat([cont, stop], dim=-1)
        total = table.sum(-1, keepdim=True)
        steps = torch.arange(time + 1, device=tok.device)[None, :, None]
        defined = (total > 0) & (steps <= lens.to(tok.device)[:, None, None])
        return torch.where(defined, table / total, float("nan"))

    parts = _in_chunks(one, tokens, lengths, batch_size)
    if not parts:
        return torch.zeros((0, time + 1, grammar.num_terminals + 1), dtype=torch.float64)
    return torch.cat(parts)


def grammar_kl(target: Tensor, model: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean over positions of KL(target || model), both smoothed by eps and renormalised.

    The recipe of the official KL demo (`demo2_advanced_dp.py`, eps = 1e-5). Rows of `target`
    that are NaN (undefined prefixes, padding) are skipped. Shapes (..., V+1).
    """
    if target.shape != model.shape:
        raise ValueError(f"target and model shapes differ: {target.shape} vs {model.shape}")
    keep = ~torch.isnan(target).any(-1)
    t = target[keep] + eps
    m = model[keep].to(t.dtype) + eps
    t = t / t.sum(-1, keepdim=True)
    m = m / m.sum(-1, keepdim=True)
    return (t * (t.log() - m.log())).sum(-1).mean()
