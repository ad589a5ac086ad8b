"""Canon layers (Part 4.1): the layer against F.conv1d, init, placements, validation, causality."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from physlm.measure.generation import sample
from physlm.model import (
    GPT,
    Canon,
    ModelConfig,
    canon_shifted_sum,
    count_params,
    llama_canon,
)

SMALL = dict(vocab_size=30, n_layer=2, n_head=2, n_embd=32, block_size=16)


def conv1d_reference(x: torch.Tensor, weight: torch.Tensor, residual: bool) -> torch.Tensor:
    """The paper's fallback path: Conv1d with k - 1 zeros of padding, first T outputs kept."""
    T, m, k = x.shape[1], weight.shape[0], weight.shape[-1]
    y = F.conv1d(x.transpose(1, 2), weight, padding=k - 1, groups=m)[..., :T].transpose(1, 2)
    return x + y if residual else y


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 17])
@pytest.mark.parametrize("residual", [True, False])
def test_shifted_sum_equals_causal_conv1d(T, residual):
    g = torch.Generator().manual_seed(T)
    x = torch.randn(3, T, 7, generator=g, dtype=torch.float64)
    w = torch.randn(7, 1, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        canon_shifted_sum(x, w, residual), conv1d_reference(x, w, residual), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("T", [2, 6])
@pytest.mark.parametrize("residual", [True, False])
def test_shifted_sum_gradients(T, residual):
    """The hand-written backward against finite differences, and against autograd of conv1d."""
    g = torch.Generator().manual_seed(10 + T)
    x = torch.randn(2, T, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 1, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: canon_shifted_sum(a, b, residual), (x, w))
    up = torch.randn(2, T, 5, generator=g, dtype=torch.float64)
    ours = torch.autograd.grad((canon_shifted_sum(x, w, residual) * up).sum(), (x, w))
    theirs = torch.autograd.grad((conv1d_reference(x, w, residual) * up).sum(), (x, w))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_shifted_sum_skips_weight_grad_when_frozen():
    x = torch.randn(2, 5, 3, requires_grad=True)
    w = torch.randn(3, 1, 4)
    canon_shifted_sum(x, w).sum().backward()
    assert x.grad is not None and w.grad is None


def test_canon_init_is_conv1d_default():
    """Same seed, same draws as nn.Conv1d(m, m, 4, groups=m): U(-1/2, 1/2) for fan-in 4."""
    torch.manual_seed(3)
    ours = Canon(64).weight.detach()
    torch.manual_seed(3)
    conv = nn.Conv1d(64, 64, 4, groups=64, bias=False).weight.detach()
    assert ours.shape == conv.shape == (64, 1, 4)
    assert torch.equal(ours, conv)


def test_gpt_keeps_canon_init_off_the_002_normal():
    """After GPT's 0.02 init the Canon weights are still U(-1/2, 1/2): std 1/sqrt(12)."""
    torch.manual_seed(0)
    cfg = ModelConfig(**{**SMALL, "n_embd": 64}, canon="ABCD", mlp="gated")
    model = GPT(cfg)
    canon = torch.cat([p.flatten() for n, p in model.named_parameters() if "canon" in n])
    others = [p for n, p in model.named_parameters() if "canon" not in n and p.dim() >= 2]
    n = canon.numel()
    assert n == 4 * cfg.n_layer * (64 + 3 * 64 + 64 + 2 * cfg.hidden)
    assert canon.abs().max() <= 0.5
    # the sample std of n uniform draws is within 5 of its standard errors of 1/sqrt(12)
    assert abs(canon.std().item() - 1 / math.sqrt(12)) < 5 * 0.5 / math.sqrt(12) / math.sqrt(n)
    assert abs(canon.mean().item()) < 5 / math.sqrt(12) / math.sqrt(n)
    assert all(p.std().item() < 0.03 for p in others)


def hand_canon_params(cfg: ModelConfig) -> int:
    width = {"A": cfg.n_embd, "B": 3 * cfg.n_embd, "C": cfg.n_embd}
    width["D"] = 2 * cfg.hidden if cfg.mlp == "gated" else cfg.hidden
    return 4 * cfg.n_layer * sum(width[p] for p in cfg.canon)


@pytest.mark.parametrize("canon", ["A", "B", "C", "D", "AC", "ABCD"])
@pytest.mark.parametrize("mlp", ["gelu", "gated"])
def test_parameter_count(canon, mlp):
    base = GPT(ModelConfig(**SMALL, mlp=mlp))
    cfg = ModelConfig(**SMALL, mlp=mlp, canon=canon)
    assert count_params(GPT(cfg)) == count_params(base) + hand_canon_params(cfg)


VARIANTS = [
    dict(),
    dict(mlp="gated", norm="rms", qk_norm=True),
    dict(pos="learned", bias=True),
    dict(pos="none"),
    dict(split_qkv=True, qk_norm=True),
    dict(canon_residual=False),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("canon", ["A", "B", "C", "D", "ABCD"])
def test_every_placement_is_causal(canon, variant):
    """Change token t: no output before t may move, for every t (outputs at t must)."""
    torch.manual_seed(1)
    model = GPT(ModelConfig(**SMALL, canon=canon, **variant)).eval()
    x = torch.randint(0, 30, (2, 10))
    with torch.no_grad():
        base = model(x)
        for t in range(10):
            x2 = x.clone()
            x2[:, t] = (x2[:, t] + 1) % 30
            y = model(x2)
            assert torch.equal(y[:, :t], base[:, :t]), f"canon={canon}: output before {t} moved"
            assert not torch.allclose(y[:, t:], base[:, t:])


@pytest.mark.parametrize("canon", ["A", "C"])
@pytest.mark.parametrize("pos", ["relative", "position_only", "uniform"])
def test_part1_positions_take_canon_a_and_c(canon, pos):
    torch.manual_seed(2)
    model = GPT(ModelConfig(**SMALL, pos=pos, canon=canon)).eval()
    x = torch.randint(0, 30, (2, 10))
    x2 = x.clone()
    x2[:, 6:] = (x2[:, 6:] + 1) % 30
    with torch.no_grad():
        assert torch.equal(model(x)[:, :6], model(x2)[:, :6])


@pytest.mark.parametrize("canon", ["A", "B", "C", "D", "ABCD"])
@pytest.mark.parametrize("variant", VARIANTS[:5])
def test_zero_weights_are_the_identity(canon, variant):
    """Residual Canon layers with zero weights leave the model it is added to unchanged."""
    torch.manual_seed(4)
    plain = GPT(ModelConfig(**SMALL, **variant)).eval()
    model = GPT(ModelConfig(**SMALL, canon=canon, **variant)).eval()
    state = {k: torch.zeros_like(v) if "canon" in k else v for k, v in model.state_dict().items()}
    state.update(plain.state_dict())
    model.load_state_dict(state)
    x = torch.randint(0, 30, (3, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain(x), rtol=1e-6, atol=1e-6)


def test_current_token_tap_scales_the_placement_input():
    """Canon-A with only the current-token tap c is (1 + c) * ln1(x) going into attention."""
    torch.manual_seed(5)
    model = GPT(ModelConfig(**SMALL, canon="A")).eval()
    c = torch.rand(SMALL["n_embd"])
    seen = {}
    block = model.blocks[0]
    block.attn.register_forward_pre_hook(lambda m, args: seen.update(h=args[0]))
    with torch.no_grad():
        block.canon_a.weight.zero_()
        block.canon_a.weight[:, 0, -1] = c
        x = torch.randn(2, 9, SMALL["n_embd"])
        block(x, (model.rope_c[:9], model.rope_s[:9], model.rope_r))
        torch.testing.assert_close(seen["h"], block.ln1(x) * (1 + c))


def test_residual_switch_changes_the_layer():
    x = torch.randn(2, 6, 4)
    layer = Canon(4, residual=False)
    torch.testing.assert_close(layer(x) + x, canon_shifted_sum(x, layer.weight, True))


def test_frozen_canon_weights_stay_at_init():
    torch.manual_seed(6)
    model = GPT(ModelConfig(**SMALL, canon="ABCD", canon_frozen=True))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if "canon" in n}
    assert frozen and not any(p.requires_grad for n, p in model.named_parameters() if "canon" in n)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randint(0, 30, (2, 8))
    F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    opt.step()
    for n, p in model.named_parameters():
        if "canon" in n:
            assert torch.equal(p, frozen[n]) and p.grad is None


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(canon="BA"), "distinct letters of 'ABCD' in that order"),
        (dict(canon="AA"), "distinct letters"),
        (dict(canon="E"), "distinct letters"),
        (dict(canon="abcd"), "distinct letters"),
        (dict(canon=None), "ModelConfig.canon"),
        (dict(canon="B", pos="relative"), "'B' acts on q|k|v"),
        (dict(canon="B", pos="uniform"), "'B' acts on q|k|v"),
        (dict(canon="AC", mlp="none"), "mlp='none'"),
        (dict(canon="D", mlp="none"), "mlp='none'"),
        (dict(canon_residual=1), "canon_residual must be a bool"),
        (dict(canon_frozen="yes"), "canon_frozen must be a bool"),
    ],
)
def test_bad_canon_config_is_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**{**SMALL, **changes})


