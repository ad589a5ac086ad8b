"""`physlm bench train`, the GEMM-rate helper, and the fast paths the bench led to."""

import copy
import re

import pytest
import torch

from physlm.bench import matmul
from physlm.bench import train as bench
from physlm.model import GPT, ModelConfig, apply_rope, count_params, lm_loss, rope_tables
from physlm.train import TrainConfig, _clip_fn, make_accelerator

SMALL = ModelConfig(vocab_size=40, n_layer=2, n_head=2, n_embd=32, block_size=16)


def _number(line: str) -> float:
    return float(re.search(r"([\d,]+(?:\.\d+)?)", line.split(":", 1)[1]).group(1).replace(",", ""))


@pytest.mark.parametrize("mlp", ["gelu", "gated"])
def test_bench_runs_end_to_end_and_its_summary_is_consistent(mlp, capsys):
    pytest.importorskip("transformers", reason="the bench's baseline needs transformers")
    argv = ["--steps", "6", "--warmup", "2", "--rounds", "1", "--threads", "1", "--mlp", mlp]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    ratio = [ln for ln in lines if ln.startswith("ratio physlm/transformers: ")]
    assert len(ratio) == 1 and re.fullmatch(r"ratio physlm/transformers: \d+\.\d\d", ratio[0])
    ours = _number(next(ln for ln in lines if ln.startswith("physlm tokens/s:")))
    theirs = _number(next(ln for ln in lines if ln.startswith("transformers tokens/s:")))
    assert _number(ratio[0]) == pytest.approx(ours / theirs, abs=0.006)
    util = next(ln for ln in lines if ln.startswith("matmul utilisation physlm/float32 GEMM: "))
    m = re.search(r"GEMM: ([\d.]+)% \(6 x ([\d,]+) params x ([\d,]+) tokens/s .* "
                  r"GEMM n=1024: ([\d.]+) GFLOP/s", util)
    pct, params, tps, gflops = (float(g.replace(",", "")) for g in m.groups())
    shape, _ = bench.bench_shape()
    assert params == count_params(GPT(shape["model"].with_(mlp=mlp)))
    assert tps == pytest.approx(ours, abs=1)
    assert pct == pytest.approx(100 * 6 * params * tps / (gflops * 1e9), rel=0.01, abs=0.051)


def test_transformers_models_have_the_physlm_shape():
    """Counted independently: GPT2 = physlm with learned positions and biases; Llama = gated."""
    pytest.importorskip("transformers", reason="the bench's baseline needs transformers")
    gpt2 = bench.hf_model(SMALL)
    twin = GPT(SMALL.with_(pos="learned", bias=True))
    assert sum(p.numel() for p in gpt2.parameters()) == count_params(twin)
    assert gpt2.lm_head.weight.data_ptr() == gpt2.transformer.wte.weight.data_ptr()
    c = gpt2.config
    assert (c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.n_positions) == (2, 2, 32, 40, 16)
    assert c.resid_pdrop == c.embd_pdrop == c.attn_pdrop == 0.0
    gated = SMALL.with_(mlp="gated", norm="rms")
    llama = bench.hf_model(gated)
    assert sum(p.numel() for p in llama.parameters()) == count_params(GPT(gated))
    assert bench.hf_differences(gated) == ["LlamaForCausalLM rotates all head dims (physlm: 0.25)"]
    assert any("learned absolute" in d for d in bench.hf_differences(SMALL))


def test_random_tokens_are_a_pure_function_of_the_step_and_time_the_steps():
    data = bench.RandomTokens(vocab_size=7, batch_size=3, seq_len=5, seed=1)
    a, b = data.batch(2), bench.RandomTokens(7, 3, 5, seed=1).batch(2)
    assert all(torch.equal(a[k], b[k]) for k in ("x", "y", "mask"))
    assert a["x"].shape == (3, 5) and a["mask"].all() and int(a["x"].max()) < 7
    assert torch.equal(a["x"][:, 1:], a["y"][:, :-1])  # y is x shifted by one
    data.started = {0: 10.0, 1: 11.0, 2: 12.0, 3: 13.5, 4: 15.0}
    tps, warm = data.throughput(warmup=2, steps=5)  # steps 2 and 3 took 3 s
    assert tps == pytest.approx(2 * 3 * 5 / 3.0) and warm == pytest.approx(2.0)
    with pytest.raises(ValueError, match="warmup"):
        data.throughput(warmup=4, steps=5)
    with pytest.raises(ValueError, match="batch_size"):
        bench.RandomTokens(7, 0, 5)


