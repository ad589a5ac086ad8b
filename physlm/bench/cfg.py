"""Membership checks per second on cfg3f sentences: the batched tensor DP against textbook CYK.

Part 1's generation accuracy asks, for every generated sentence, whether it is in the language
(official verifier: pure-Python DP, "a few seconds" per cfg3f sentence per the reference notes).
The baseline here is that kind of parser: CYK over the grammar binarised right-associatively,
one span at a time, sets of symbols per cell. Both run in one process on the same sentences.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from physlm.data.cfg import NAMED_GRAMMARS, Grammar, named_grammar, sample
from physlm.measure.cfg_parse import accepts_sentences

Item = tuple  # (level, symbol) or (level, rule suffix): hashable cell contents


def cyk_accepts(grammar: Grammar, sentence: list[int]) -> bool:
    """Textbook CYK in pure Python: cell (i, j) holds every symbol or rule suffix deriving x[i:j].

    Rules `A -> B C D` are binarised as `A -> B (C D)`, `(C D) -> C D`; unary rules are closed
    over after each cell is filled. O(n^3 * |binary rules|) with no use of the level structure.
    """
    depth = grammar.depth
    binary: dict[tuple[Item, Item], list[Item]] = defaultdict(list)
    unary: dict[Item, list[Item]] = defaultdict(list)
    for level, level_rules in enumerate(grammar.rules):
        for sym, rhs_list in enumerate(level_rules):
            head = (level, sym)
            for rhs in rhs_list:
                kids = [(level + 1, c) for c in rhs]
                if len(kids) == 1:
                    unary[kids[0]].append(head)
                    continue
                parent: Item = head
                for k in range(len(kids) - 2):
                    rest = (level + 1, tuple(rhs[k + 1 :]))
                    binary[(kids[k], rest)].append(parent)
                    parent = rest
                binary[(kids[-2], kids[-1])].append(parent)
    n = len(sentence)
    if n == 0:
        return False

    def close(cell: set) -> set:
        todo = list(cell)
        while todo:
            for up in unary.get(todo.pop(), ()):
                if up not in cell:
                    cell.add(up)
                    todo.append(up)
        return cell

    table = [[set() for _ in range(n + 1)] for _ in range(n + 1)]
    for i, tok in enumerate(sentence):
        if 1 <= tok <= grammar.num_terminals:
            table[i][i + 1] = close({(depth, tok - 1)})
    for span in range(2, n + 1):
        for i in range(0, n - span + 1):
            j = i + span
            cell = table[i][j]
            for k in range(i + 1, j):
                left, right = table[i][k], table[k][j]
                if not left or not right:
                    continue
                for a in left:
                    for b in right:
                        parents = binary.get((a, b))
                        if parents:
                            cell.update(parents)
            if cell:
                close(cell)
    return (0, 0) in table[0][n]


def _rate(count: int, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def main(argv: list[str] | None = None) -> int:
    """`python -m physlm bench cfg`: sentences parsed per second, ours vs pure-Python CYK."""
    p = argparse.ArgumentParser(prog="physlm bench cfg", description=main.__doc__)
    p.add_argument("--grammar", choices=NAMED_GRAMMARS, default="cfg3f")
    p.add_argument("--sentences", type=int, default=1024, help="sentences for the batched DP")
    p.add_argument(
        "--baseline-sentences",
        type=int,
        default=8,
        help="sentences for the pure-Python CYK (~0.3 s each)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: the DP runs many small memory-bound ops; "
        "more threads gain nothing and, under OpenMP's spin-wait on a shared machine, "
        "can cost 10x or more)",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for name in ("sentences", "baseline_sentences", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    grammar = named_grammar(args.grammar)
    sents = sample(grammar, args.sentences, args.seed).sentences()
    mean_len = sum(map(len, sents)) / len(sents)
    threads = torch.get_num_threads()
    print(
        f"{args.grammar}: {len(sents)} sentences, mean length {mean_len:.0f}; "
        f"cpu, {threads} thread{'s' if threads != 1 else ''}"
    )

    accepts_sentences(grammar, sents[: args.batch_size], args.batch_size)  # warm-up
    t0 = time.perf_counter()
    ours = accepts_sentences(grammar, sents, args.batch_size)
    ours_rate = _rate(len(sents), time.perf_counter() - t0)

    few = sents[: args.baseline_sentences]
    t0 = time.perf_counter()
    base = [cyk_accepts(grammar, s) for s in few]
    base_rate = _rate(len(few), time.perf_counter() - t0)
    if not all(ours) or base != ours[: len(few)]:
        print("error: the parsers disagree or reject a sampled sentence")
        return 1
    print(f"ours: {ours_rate:.1f} sentences/s")
    print(f"baseline: {base_rate:.3f} sentences/s")
    print(f"ratio ours/baseline: {ours_rate / base_rate:.0f}")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        gpu_batch = max(args.batch_size, 1024)
        accepts_sentences(grammar, sents[:gpu_batch], gpu_batch, dev)
        torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        gpu = accepts_sentences(grammar, sents, gpu_batch, dev)
        torch.cuda.synchronize(dev)
        gpu_rate = _rate(len(sents), time.perf_counter() - t0)
        if gpu != ours:
            print("error: GPU and CPU results differ")
            return 1
        print(f"gpu: {gpu_rate:.1f} sentences/s ({torch.cuda.get_device_name(dev)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