def test_canon_round_trips_through_dict():
    cfg = ModelConfig(**SMALL, canon="AC", canon_residual=False)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_no_canon_adds_nothing():
    """canon='' (the default) registers no Canon module and no parameter."""
    model = GPT(ModelConfig(**SMALL, mlp="gated"))
    assert not any(isinstance(m, Canon) for m in model.modules())
    assert not any("canon" in n for n, _ in model.state_dict().items())


def test_llama_canon_preset():
    cfg = llama_canon(100, n_layer=3)
    recipe = (cfg.mlp, cfg.norm, cfg.qk_norm, cfg.pos, cfg.canon)
    assert recipe == ("gated", "rms", True, "rope", "ABCD")
    assert cfg.n_layer == 3 and cfg.rotary_dim == cfg.head_dim // 4
    assert llama_canon(100, pos="none").pos == "none"
    GPT(llama_canon(100, n_layer=1, n_embd=32, block_size=8))


def test_greedy_generation_agrees_with_one_full_forward():
    """There is no KV cache: `sample` re-reads the prefix, so each greedy token must be the
    argmax of one forward over the whole generated sequence at its position."""
    torch.manual_seed(7)
    model = GPT(llama_canon(30, n_layer=2, n_head=2, n_embd=32, block_size=16)).eval()
    prompts = torch.randint(0, 30, (3, 4))
    gen = torch.tensor(sample(model, prompts, max_new=8, temperature=0.0))
    full = torch.cat((prompts, gen), dim=1)
    with torch.no_grad():
        logits = model(full[:, :-1])
    assert torch.equal(logits[:, 3:].argmax(-1), gen)