def test_default_steps_time_enough_tokens_and_respect_explicit_values():
    steps, warmup = bench.default_steps(256, None, None)
    assert (steps - warmup - 1) * 256 >= bench.TIMED_TOKENS and 3 <= warmup <= 30
    assert bench.default_steps(256, 50, 5) == (50, 5)
    with pytest.raises(ValueError, match="--steps"):
        bench.default_steps(256, 4, 3)
    with pytest.raises(SystemExit):
        bench._parse(["--rounds", "0"])


def test_fallback_shape_when_scales_has_none(monkeypatch):
    import physlm.scales

    monkeypatch.delattr(physlm.scales, "BENCH_TRAIN", raising=False)
    shape, source = bench.bench_shape()
    assert shape is bench.FALLBACK_BENCH_TRAIN and "FALLBACK" in source


def test_gemm_rate_counts_two_n_cubed_per_matmul(monkeypatch):
    clock = iter(range(10**6))
    monkeypatch.setattr(matmul.time, "perf_counter", lambda: float(next(clock)))
    n, min_flop = 64, 2e6
    reps = int(min_flop // (2 * n**3))
    assert reps == 3
    # each repeat's two clock reads are one fake second apart
    assert matmul.gemm_rate(n, min_flop=min_flop, repeats=2) == pytest.approx(2 * n**3 * reps)


def test_gemm_rate_is_a_plausible_rate_and_refuses_bad_sizes():
    rate = matmul.gemm_rate(128, repeats=2, min_flop=1e7)
    assert 1e8 < rate < 1e14
    with pytest.raises(ValueError, match="n must"):
        matmul.gemm_rate(0)


# The fast paths the bench motivated, against the straightforward code they replaced.


@pytest.mark.parametrize("width, heads, fraction", [(64, 2, 0.25), (48, 2, 0.25), (32, 1, 1.0)])
def test_model_rotary_operands_equal_apply_rope(width, heads, fraction):
    cfg = ModelConfig(vocab_size=10, n_embd=width, n_head=heads, rope_fraction=fraction)
    from physlm.model import rotary_operands

    x = torch.randn(2, heads, 9, cfg.head_dim, dtype=torch.float64)
    cos, sin = rope_tables(cfg, 9, torch.device("cpu"))
    c, s, r = (t.double() for t in rotary_operands(cfg, 9, torch.device("cpu")))
    assert torch.allclose(x * c + (x @ r) * s, apply_rope(x, cos.double(), sin.double()),
                          atol=1e-12)


def test_trainer_clipping_equals_clip_grad_norm():
    torch.manual_seed(0)
    model = GPT(SMALL)
    twin = copy.deepcopy(model)
    x = torch.randint(0, 40, (3, 16))
    for m in (model, twin):
        (lm_loss(m(x), x) * 100).backward()
    _clip_fn(make_accelerator(TrainConfig(steps=1)), model, 1.0)()
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert norm == pytest.approx(1.0, abs=1e-5)


def test_named_shapes_are_the_chapters_cpu_models_and_same_arch_matches_transformers():
    """Each --shape is its chapter's own cpu model; --same-arch leaves no difference to report."""
    from physlm.experiments import part4_1 as p41
    from physlm.scales import BENCH_TRAIN, part1, part4_1

    assert bench.bench_shape("part3_3") == (BENCH_TRAIN, "physlm.scales.BENCH_TRAIN")
    shape, _ = bench.bench_shape("part1")
    plan = part1("cpu")
    assert (shape["batch_size"], shape["seq_len"]) == (plan.batch_size, plan.seq_len)
    assert shape["model"] == plan.model_config(shape["model"].vocab_size, "rope")
    shape, _ = bench.bench_shape("part4_1")
    plan = part4_1("cpu")
    assert shape["model"] == p41.model_config(plan, "RoPE", p41.make_data(plan))
    assert shape["batch_size"] == plan.batch_size
    assert shape["seq_len"] <= shape["model"].block_size
    for cfg in (SMALL, SMALL.with_(mlp="gated", qk_norm=True)):
        twin = bench.as_transformers(cfg)
        assert bench.hf_differences(twin) == []
        if cfg.mlp == "gelu":
            pytest.importorskip("transformers", reason="the bench's baseline needs transformers")
            hf = sum(p.numel() for p in bench.hf_model(twin).parameters())
            assert hf == count_params(GPT(twin))
    with pytest.raises(ValueError, match="shape must be one of"):
        bench.bench_shape("part9")
