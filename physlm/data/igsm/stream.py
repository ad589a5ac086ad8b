"""iGSM problems as a `physlm.data.BatchSource`: fresh problems at every step, loss on solutions.

Part 2.1 (Sec. 2.3 and App. F) pretrains on freshly generated problems, a sample being
problem, solution and answer between separators (official ``[222] problem [223] solution [224]
answer [eos]``). Here a sample is ``<bos> problem <sol> solution <ans> answer <eos>``; whole
samples are packed greedily into rows of ``seq_len + 1`` tokens (``packing="whole"``) or one
per row (``"single"``), the rest padded; a sample longer than a row is skipped and the next
one drawn. The loss counts on the solution, the answer and ``<eos>`` (``loss_on="solution"``)
or on every token (``"all"``). Problem t of row r at step `step` is
``generate(igsm, f"{seed}-{step}-{r}-{t}")``, so ``batch(step)`` is a pure function of
(seed, step).

Part 2.2 data: ``retry_rate`` > 0 inserts wrong starts (`physlm.data.igsm.retry`, kind
``retry_kind``); ``mask_retry`` takes them out of the loss: "none" (the paper: unnecessary),
"name" (the wrong parameter's name) or "fragment" ("Define W as"). The comparison at equal
training tokens is the chapter's: a row of retry data holds fewer problems.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from physlm.data import check_ints, config_from
from physlm.data.igsm.generator import Problem, generate
from physlm.data.igsm.presets import IGSMConfig
from physlm.data.igsm.retry import KINDS, with_retries
from physlm.data.igsm.tokens import ANS, BACK, SOL, igsm_vocab, tokenize

VERSION = "igsm-stream-1"
PACKINGS = ("whole", "single")
LOSS_ON = ("solution", "all")
MASK_RETRY = ("none", "name", "fragment")
_MASKED_ROLES = {"none": (), "name": ("name",), "fragment": ("define", "name", "as")}
MAX_SKIPS = 100  # samples longer than a row skipped in a row before giving up


@dataclass(frozen=True)
class IGSMStreamConfig:
    """igsm: the problems; batch_size x seq_len tokens per step; see the module docstring."""

    igsm: IGSMConfig = field(default_factory=IGSMConfig)
    batch_size: int = 8
    seq_len: int = 512
    seed: int = 0
    packing: str = "whole"
    loss_on: str = "solution"
    retry_rate: float = 0.0
    retry_kind: str = "retry"
    mask_retry: str = "none"

    def __post_init__(self) -> None:
        if not isinstance(self.igsm, IGSMConfig):
            raise ValueError(f"igsm must be an IGSMConfig, got {type(self.igsm).__name__}")
        check_ints(self, (("batch_size", 1), ("seq_len", 8), ("seed", 0)))
        for name, allowed in (
            ("packing", PACKINGS),
            ("loss_on", LOSS_ON),
            ("retry_kind", KINDS),
            ("mask_retry", MASK_RETRY),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        r = self.retry_rate
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r < 1.0:
            raise ValueError(f"retry_rate must be a probability in [0, 1), got {r!r}")


class IGSMStream:
    """iGSM text as a `physlm.data.BatchSource` (see the module docstring)."""

    def __init__(self, config: IGSMStreamConfig | None = None, **kwargs) -> None:
        self.config = config_from(IGSMStreamConfig, config, kwargs)
        self.vocab = igsm_vocab(self.config.igsm.world, self.config.igsm.mod)
        self.vocab_size = len(self.vocab)

    # -- one sample ------------------------------------------------------------------------

    def prompt_ids(self, problem: Problem) -> list[int]:
        """``<bos> problem <sol>``: what a model is given to write the solution."""
        v = self.vocab
        return [v.bos_id, *v.encode(tokenize(problem.text)), v.sol_id]

    def sample(self, problem: Problem, seed: int | str = 0) -> tuple[list[int], list[bool]]:
        """Token ids of one sample and, per token, whether the loss counts on it."""
        c, v = self.config, self.vocab
        prompt = self.prompt_ids(problem)
        if c.retry_rate > 0:
            toks, roles = with_retries(problem, c.retry_rate, seed, c.retry_kind).tokens()
        else:
            toks = tokenize(problem.solution_text)
            roles = ["step"] * len(toks)
        tail = [ANS, str(problem.answer)]
        ids = prompt + v.encode(toks + tail) + [v.eos_id]
        masked = _MASKED_ROLES[c.mask_retry]
        learn = [c.loss_on == "all"] * len(prompt)
        learn += [r not in masked for r in roles] + [True] * (len(tail) + 1)
        return ids, learn

    def read_completion(self, ids: list[int]) -> tuple[str, str | None]:
        """(solution text, answer text or None) of generated ids that follow ``<sol>``."""
        v = self.vocab
        ids = [int(i) for i in ids]
        stop = ids.index(v.eos_id) if v.eos_id in ids else len(ids)
        ids = ids[:stop]
        if v.ans_id not in ids:
            return v.decode_text(ids), None
        cut = ids.index(v.ans_id)
        answer = v.decode_text(ids[cut + 1 :]).strip()
        return v.decode_text(ids[:cut]), answer or None

    # -- rows --------------------------------------------------------------------------------

    def rows(self, step: int) -> tuple[np.ndarray, np.ndarray, list[list[Problem]]]:
        """Token rows [batch_size, seq_len + 1], their loss flags, and the problems per row."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        c, v = self.config, self.vocab
        width = c.seq_len + 1
        tokens = np.full((c.batch_size, width), v.pad_id, dtype=np.int64)
        learn = np.zeros((c.batch_size, width), dtype=bool)
        placed: list[list[Problem]] = []
        for r in range(c.batch_size):
            used, t, skips, row = 0, 0, 0, []
            while True:
                key = f"{c.seed}-{step}-{r}-{t}"
                t += 1
                problem = generate(c.igsm, key)
                ids, flags = self.sample(problem, key)
                if len(ids) > width:
                    skips += 1
                    if skips > MAX_SKIPS:
                        raise ValueError(
                            f"seq_len={c.seq_len} is too short: {MAX_SKIPS} problems in a row "
                            f"did not fit (the last had {len(ids)} tokens)"
                        )
                    continue
                if used + len(ids) > width:
                    break
                tokens[r, used : used + len(ids)] = ids
                learn[r, used : used + len(ids)] = flags
                used += len(ids)
                row.append(problem)
                if c.packing == "single":
                    break
            placed.append(row)
        return tokens, learn, placed

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        tokens, learn, _ = self.rows(step)
        t = torch.from_numpy(tokens)
        x, y = t[:, :-1].contiguous(), t[:, 1:].contiguous()
        mask = torch.from_numpy(learn[:, 1:].copy()) & (y != self.vocab.pad_id)
        return {"x": x, "y": y, "mask": mask}

    def spec(self) -> dict:
        return {
            "kind": "igsm",
            "version": VERSION,
            **asdict(self.config),
            "vocab": self.vocab.digest,
            "back": BACK,
            "sol": SOL,
        }
