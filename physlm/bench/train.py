"""Training throughput: physlm's trainer against Hugging Face transformers on the same shape.

`python -m physlm bench train [--shape part3_3|part1|part4_1] [--same-arch] [--steps N]
[--mlp gelu|gated] [--threads T]` trains a `cpu` chapter's model shape (by default
`physlm.scales.BENCH_TRAIN`, Part 3.3's largest) with `physlm.train.train`,
the real training path (clipping, schedule and logging included; its one checkpoint, at the end,
falls outside the timed steps), on random tokens, and in the same run the same shape as a
transformers model in a plain AdamW loop. The two
alternate for `--rounds` rounds so that load from other jobs falls on both; the first `--warmup`
steps of every run are excluded and the best round of each side is reported. The chapters'
models differ from GPT-2 (rotary positions, no biases); `--same-arch` gives physlm the
transformers model's own switches, so that both sides do the same arithmetic.

It prints tokens/s of each side, `ratio physlm/transformers: X.XX`, and the model FLOP
utilisation of the physlm run: 6 x params x tokens/s (the forward + backward matmul work of a
dense transformer, attention scores not counted) over the float32 (CPU) or bfloat16 (CUDA) GEMM
rate measured in the same run (`physlm.bench.matmul`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F

from physlm.bench.matmul import cpu_threads, default_gemm, gemm_rate
from physlm.model import GPT, ModelConfig, count_params
from physlm.train import TrainConfig, train

# Used until physlm.scales defines BENCH_TRAIN; the output says which one was measured.
FALLBACK_BENCH_TRAIN = {
    "model": ModelConfig(vocab_size=512, n_layer=4, n_head=4, n_embd=128, block_size=256),
    "batch_size": 32,
    "seq_len": 128,
}
MLPS = ("gelu", "gated")
TIMED_TOKENS = 100_000  # per run by default: ~1 s of the bench shape on one CPU core


SHAPES = ("part3_3", "part1", "part4_1")  # --shape: the default first


def bench_shape(name: str = "part3_3") -> tuple[dict, str]:
    """The shape to measure and where it came from: Part 3.3's largest `cpu` model (the
    default), Part 1's GPT_rot or Part 4.1's RoPE model at `cpu`, each with its chapter's
    vocabulary, batch and context (Part 4.1: the width of its first padded batch)."""
    if name not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {name!r}")
    if name == "part1":
        from physlm.data.cfg_stream import CFGStream
        from physlm.scales import part1

        plan = part1("cpu")
        grammar = plan.grammar.build()
        vocab = CFGStream(
            grammar=grammar, batch_size=plan.batch_size, seq_len=plan.seq_len
        ).vocab_size
        sizes = {"batch_size": plan.batch_size, "seq_len": plan.seq_len}
        return {"model": plan.model_config(vocab, "rope")} | sizes, "Part 1 cpu, GPT_rot"
    if name == "part4_1":
        from physlm.experiments.part4_1 import make_data, model_config
        from physlm.scales import part4_1

        plan = part4_1("cpu")
        data = make_data(plan)
        width = int(data.batch(0)["x"].shape[1])
        shape = {"model": model_config(plan, "RoPE", data), "batch_size": plan.batch_size}
        return shape | {"seq_len": width}, "Part 4.1 cpu, RoPE"
    try:
        from physlm.scales import BENCH_TRAIN
    except ImportError:
        return FALLBACK_BENCH_TRAIN, "FALLBACK_BENCH_TRAIN (physlm.scales.BENCH_TRAIN not defined)"
    return BENCH_TRAIN, "physlm.scales.BENCH_TRAIN"


def as_transformers(cfg: ModelConfig) -> ModelConfig:
    """The physlm switches that build the transformers model's own architecture: GPT-2's learned
    positions and biases for the GELU MLP; rotary on every head dim, RMSNorm for the gated one.
    Both sides then do the same arithmetic, so the ratio measures the implementations alone."""
    if cfg.mlp == "gelu":
        return cfg.with_(pos="learned", bias=True, norm="layer", qk_norm=False)
    return cfg.with_(pos="rope", rope_fraction=1.0, norm="rms", qk_norm=False)


class RandomTokens:
    """A BatchSource of uniform random tokens, all positions counted, that notes when each
    batch is asked for: the trainer asks for batch s when step s starts, so the gaps between
    those moments time the steps from inside the real training loop.
    """

    def __init__(
        self, vocab_size: int, batch_size: int, seq_len: int, seed: int = 0, distinct: int = 4
    ) -> None:
        for name, v in (
            ("vocab_size", vocab_size),
            ("batch_size", batch_size),
            ("seq_len", seq_len),
            ("distinct", distinct),
        ):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"RandomTokens.{name} must be a positive int, got {v!r}")
        self.vocab_size, self.batch_size, self.seq_len, self.seed = (
            vocab_size,
            batch_size,
            seq_len,
            seed,
        )
        g = torch.Generator().manual_seed(seed)
        rows = torch.randint(0, vocab_size, (distinct, batch_size, seq_len + 1), generator=g)
        mask = torch.ones(batch_size, seq_len, dtype=torch.bool)
        # Precomputed so that making a batch costs nothing next to a training step.
        self._batches = [
            {"x": r[:, :-1].contiguous(), "y": r[:, 1:].contiguous(), "mask": mask} for r in rows
        ]
        self.started: dict[int, float] = {}

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.started[step] = time.perf_counter()
        return self._batches[step % len(self._batches)]

    def spec(self) -> dict:
        return {
            "kind": "random_tokens",
            "vocab_size": self.vocab_size,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "seed": self.seed,
            "distinct": len(self._batches),
        }

    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def throughput(self, warmup: int, steps: int) -> tuple[float, float]:
        """(tokens/s over steps warmup..steps-2, seconds spent before step `warmup`).

        The last step is left out: its end is not observed (the next batch is never asked for).
        """
        timed = steps - 1 - warmup
        if timed <= 0:
            raise ValueError(f"steps ({steps}) must exceed warmup ({warmup}) + 1")
        span = self.started[steps - 1] - self.started[warmup]
        return timed * self.tokens_per_step() / span, self.started[warmup] - self.started[0]


def hf_model(cfg: ModelConfig) -> torch.nn.Module:
    """The same shape in transformers: GPT2LMHeadModel for the GELU MLP, Llama for the gated one."""
    import transformers as tf

    # sdpa: the fastest attention transformers ships for both CPU and GPU.
    common = dict(
        vocab_size=cfg.vocab_size,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        attn_implementation="sdpa",
    )
    if cfg.mlp == "gelu":
        hc = tf.GPT2Config(
            n_positions=cfg.block_size,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            n_inner=cfg.hidden,
            activation_function="gelu",  # exact GELU, as physlm's
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
        cls = tf.GPT2LMHeadModel
    elif cfg.mlp == "gated":
        hc = tf.LlamaConfig(
            hidden_size=cfg.n_embd,
            intermediate_size=cfg.hidden,
            num_hidden_layers=cfg.n_layer,
            num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head,
            max_position_embeddings=cfg.block_size,
            rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_base},
            attention_bias=cfg.bias,
            mlp_bias=cfg.bias,
            attention_dropout=0.0,
            **common,
        )
        cls = tf.LlamaForCausalLM
    else:
        raise ValueError(
            f"mlp must be one of {MLPS} for the transformers baseline, got {cfg.mlp!r}"
        )
    return cls(hc)


def hf_differences(cfg: ModelConfig) -> list[str]:
    """Where the transformers model cannot match the physlm shape, in words."""
    out = []
    if cfg.mlp == "gelu":
        if cfg.pos != "learned":
            out.append(f"GPT2LMHeadModel has learned absolute positions (physlm: {cfg.pos})")
        if not cfg.bias:
            out.append("GPT2LMHeadModel has biases in every linear and LayerNorm (physlm: none)")
        if cfg.norm != "layer":
            out.append("GPT2LMHeadModel uses LayerNorm (physlm: RMSNorm)")
    else:
        if cfg.pos != "rope":
            out.append(f"LlamaForCausalLM has rotary positions (physlm: {cfg.pos})")
        elif cfg.rope_fraction != 1.0:
            out.append(f"LlamaForCausalLM rotates all head dims (physlm: {cfg.rope_fraction:g})")
        if cfg.norm != "rms":
            out.append("LlamaForCausalLM uses RMSNorm (physlm: LayerNorm)")
    if cfg.qk_norm:
        out.append("the transformers model has no QK-norm")
    return out


@dataclass(frozen=True)
class RunResult:
    tokens_per_s: float
    warmup_s: float  # wall time of the excluded first steps (compilation included)


def run_physlm(cfg: ModelConfig, tcfg: TrainConfig, data: RandomTokens, warmup: int) -> RunResult:
    """One run of physlm's trainer in a throw-away run directory."""
    with tempfile.TemporaryDirectory(prefix="physlm-bench-") as run_dir:
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's own summary line
            train(cfg, tcfg, data, run_dir, progress=False)
    return RunResult(*data.throughput(warmup, tcfg.steps))