@pytest.mark.parametrize("frozen", [False, True])
def test_canon_run_resumes_to_the_uninterrupted_result(tmp_path, frozen):
    """Canon weights (trained, or frozen and outside the optimizer) survive a checkpoint."""
    from toydata import CountingData

    from physlm.train import TrainConfig, train

    cfg = llama_canon(16, n_layer=1, n_head=2, n_embd=32, block_size=16, canon_frozen=frozen)
    tcfg = TrainConfig(steps=16, lr=3e-3, warmup_steps=2, log_every=4, checkpoint_every=8)
    full, _ = train(cfg, tcfg, CountingData(), tmp_path / "full", progress=False)
    train(cfg, tcfg, CountingData(), tmp_path / "cut", progress=False, stop_after=12)
    resumed, _ = train(cfg, tcfg, CountingData(), tmp_path / "cut", progress=False)
    a, b = full.state_dict(), resumed.state_dict()
    assert any("canon" in k for k in a) and list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    torch.manual_seed(tcfg.seed)  # the trainer seeds, then builds the model
    init = GPT(cfg).state_dict()
    moved = [not torch.equal(init[k], a[k]) for k in a if "canon" in k]
    assert not any(moved) if frozen else all(moved)


def test_bench_canon_runs_and_reports_ratios(capsys):
    from physlm.bench import canon as bench

    tiny = ["--layers", "1", "--width", "32", "--batch", "2", "--seq", "8"]
    assert bench.main([*tiny, "--rounds", "1", "--reps", "1", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("ratio conv1d/shifted-sum") == 3  # A/C, B, D
    assert "canon ABCD" in out and "x1.000 of no canon" in out
    with pytest.raises(SystemExit):
        bench.main(["--rounds", "0"])
    assert "--rounds must be positive" in capsys.readouterr().err
