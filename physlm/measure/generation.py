"""Generation-based measures: batched sampling, Part 1's CFG generation accuracy, exact match.

* `sample`: autoregressive sampling that recomputes the whole prefix at every step (no KV cache;
  the models here are small), so it works with every position-encoding switch of `GPT`.
* `cfg_generation_accuracy`: Part 1's "DP check" (arXiv 2305.13673, Sec. 3; P4.1 App. A.5):
  prompt with <bos> (cut 0) or <bos> plus the first `cut` tokens of a fresh sentence (cut 50),
  sample at temperature 1 to <eos>, and count the completed sentence correct only if the whole
  of it is in the grammar's language (no partial credit).
* `exact_match`: Part 3.1's QA protocol (arXiv 2309.14316, Sec. 3): greedy generation of as many
  tokens as the answer has, correct only if all of them match.
* `greedy_grouped`: greedy continuations of prompts of many lengths, batched without padding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from physlm.data.cfg import Grammar
from physlm.data.cfg import sample as sample_grammar
from physlm.data.cfg_stream import CFGStream, CFGTokens, corrupt
from physlm.measure.cfg_parse import WILDCARD, accepts_sentences


def _device(model: nn.Module, fallback: torch.device) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else fallback


def _block_size(model: nn.Module) -> int | None:
    return getattr(getattr(model, "cfg", None), "block_size", None)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompts: Tensor,
    max_new: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    stop_token: int | None = None,
) -> list[list[int]]:
    """The tokens generated after each prompt row (prompts: LongTensor [B, T0]).

    Row b stops after `max_new` tokens or right after it emits `stop_token`, which is kept as the
    row's last token (so a caller can tell a finished row from a truncated one). Temperature 0 is
    greedy; otherwise tokens are drawn from softmax(logits / temperature) with `generator`
    (same generator state, same tokens). The longest input fed to the model, T0 + max_new - 1,
    must fit `model.cfg.block_size`. The model is run in eval mode and its mode restored.
    """
    if prompts.dim() != 2 or prompts.shape[1] < 1 or prompts.dtype != torch.long:
        raise ValueError(
            f"prompts must be a LongTensor [B, T0] with T0 >= 1, got "
            f"{tuple(prompts.shape)} {prompts.dtype}"
        )
    if isinstance(max_new, bool) or not isinstance(max_new, int) or max_new < 1:
        raise ValueError(f"max_new must be an int >= 1, got {max_new!r}")
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    block = _block_size(model)
    if block is not None and prompts.shape[1] + max_new - 1 > block:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + max_new {max_new} - 1 exceeds the model's "
            f"block_size {block}"
        )
    was_training = model.training
    model.eval()
    try:
        dev = _device(model, prompts.device)
        idx = prompts.to(dev)
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=dev)
        out = []
        for _ in range(max_new):
            logits = model(idx)[:, -1, :].float()
            if temperature == 0.0:
                nxt = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                gen_dev = generator.device if generator is not None else probs.device
                nxt = torch.multinomial(probs.to(gen_dev), 1, generator=generator)[:, 0]
                nxt = nxt.to(dev)
            out.append(nxt)
            idx = torch.cat([idx, nxt[:, None]], dim=1)
            if stop_token is not None:
                done |= nxt == stop_token
                if bool(done.all()):
                    break
    finally:
        model.train(was_training)
    gen = torch.stack(out, dim=1).tolist()
    if stop_token is not None:
        gen = [row[: row.index(stop_token) + 1] if stop_token in row else row for row in gen]
    return gen


def cfg_generation_accuracy(
    model: nn.Module,
    stream_or_grammar: CFGStream | Grammar,
    n: int,
    cut: int = 0,
    max_new: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    temperature: float = 1.0,
    prefix_noise: float = 0.0,
) -> dict:
    """Part 1's generation accuracy on `n` samples (the DP check, see the module docstring).

    `prefix_noise` > 0 is Part 1's robustness test (Sec. 6): each prompt's prefix has
    ceil(prefix_noise * cut) tokens replaced by other terminals (`cfg_stream.corrupt`), and the
    completion counts as correct if the prompt's untouched tokens, *some* terminals at the
    corrupted positions (`cfg_parse.WILDCARD`) and the completion form a sentence: the model
    must read past the mistakes and carry on grammatically. (Our reading: the paper's exact
    scoring of corrupted prompts was not available.) `sentences` then hold the clean prefixes.

    Token ids are the stream's (`CFGTokens`; a bare grammar uses the same map). Prompts are
    <bos> + the first `cut` tokens of fresh sentences (drawn with `seed`, among sentences longer
    than `cut`). `max_new` defaults to what the model's block allows. A completion is wrong if it
    hits `max_new` without <eos>, contains any non-terminal token, or is outside the language.

    Returns accuracy, n, cut, lengths (of the full sentences, prefix included, generated up to
    <eos> or the limit), truncated (fraction without <eos>), diversity (distinct full sentences
    / n) and the sentences themselves (terminal ids).
    """
    grammar = (
        stream_or_grammar.grammar if isinstance(stream_or_grammar, CFGStream) else stream_or_grammar
    )
    if not isinstance(grammar, Grammar):
        raise ValueError(
            f"stream_or_grammar must be a CFGStream or a Grammar, got {type(stream_or_grammar)}"
        )
    for name, v, lo in (
        ("n", n, 1),
        ("cut", cut, 0),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    if not 0.0 <= prefix_noise <= 1.0 or (prefix_noise > 0 and cut == 0):
        raise ValueError(f"prefix_noise must be in [0, 1] and needs cut > 0, got {prefix_noise!r}")
    tok = CFGTokens(grammar.num_terminals)
    if cut > 0 and grammar.width_bounds[0][0][1] <= cut:
        raise ValueError(
            f"cut must be below the longest sentence of {grammar.name} "
            f"({grammar.width_bounds[0][0][1]} tokens), got {cut}"
        )
    prefixes = _prefixes(grammar, n, cut, seed)
    prompted = prefixes
    if prefix_noise > 0:
        rng = np.random.default_rng(seed)
        prompted = [
            corrupt(np.asarray(p), prefix_noise, grammar.num_terminals, rng).tolist()
            for p in prefixes
        ]
    if max_new is None:
        block = _block_size(model)
        if block is None:
            raise ValueError("max_new is required when the model has no cfg.block_size")
        max_new = block - cut  # the prompt is cut + 1 tokens: cut + 1 + max_new - 1 <= block
    gen = torch.Generator().manual_seed(seed)
    sentences, finished = [], []
    for start in range(0, n, batch_size):
        chunk = prefixes[start : start + batch_size]
        shown = prompted[start : start + batch_size]
        prompts = torch.tensor([[tok.bos, *p] for p in shown], dtype=torch.long)
        for p, row in zip(
            chunk, sample(model, prompts, max_new, temperature, gen, tok.eos), strict=True
        ):
            ended = bool(row) and row[-1] == tok.eos
            sentences.append(list(p) + (row[:-1] if ended else row))
            finished.append(ended)
    clean = [
        ok and all(tok.is_terminal(t) for t in s) for s, ok in zip(sentences, finished, strict=True)
    ]
    to_parse = [i for i, c in enumerate(clean) if c]
    scored = [
        [WILDCARD if a != b else a for a, b in zip(p, q, strict=True)] + s[len(p) :]
        for p, q, s in zip(prefixes, prompted, sentences, strict=True)
    ]
    parsed = accepts_sentences(grammar, [scored[i] for i in to_parse])
    correct = [False] * n
    for i, ok in zip(to_parse, parsed, strict=True):
        correct[i] = ok
    return {
        "accuracy": float(np.mean(correct)),
        "n": n,
        "cut": cut,
        "lengths": [len(s) for s in sentences],
        "truncated": 1.0 - float(np.mean(finished)),
        "diversity": len({tuple(s) for s in sentences}) / n,
        "sentences": sentences,
        "correct": correct,
    }


def collision_support(sentences: Sequence[Sequence[int]]) -> float:
    """Birthday-paradox estimate of how many distinct sentences a sampler draws from.

    Among n draws from K equally likely strings, n(n-1)/2 pairs collide with probability 1/K each,
    so K ~ n(n-1) / (2 * colliding pairs) (Part 1's diversity measure). With no collision the
    estimate is unbounded: inf. Non-uniform laws make it a lower bound on the support.
    """
    n = len(sentences)
    if n < 2:
        raise ValueError(f"sentences must hold at least 2 samples, got {n}")
    counts: dict[tuple[int, ...], int] = defaultdict(int)
    for s in sentences:
        counts[tuple(s)] += 1
    pairs = sum(c * (c - 1) // 2 for c in counts.values())
    return float("inf") if pairs == 0 else n * (n - 1) / (2 * pairs)


def _prefixes(grammar: Grammar, n: int, cut: int, seed: int) -> list[list[int]]:
    """The first `cut` tokens of `n` fresh sentences longer than `cut` (drawn with `seed`)."""
    if cut == 0:
        return [[] for _ in range(n)]
    found: list[list[int]] = []
    for attempt in range(100):
        draw = sample_grammar(grammar, max(n, 16), seed * 1000 + attempt).sentences()
        found += [s[:cut] for s in draw if len(s) > cut]
        if len(found) >= n:
            return found[:n]
    raise ValueError(f"cut={cut}: too few sentences of {grammar.name} are longer than cut")


@torch.no_grad()
def exact_match(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    batch_size: int = 64,
) -> float:
    """Fraction of prompts whose greedy continuation of len(answer) tokens equals the answer.

    Prompts of equal length are generated together (no padding, so nothing leaks into the
    context), in batches of `batch_size`.
    """
    if len(prompts) != len(answers) or not prompts:
        raise ValueError(
            f"prompts and answers must be non-empty lists of equal length, got "
            f"{len(prompts)} and {len(answers)}"
        )
    if any(len(p) < 1 for p in prompts) or any(len(a) < 1 for a in answers):
        raise ValueError("every prompt and every answer must hold at least one token")
    got = greedy_grouped(model, prompts, [len(a) for a in answers], batch_size)
    hits = sum(g[: len(a)] == list(a) for g, a in zip(got, answers, strict=True))
    return hits / len(prompts)


@torch.no_grad()
def greedy_grouped(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new: Sequence[int],
    batch_size: int = 64,
    stop_token: int | None = None,
) -> list[list[int]]:
    """Greedy continuations of prompts of any lengths, in the prompts' order.

    Prompts of equal length are decoded together (no padding, so nothing leaks into the
    context), in batches of `batch_size`; a batch decodes as many tokens as its largest
    `max_new`, and a row stops early at `stop_token` (see `sample`).
    """
    if len(max_new) != len(prompts):
        raise ValueError(
            f"max_new needs one count per prompt, got {len(max_new)} for {len(prompts)}"
        )
    groups: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[len(p)].append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for idx in groups.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            x = torch.tensor([list(prompts[i]) for i in chunk], dtype=torch.long)
            want = max(max_new[i] for i in chunk)
            got = sample(model, x, want, temperature=0.0, stop_token=stop_token)
            for i, g in zip(chunk, got, strict=True):
                out[i] = g
    return out
