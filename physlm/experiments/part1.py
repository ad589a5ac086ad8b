"""Part 1's experiments (arXiv 2305.13673) as functions of a `CFGScale`.

One model shape is trained once per position encoding (GPT, GPT_rel, GPT_rot, GPT_pos, GPT_uni)
on fresh samples of one grammar, plus one rotary model pretrained on noisy data for the
robustness test and one encoder of GPT_rot's shape (bidirectional attention, BERT's masked-LM
objective) on the same clean stream and token budget, for the encoder-vs-decoder comparison.
Every measure is a function of a trained run: generation accuracy (the DP check), KL to the
grammar's exact next-token law, diversity, linear probes of the parse, and attention between
subtree ends. The chapter only picks the calls and shows them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from physlm.data.cfg import CFGSamples, Grammar, sample
from physlm.data.cfg_stream import CFGStream, CFGTokens
from physlm.experiments.workers import run_in_workers
from physlm.measure.attention import attention_maps, boundary_attention
from physlm.measure.cfg_parse import grammar_kl, next_token_probs
from physlm.measure.probes import fit_linear_probe, hidden_states, train_test_split
from physlm.model import GPT
from physlm.runs import Run, get_or_train
from physlm.scales import CFGScale, part1
from physlm.train import TrainConfig

CHAPTER = "part1_cfg"
NAMES = {  # the paper's names for the position switches
    "learned": "GPT (absolute)",
    "relative": "GPT_rel",
    "rope": "GPT_rot",
    "position_only": "GPT_pos",
    "uniform": "GPT_uni",
}


ENCODER = "encoder (masked LM)"


@dataclass(frozen=True)
class Setting:
    """One pretraining run: a position encoding, on clean or noisy sentences; `encoder`: the
    same shape with bidirectional attention, trained on masked tokens (BERT-style)."""

    pos: str
    noisy: bool = False
    encoder: bool = False

    def __post_init__(self) -> None:
        if self.encoder and (self.noisy or self.pos != "rope"):
            raise ValueError(
                f"the encoder setting is GPT_rot's shape on clean data (pos='rope', noisy=False), "
                f"got pos={self.pos!r}, noisy={self.noisy}"
            )

    def label(self) -> str:
        if self.encoder:
            return ENCODER
        return NAMES[self.pos] + (" + noisy data" if self.noisy else "")

    @property
    def cost(self) -> int:
        """Relative one-core training time (GPT_rel's distance terms make it about twice the
        others'): workers take the costly runs first, so no core idles at the end."""
        return 2 if self.pos == "relative" else 1


def make_data(plan: CFGScale, s: Setting, seed: int = 0) -> CFGStream:
    return CFGStream(
        grammar=plan.grammar.build(),
        batch_size=plan.batch_size,
        seq_len=plan.seq_len,
        seed=seed,
        noise=plan.noise if s.noisy else 0.0,
        noise_fraction=plan.noise_fraction,
    )


def train_config(plan: CFGScale, seed: int = 0, objective: str = "next_token") -> TrainConfig:
    return TrainConfig(
        steps=plan.steps,
        lr=plan.lr,
        warmup_steps=plan.warmup_steps,
        weight_decay=plan.weight_decay,
        seed=seed,
        log_every=max(1, plan.steps // 50),
        objective=objective,
        mask_rate=plan.mask_rate,
    )


def train_setting(plan: CFGScale, s: Setting, seed: int = 0, progress: bool = True) -> Run:
    """Train (or load from the run cache) the model of one setting."""
    data = make_data(plan, s, seed)
    if s.encoder:  # one id more for [MASK] (the trainer writes it one past the data's ids)
        model_cfg = plan.model_config(data.vocab_size + 1, s.pos).with_(causal=False)
        return get_or_train(model_cfg, train_config(plan, seed, "masked"), data, progress=progress)
    model_cfg = plan.model_config(data.vocab_size, s.pos)
    return get_or_train(model_cfg, train_config(plan, seed), data, progress=progress)


def chapter_settings(plan: CFGScale) -> list[Setting]:
    """Every run of the chapter: each position encoding, rotary on noisy data, the encoder."""
    settings = [Setting(p) for p in plan.positions] + [Setting("rope", noisy=True)]
    return settings + ([Setting("rope", encoder=True)] if plan.encoder else [])


def _train_only(args: tuple[CFGScale, Setting, int]) -> str:
    plan, s, seed = args
    torch.set_num_threads(1)
    return train_setting(plan, s, seed, progress=False).key


def prefetch(plan: CFGScale, settings: list[Setting], seed: int = 0, workers: int = 1) -> None:
    """Train the missing runs side by side in worker processes (see `run_in_workers`)."""
    if workers > 1:
        costly_first = sorted(settings, key=lambda s: -s.cost)
        run_in_workers(_train_only, [(plan, s, seed) for s in costly_first], workers)


def train_all(scale: str, seed: int = 0, workers: int | None = None) -> int:
    """Train every run of the chapter into the run cache (`physlm train part1_cfg`)."""
    plan = part1(scale)
    settings = chapter_settings(plan)
    prefetch(plan, settings, seed, workers=plan.workers if workers is None else workers)
    for s in settings:
        train_setting(plan, s, seed)
    return len(settings)


# ------------------------------------------------------------------------------ measures


def framed(samples_tokens: np.ndarray, lengths: np.ndarray, tokens: CFGTokens) -> torch.Tensor:
    """[B, 1 + T] model input: <bos> then each sentence, padded with <eos> (never read back)."""
    B, T = samples_tokens.shape
    idx = np.full((B, T + 1), tokens.eos, dtype=np.int64)
    idx[:, 0] = tokens.bos
    for b in range(B):
        idx[b, 1 : 1 + lengths[b]] = samples_tokens[b, : lengths[b]]
    return torch.from_numpy(idx)


@dataclass
class EvalSet:
    """Fresh sentences with their parse and the grammar's exact next-token law.

    Drawn once and shared by every model's KL, probes and attention statistics. `idx` is the
    model input (`framed`), `valid` [B, T] marks real tokens, `target` (B, T+1, V+1) the law.
    """

    grammar: Grammar
    draw: CFGSamples
    idx: torch.Tensor
    valid: torch.Tensor
    target: torch.Tensor
    seed: int

    @property
    def tokens(self) -> CFGTokens:
        return CFGTokens(self.grammar.num_terminals)


def eval_set(grammar: Grammar, n: int, seed: int) -> EvalSet:
    draw = sample(grammar, n, seed)
    lengths = torch.from_numpy(draw.lengths)
    target = next_token_probs(grammar, torch.from_numpy(draw.tokens), lengths)
    idx = framed(draw.tokens, draw.lengths, CFGTokens(grammar.num_terminals))
    valid = torch.arange(draw.tokens.shape[1])[None, :] < lengths[:, None]
    return EvalSet(grammar, draw, idx, valid, target, seed)


@torch.no_grad()
def model_next_token_probs(model: GPT, idx: torch.Tensor, tokens: CFGTokens) -> torch.Tensor:
    """(B, T, V+1): the model's law of the next token over the terminals and <eos>.

    Columns follow `next_token_probs` (terminals 1..V, then end of sentence); the model's mass on
    ids that cannot come next in any text (pad, <bos>) is dropped and the rest renormalised.
    """
    model.eval()
    probs = torch.softmax(model(idx).double(), dim=-1)
    cols = [*range(1, tokens.num_terminals + 1), tokens.eos]
    out = probs[..., cols]
    return out / out.sum(-1, keepdim=True)


def kl_to_grammar(model: GPT, ev: EvalSet) -> float:
    """Part 1's distribution match: mean KL(grammar || model) per position of fresh sentences."""
    return float(grammar_kl(ev.target, model_next_token_probs(model, ev.idx, ev.tokens)))


def kl_by_position(model: GPT, ev: EvalSet) -> list[dict]:
    """The KL of `kl_to_grammar`, split by prefix length: one row per position of the sentence.

    Row `prefix` t is the next-token law after the first t tokens (t = 0: after <bos> alone);
    `sentences` is how many evaluation sentences reach it. The mean of `kl` weighted by
    `sentences` is `kl_to_grammar`.
    """
    law = model_next_token_probs(model, ev.idx, ev.tokens)
    rows = []
    for t in range(ev.target.shape[1]):
        keep = ~torch.isnan(ev.target[:, t]).any(-1)
        if keep.any():
            kl = float(grammar_kl(ev.target[keep, t], law[keep, t]))
            rows.append({"prefix": t, "kl": kl, "sentences": int(keep.sum())})
    return rows


def uniform_kl(ev: EvalSet) -> float:
    """The KL of a uniform guess over the V+1 outcomes: a yardstick for the scale of the KL."""
    return float(grammar_kl(ev.target, torch.full_like(ev.target, 1.0 / ev.target.shape[-1])))


PROBE_TASKS = ("NT ancestor (at NT ends)", "NT end")


def _alone(ev: EvalSet) -> Iterator[tuple[torch.Tensor, int]]:
    """(rows, width) per sentence length: the eval sentences of that length, framed as in
    training (<bos> sentence <eos>) in the first `width` columns of `ev.idx`."""
    lengths = ev.draw.lengths
    for length in np.unique(lengths):
        yield torch.from_numpy(np.flatnonzero(lengths == length)), int(length) + 2


def sentence_states(model: GPT, ev: EvalSet) -> dict[int, torch.Tensor]:
    """{layer: [B, 1+T, d]} hidden states of the eval sentences, as `hidden_states` of `ev.idx`.

    A decoder reads them from the padded batch (no position sees the padding after it). An
    encoder sees every position, so each sentence runs alone, framed as in training (<bos>
    sentence <eos>), and the states past it are zeros (no label is read there).
    """
    if model.cfg.causal:
        return hidden_states(model, ev.idx)
    out: dict[int, torch.Tensor] = {}
    for rows, width in _alone(ev):
        for layer, h in hidden_states(model, ev.idx[rows, :width]).items():
            if layer not in out:
                out[layer] = h.new_zeros(ev.idx.shape[0], ev.idx.shape[1], h.shape[-1])
            out[layer][rows, :width] = h
    return out


@torch.no_grad()
def masked_token_accuracy(model: GPT, ev: EvalSet, rate: float, seed: int) -> dict:
    """How often an encoder names a masked terminal (each chosen with probability `rate`,
    replaced by [MASK], one past the data's ids), against always guessing the most frequent
    terminal among the masked ones. Sentences run alone, framed as in training."""
    tokens = ev.tokens
    g = torch.Generator().manual_seed(seed)
    idx = ev.idx.clone()
    chosen = torch.zeros_like(idx, dtype=torch.bool)
    chosen[:, 1:] = ev.valid & (torch.rand(ev.valid.shape, generator=g) < rate)
    idx[chosen] = tokens.vocab_size
    hits, total = 0, 0
    model.eval()
    for rows, width in _alone(ev):
        at = chosen[rows, :width]
        if not at.any():
            continue
        pred = model(idx[rows, :width], at=at).argmax(-1)
        hits += int((pred == ev.idx[rows, :width][at]).sum())
        total += int(at.sum())
    answers = ev.idx[chosen]
    majority = int(torch.bincount(answers).max()) if total else 0
    return {"correct": hits, "n": total, "majority": majority}


def probe_parse(model: GPT, ev: EvalSet) -> list[dict]:
    """Linear probes of the parse on every layer's hidden states (Part 1 Sec. 4).

    For each NT level l below the root: the NT-ancestor symbol, read at the positions that end a
    level-l subtree (where the prefix has seen all of it), and the NT-end bit (is this token the
    last of its level-l subtree?) at every position. Probes are fitted on 80% of the sentences and
    scored on the rest; the majority-class rate of the test labels is reported beside them, and
    `n`, the number of test positions scored (the accuracy's sample size).
    """
    grammar, draw, valid = ev.grammar, ev.draw, ev.valid
    states = sentence_states(model, ev)  # {layer: [B, 1+T, d]}; token t sits at position t + 1
    train, test = train_test_split(len(draw.lengths), 0.2, ev.seed)
    rows = []
    for level in range(1, grammar.depth):
        ends = torch.from_numpy(draw.boundaries[:, level, :]) & valid
        anc = torch.from_numpy(draw.ancestors[:, level, :].astype(np.int64))
        tasks = {
            PROBE_TASKS[0]: (anc.where(ends, -1), grammar.sizes[level]),
            PROBE_TASKS[1]: (torch.where(valid, ends.long(), -1), 2),
        }
        for task, (labels, classes) in tasks.items():
            y_test = labels[test][labels[test] >= 0]
            majority = float(torch.bincount(y_test, minlength=classes).max()) / max(len(y_test), 1)
            for layer, h in states.items():
                feats = h[:, 1:, :]
                d = h.shape[-1]
                probe = fit_linear_probe(
                    feats[train].reshape(-1, d), labels[train].reshape(-1), classes
                )
                acc = probe.accuracy(feats[test].reshape(-1, d), labels[test].reshape(-1))
                rows.append(
                    {
                        "level": level,
                        "task": task,
                        "layer": layer + 1,
                        "accuracy": acc,
                        "majority": majority,
                        "n": len(y_test),
                    }
                )
    return rows


def repeats(sentences: list[list[int]]) -> int:
    """How many of `sentences` repeat an earlier one (len minus the number of distinct ones).

    Part 1's diversity check in its simplest form: a sampler that memorised a few sentences
    repeats itself often; the grammar's own samples set the rate to expect.
    """
    return len(sentences) - len({tuple(s) for s in sentences})


def attention_excess(model: GPT, ev: EvalSet) -> np.ndarray:
    """(levels, L, H): distance-corrected attention from level-l NT ends to earlier NT ends minus
    that to other earlier tokens, for every NT level below the root (index 0 is level 1), layer
    and head, in units of attention weight (`physlm.measure.attention.boundary_attention`)."""
    maps = attention_maps(model, ev.idx)[:, :, :, 1:, 1:]  # sentence tokens only
    gaps = []
    for level in range(1, ev.grammar.depth):
        ends = torch.from_numpy(ev.draw.boundaries[:, level, :]) & ev.valid
        to_end, to_other = boundary_attention(maps, ends, ev.valid)
        gaps.append((to_end - to_other).numpy())
    return np.stack(gaps)


def attention_to_ends(model: GPT, ev: EvalSet) -> list[dict]:
    """Distance-corrected attention from level-l NT ends to earlier NT ends vs to other tokens.

    One row per (level, layer): the head with the largest NT-end preference and the mean over
    heads, in units of attention weight (`attention_rows` of `attention_excess`).
    """
    return attention_rows(attention_excess(model, ev))


def attention_rows(excess: np.ndarray) -> list[dict]:
    """One row per (level, layer) of an `attention_excess` array: best head, its value, mean."""
    rows = []
    for level, gap in enumerate(excess, start=1):  # gap: (L, H)
        for layer in range(gap.shape[0]):
            rows.append(
                {
                    "level": level,
                    "layer": layer + 1,
                    "best head": int(gap[layer].argmax()),
                    "end - other (best head)": float(gap[layer].max()),
                    "end - other (mean of heads)": float(gap[layer].mean()),
                }
            )
    return rows