def run_hf(
    cfg: ModelConfig, tcfg: TrainConfig, data: RandomTokens, warmup: int, fused: bool = False
) -> RunResult:
    """A plain loop: forward, cross-entropy, backward, clip, AdamW (physlm's lr, betas, eps and
    weight decay, here on every parameter); `fused` picks torch's fused AdamW kernel, the
    default of transformers' own Trainer."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(tcfg.seed)
    model = hf_model(cfg).to(device).train()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=tcfg.lr,
        betas=(tcfg.beta1, tcfg.beta2),
        eps=tcfg.eps,
        weight_decay=tcfg.weight_decay,
        fused=fused or None,
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    for step in range(tcfg.steps):
        b = data.batch(step)
        x, y = b["x"].to(device), b["y"].to(device)
        with autocast:
            logits = model(input_ids=x, use_cache=False).logits  # no KV cache in training
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if tcfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return RunResult(*data.throughput(warmup, tcfg.steps))


@dataclass(frozen=True)
class BenchResult:
    physlm: list[RunResult]
    hf: list[RunResult]
    params: int  # physlm's, tied embeddings counted once
    gemm_flops: float  # best measured GEMM rate, FLOP/s
    gemm_dtype: str
    gemm_n: int
    gemm_samples: int

    @property
    def physlm_tps(self) -> float:
        return max(r.tokens_per_s for r in self.physlm)

    @property
    def hf_tps(self) -> float:
        return max(r.tokens_per_s for r in self.hf)

    @property
    def ratio(self) -> float:
        return self.physlm_tps / self.hf_tps

    @property
    def utilisation(self) -> float:
        return 6 * self.params * self.physlm_tps / self.gemm_flops


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="physlm bench train", description=__doc__.split("\n")[0])
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"optimizer steps per run (default: ~{TIMED_TOKENS:,} timed tokens)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="first steps left out of the timing (default: a tenth, 3 to 30)",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating physlm/transformers runs")
    p.add_argument(
        "--mlp",
        choices=MLPS,
        default=None,
        help="MLP of both models (default: the bench shape's; gated -> Llama)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: what the cpu scale trains with, else torch's)",
    )
    p.add_argument(
        "--shape",
        choices=SHAPES,
        default=SHAPES[0],
        help="which chapter's cpu model to time (default: Part 3.3's largest)",
    )
    p.add_argument(
        "--same-arch",
        action="store_true",
        help="physlm with the transformers model's positions, biases and norm (same arithmetic)",
    )
    p.add_argument("--compile", action="store_true", help="physlm with TrainConfig(compile=True)")
    p.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="N",
        help="instead of timing, profile N steps of each side (torch.profiler): where a "
        "step's time goes, per phase and per op",
    )
    p.add_argument(
        "--hf-fused",
        action="store_true",
        help="transformers with torch's fused AdamW (its Trainer's default) instead of "
        "plain torch.optim.AdamW",
    )
    args = p.parse_args(argv)
    for name in ("steps", "rounds", "threads", "profile"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name} must be positive, got {value}")
    if args.warmup is not None and args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    return args


def default_steps(tokens_per_step: int, steps: int | None, warmup: int | None) -> tuple[int, int]:
    """(steps, warmup): by default enough steps for ~TIMED_TOKENS timed tokens."""
    if steps is None:
        timed = max(10, math.ceil(TIMED_TOKENS / tokens_per_step))
        warmup = warmup if warmup is not None else min(30, max(3, timed // 10))
        steps = warmup + 1 + timed
    warmup = warmup if warmup is not None else min(30, max(3, steps // 10))
    if steps < warmup + 2:
        raise ValueError(f"--steps ({steps}) must be at least --warmup ({warmup}) + 2")
    return steps, warmup


def run_bench(
    cfg: ModelConfig,
    batch: int,
    seq: int,
    tcfg: TrainConfig,
    warmup: int,
    rounds: int,
    hf_fused: bool = False,
    log=print,
) -> BenchResult:
    """Alternate physlm and transformers runs (which goes first alternates too), measuring the
    GEMM rate before each round and once more at the end; the best rate is the ceiling."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gemm_dtype, gemm_n = default_gemm(device)
    runs: dict[str, list[RunResult]] = {"physlm": [], "transformers": []}
    sides = {"physlm": run_physlm, "transformers": functools.partial(run_hf, fused=hf_fused)}
    rates = []
    for r in range(rounds):
        rates.append(gemm_rate(gemm_n, gemm_dtype, device))
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            runs[name].append(
                sides[name](cfg, tcfg, RandomTokens(cfg.vocab_size, batch, seq), warmup)
            )
        a, b = runs["physlm"][-1], runs["transformers"][-1]
        log(
            f"round {r + 1}: physlm {a.tokens_per_s:,.0f} tokens/s (first steps {a.warmup_s:.1f}"
            f" s), transformers {b.tokens_per_s:,.0f} tokens/s (first steps {b.warmup_s:.1f} s)"
        )
    rates.append(gemm_rate(gemm_n, gemm_dtype, device))
    return BenchResult(
        runs["physlm"],
        runs["transformers"],
        count_params(GPT(cfg)),
        max(rates),
        str(gemm_dtype).removeprefix("torch."),
        gemm_n,
        len(rates),
    )


class ProfiledTokens(RandomTokens):
    """RandomTokens that run `profiler` from the start of step `first` for `count` steps: the
    steps of the real training loop, profiled from inside it."""

    def __init__(self, *args, profiler, first: int, count: int, **kw) -> None:
        super().__init__(*args, **kw)
        self.profiler, self.first, self.count = profiler, first, count

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        if step == self.first:
            self.profiler.start()
        elif step == self.first + self.count:
            self.profiler.stop()
        return super().batch(step)


PHASES = ("forward", "loss", "backward", "clip", "optimizer")


def _annotated(fn: Callable, label: str) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.profiler.record_function(f"phase:{label}"):
            return fn(*args, **kwargs)

    return wrapper


def _phase_marks(side: str, cfg: ModelConfig) -> list:
    """Patches that name each phase of a step in the profile; the code that runs is unchanged.

    physlm: the model's forward, `lm_loss`, accelerate's backward, the trainer's clipping;
    transformers: its model's forward, cross_entropy, Tensor.backward, clip_grad_norm_. Both
    optimizers are already marked by torch (`Optimizer.step#...`).
    """
    import accelerate

    import physlm.train as trainer

    if side == "physlm":
        clip_fn = trainer._clip_fn
        return [
            mock.patch.object(GPT, "forward", _annotated(GPT.forward, "forward")),
            mock.patch.object(trainer, "lm_loss", _annotated(trainer.lm_loss, "loss")),
            mock.patch.object(
                accelerate.Accelerator,
                "backward",
                _annotated(accelerate.Accelerator.backward, "backward"),
            ),
            mock.patch.object(
                trainer, "_clip_fn", lambda *a, **k: _annotated(clip_fn(*a, **k), "clip")
            ),
        ]
    cls = type(hf_model(cfg))
    return [
        mock.patch.object(cls, "forward", _annotated(cls.forward, "forward")),
        mock.patch.object(F, "cross_entropy", _annotated(F.cross_entropy, "loss")),
        mock.patch.object(torch.Tensor, "backward", _annotated(torch.Tensor.backward, "backward")),
        mock.patch.object(
            torch.nn.utils,
            "clip_grad_norm_",
            _annotated(torch.nn.utils.clip_grad_norm_, "clip"),
        ),
    ]


def phase_split(events, wall_us: float, steps: int) -> dict[str, float]:
    """Microseconds per step in each marked phase, the rest of the loop (scheduler, zero_grad,
    data, logging), and the time inside aten ops at all (self time): what is not inside them
    is Python and dispatch between ops (and, here, the profiler's own cost)."""
    totals = dict.fromkeys(PHASES, 0.0)
    for e in events:
        if e.key.startswith("phase:"):
            totals[e.key.removeprefix("phase:")] += e.cpu_time_total
        elif e.key.startswith("Optimizer.step#"):
            totals["optimizer"] += e.cpu_time_total
    in_ops = sum(e.self_cpu_time_total for e in events if e.key.startswith("aten::"))
    out = {"step": wall_us / steps}
    out.update({k: v / steps for k, v in totals.items()})
    out["rest of the loop"] = (wall_us - sum(totals.values())) / steps
    out["inside aten ops (self)"] = in_ops / steps
    return out


def profile_sides(
    cfg: ModelConfig, batch: int, seq: int, tcfg: TrainConfig, first: int, count: int
) -> dict[str, tuple[dict[str, float], str]]:
    """torch.profiler over `count` steps of each side: (phase split, top ops table)."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    sides = {"physlm": run_physlm, "transformers": run_hf}
    for name, side in sides.items():
        prof = profile(activities=[ProfilerActivity.CPU])
        data = ProfiledTokens(cfg.vocab_size, batch, seq, profiler=prof, first=first, count=count)
        with contextlib.ExitStack() as marks:
            for patch in _phase_marks(name, cfg):
                marks.enter_context(patch)
            side(cfg, tcfg, data, first)
        wall = (data.started[first + count] - data.started[first]) * 1e6
        table = prof.key_averages().table(
            sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=48
        )
        out[name] = (phase_split(prof.key_averages(), wall, count), table)
    return out


def report(res: BenchResult, cuda: bool) -> list[str]:
    """The summary lines; `ratio physlm/transformers: X.XX` is the one scripts read."""

    def median(runs: list[RunResult]) -> float:
        return statistics.median(r.tokens_per_s for r in runs)

    label = "model FLOP utilisation" if cuda else "matmul utilisation"
    return [
        f"physlm tokens/s: {res.physlm_tps:,.0f} (best round; median {median(res.physlm):,.0f})",
        f"transformers tokens/s: {res.hf_tps:,.0f} (best round; median {median(res.hf):,.0f})",
        f"ratio physlm/transformers: {res.ratio:.2f}",
        f"{label} physlm/{res.gemm_dtype} GEMM: {res.utilisation:.1%} "
        f"(6 x {res.params:,} params x {res.physlm_tps:,.0f} tokens/s = "
        f"{6 * res.params * res.physlm_tps / 1e9:.2f} GFLOP/s; {res.gemm_dtype} GEMM n="
        f"{res.gemm_n}: {res.gemm_flops / 1e9:.1f} GFLOP/s, best of {res.gemm_samples})",
    ]


def _scale_threads() -> int | None:
    """The thread count the `cpu` scale trains this model with (one: tiny models)."""
    try:
        from physlm.scales import part3_3
    except ImportError:
        return None
    return part3_3("cpu").threads


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        print(
            f"physlm bench train: error: the baseline needs transformers ({exc}); "
            "pip install transformers",
            file=sys.stderr,
        )
        return 2
    threads = args.threads if args.threads is not None else _scale_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    shape, source = bench_shape(args.shape)
    cfg: ModelConfig = shape["model"]
    if args.mlp is not None:
        cfg = cfg.with_(mlp=args.mlp)
    if args.same_arch:
        cfg = as_transformers(cfg)
    batch, seq = shape["batch_size"], shape["seq_len"]
    if seq > cfg.block_size:
        raise ValueError(f"bench seq_len {seq} exceeds the model's block_size {cfg.block_size}")
    steps, warmup = default_steps(batch * seq, args.steps, args.warmup)
    tcfg = TrainConfig(
        steps=steps,
        warmup_steps=warmup,
        checkpoint_every=steps,
        log_every=steps,
        compile=args.compile,
    )
    cuda = torch.cuda.is_available()
    where = torch.cuda.get_device_name() if cuda else cpu_threads()
    hf_name = "GPT2LMHeadModel" if cfg.mlp == "gelu" else "LlamaForCausalLM"
    hf_params = sum(p.numel() for p in hf_model(cfg).parameters())
    print(f"shape: {source}")
    print(
        f"model: L{cfg.n_layer} H{cfg.n_head} D{cfg.n_embd} V{cfg.vocab_size} "
        f"mlp={cfg.mlp} pos={cfg.pos} norm={cfg.norm}, {count_params(GPT(cfg)):,} params "
        f"(transformers {hf_name}: {hf_params:,}); batch {batch} x seq {seq}; {where}"
    )
    for diff in hf_differences(cfg):
        print(f"  {diff}")
    print(
        f"{steps} steps per run, first {warmup} untimed, {args.rounds} rounds; physlm "
        f"compile={args.compile}, fused AdamW; transformers: sdpa attention, no KV cache, "
        f"{'fused' if args.hf_fused else 'plain'} torch.optim.AdamW"
    )
    if args.profile is not None:
        steps = max(steps, warmup + args.profile + 2)
        tcfg = TrainConfig(
            steps=steps, warmup_steps=warmup, checkpoint_every=steps, log_every=steps
        )
        for name, (phases, table) in profile_sides(
            cfg, batch, seq, tcfg, warmup, args.profile
        ).items():
            print(f"\n{name}: " + ", ".join(f"{k} {v / 1e3:.2f} ms" for k, v in phases.items()))
            print(table)
        return 0
    res = run_bench(
        cfg,
        batch,
        seq,
        tcfg,
        warmup,
        args.rounds,
        hf_fused=args.hf_fused,
        log=lambda line: print(line, flush=True),
    )
    for line in report(res, cuda):
        print(line)
    return 0
