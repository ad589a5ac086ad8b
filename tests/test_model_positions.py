"""Part 1's attention variants (GPT_rel, GPT_pos, GPT_uni) against independent computations."""

import math

import pytest
import torch
from causality import assert_shape_and_causality

from physlm.model import GPT, ModelConfig, count_params, uniform_weights

NEW = ("relative", "position_only", "uniform")


def small(pos: str, **kw) -> ModelConfig:
    args = dict(vocab_size=30, n_layer=2, n_head=2, n_embd=32, block_size=16, pos=pos) | kw
    return ModelConfig(**args)


def hand_count(cfg: ModelConfig) -> int:
    """Parameters written out from the architecture, independent of the module tree."""
    d, V, L, H = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.n_head
    lin = d * d + (d if cfg.bias else 0)  # one d -> d linear map
    norm = 2 * d if cfg.bias and cfg.norm == "layer" else d
    rows = cfg.rel_max_distance + 1 if cfg.rel_max_distance else cfg.block_size
    if cfg.pos == "relative":
        attn, shared = 4 * lin + 2 * lin, rows * d  # q, k, v, out; K_r, Q_r; one shared table
    elif cfg.pos == "position_only":
        attn, shared = 2 * lin + H * rows, 0  # v, out; one scalar per head and distance
    else:  # uniform: v and out only
        attn, shared = 2 * lin, 0
    if cfg.qk_norm:
        hd = cfg.head_dim
        attn += 2 * (2 * hd if cfg.bias and cfg.norm == "layer" else hd)
    mlp = 2 * d * 4 * d + ((4 * d + d) if cfg.bias else 0)
    emb = V * d * (1 if cfg.tie_embeddings else 2)
    return emb + shared + L * (norm + attn + norm + mlp) + norm


@pytest.mark.parametrize(
    "pos, kw",
    [
        ("relative", {}),
        ("relative", dict(rel_max_distance=4, bias=True)),
        ("relative", dict(qk_norm=True, tie_embeddings=False)),
        ("position_only", {}),
        ("position_only", dict(rel_max_distance=3, bias=True)),
        ("uniform", {}),
        ("uniform", dict(bias=True, n_head=4)),
    ],
)
def test_parameter_count_matches_hand_count(pos, kw):
    cfg = small(pos, **kw)
    assert count_params(GPT(cfg)) == hand_count(cfg)


def test_uniform_has_no_query_key_parameters():
    names = [n for n, _ in GPT(small("uniform")).named_parameters()]
    assert not any("qkv" in n or "pos_logits" in n or "rel_" in n for n in names)


@pytest.mark.parametrize("pos", NEW)
def test_output_shape_and_causality(pos):
    """No output position may depend on a later token."""
    torch.manual_seed(0)
    assert_shape_and_causality(GPT(small(pos, rel_max_distance=5)).eval())


@pytest.mark.parametrize("pos", NEW)
def test_forward_equals_weights_times_values(pos):
    """The fused path (SDPA with a bias, or a weight matmul) equals the explicit weights @ v."""
    torch.manual_seed(1)
    model = GPT(small(pos, rel_max_distance=5, bias=True)).eval()
    attn = model.blocks[0].attn
    x = torch.randn(3, 11, 32)
    ops = model.position_operands(11)
    w = attn.attention_weights(x, ops)
    assert w.shape == (3, 2, 11, 11)
    assert torch.allclose(w.sum(-1), torch.ones(3, 2, 11), atol=1e-6)
    assert torch.all(w.triu(1) == 0)
    v = attn.qkv(x)[..., 64:] if pos == "relative" else attn.v(x)
    v = v.view(3, 11, 2, 16).transpose(1, 2)
    expect = attn.proj((w @ v).transpose(1, 2).reshape(3, 11, 32))
    assert torch.allclose(attn(x, ops), expect, atol=1e-5)


def naive_relative_logits(attn, table, x, max_distance):
    """DeBERTa's c2p + p2c score, pair by pair in float64, from the module's own weights."""
    d = x.shape[-1]
    H = attn.cfg.n_head
    hd = d // H
    W = {n: p.double() for n, p in attn.named_parameters()}
    xd, td = x.double()[0], table.double()
    q, k = (xd @ W["qkv.weight"].T)[:, :d], (xd @ W["qkv.weight"].T)[:, d : 2 * d]
    q_r, k_r = td @ W["rel_q.weight"].T, td @ W["rel_k.weight"].T
    T = x.shape[1]
    out = torch.full((H, T, T), float("-inf"), dtype=torch.float64)
    for h in range(H):
        s = slice(h * hd, (h + 1) * hd)
        for i in range(T):
            for j in range(i + 1):
                r = min(i - j, max_distance)
                score = q[i, s] @ k[j, s] + q[i, s] @ k_r[r, s] + q_r[r, s] @ k[j, s]
                out[h, i, j] = score / math.sqrt(3 * hd)
    return out


def test_relative_scores_equal_deberta_formula_with_clipping():
    torch.manual_seed(2)
    model = GPT(small("relative", rel_max_distance=3)).eval()
    with torch.no_grad():
        model.wre.weight.normal_(0.0, 1.0)  # make the position terms matter
    attn = model.blocks[1].attn
    x = torch.randn(1, 9, 32)
    w = attn.attention_weights(x, model.position_operands(9))[0]
    expect = torch.softmax(naive_relative_logits(attn, model.wre.weight, x, 3), dim=-1)
    assert torch.allclose(w.double(), expect, atol=1e-5)


def test_relative_scores_are_translation_invariant():
    """A pair's score depends on the two contents and i - j only, not on where the pair sits."""
    torch.manual_seed(3)
    model = GPT(small("relative")).eval()
    with torch.no_grad():
        model.wre.weight.normal_(0.0, 1.0)
    attn = model.blocks[0].attn
    x = torch.randn(1, 6, 32)
    longer = torch.cat((torch.randn(1, 5, 32), x), dim=1)
    ops_short, ops_long = model.position_operands(6), model.position_operands(11)
    q, k, _, bias_s, scale = attn._relative_parts(x, ops_short)
    short = q @ k.transpose(-1, -2) * scale + bias_s
    q, k, _, bias_l, _ = attn._relative_parts(longer, ops_long)
    long = (q @ k.transpose(-1, -2) * scale + bias_l)[..., 5:, 5:]
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    assert torch.allclose(short[..., causal], long[..., causal], atol=1e-5)
    # and the position terms do act: the same content at another distance scores differently
    same = torch.cat((x[:, :1], x[:, :1], torch.randn(1, 3, 32), x[:, :1]), dim=1)
    _, _, _, bias, _ = attn._relative_parts(same, model.position_operands(6))
    assert not torch.isclose(bias[0, 0, 1, 0], bias[0, 0, 5, 0], atol=1e-4)


def test_position_only_weights_ignore_content_and_follow_the_table():
    torch.manual_seed(4)
    model = GPT(small("position_only", rel_max_distance=4)).eval()
    attn = model.blocks[0].attn
    ops = model.position_operands(10)
    a = attn.attention_weights(torch.randn(1, 10, 32), ops)
    b = attn.attention_weights(torch.randn(1, 10, 32) * 5 + 1, ops)
    assert torch.equal(a, b)
    table = attn.pos_logits.detach()
    for h in range(2):
        for i in range(10):
            logits = torch.stack([table[h, min(i - j, 4)] for j in range(i + 1)])
            assert torch.allclose(a[0, h, i, : i + 1], torch.softmax(logits, 0), atol=1e-6)


def test_uniform_equals_moving_average_of_values():
    """Head h (0-based) outputs the mean of v over tokens max(0, i - 2^h + 1) .. i."""
    torch.manual_seed(5)
    model = GPT(small("uniform", n_head=4, n_embd=32)).eval()
    attn = model.blocks[1].attn
    x = torch.randn(2, 13, 32)
    v = attn.v(x).detach()
    heads = []
    for h in range(4):
        vh = v[..., h * 8 : (h + 1) * 8]
        avg = torch.stack([vh[:, max(0, i - 2**h + 1) : i + 1].mean(1) for i in range(13)], dim=1)
        heads.append(avg)
    expect = attn.proj(torch.cat(heads, dim=-1))
    assert torch.allclose(attn(x, model.position_operands(13)), expect, atol=1e-6)
    head0 = attn.attention_weights(x, model.position_operands(13))[0, 0]
    assert torch.equal(head0, torch.eye(13))  # window 1: the token itself


@pytest.mark.parametrize("pos", NEW)
def test_training_step_reaches_every_parameter(pos):
    torch.manual_seed(6)
    model = GPT(small(pos, rel_max_distance=4, tie_embeddings=False))
    x = torch.randint(0, 30, (2, 10))
    model(x).logsumexp(-1).mean().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert unused == []


@pytest.mark.parametrize("pos", NEW)
def test_dtype_moves_and_autocast(pos):
    """Operands follow `.to(dtype)`; under bf16 autocast the output stays close to float32."""
    torch.manual_seed(7)
    model = GPT(small(pos)).eval()
    x = torch.randint(0, 30, (1, 8))
    assert model.to(torch.float64)(x).dtype == torch.float64
    model = model.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x).float()
    assert torch.allclose(low, model(x), atol=0.05)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(pos="uniform", qk_norm=True), "qk_norm"),
        (dict(pos="position_only", qk_norm=True), "qk_norm"),
        (dict(pos="relative", rel_max_distance=0), "rel_max_distance"),
        (dict(pos="relative", rel_max_distance=16), "rel_max_distance"),
        (dict(pos="position_only", rel_max_distance=2.5), "rel_max_distance"),
        (dict(pos="relative", rel_max_distance=True), "rel_max_distance"),
    ],
)
def test_bad_part1_config_names_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        small(**bad)


def test_uniform_heads_past_the_block_average_the_whole_prefix():
    """Heads with windows 1, 2, 4, 8, 16 fit a 16-block; a sixth (32) repeats the fifth."""
    assert small("uniform", n_head=4, n_embd=32).max_uniform_heads == 5
    cfg = small("uniform", n_head=6, n_embd=48)
    w = uniform_weights(cfg.n_head, cfg.block_size, torch.device("cpu"))
    assert torch.equal(w[5], w[4])
    prefix = torch.ones(16, 16).tril()
    torch.testing.assert_close(w[5], prefix / prefix.sum(-1, keepdim=True))


def test_relative_gradients_equal_the_deberta_formula():
    """The gathered c2p/p2c terms back-propagate as the pair-by-pair formula does."""
    torch.manual_seed(4)
    model = GPT(small("relative", rel_max_distance=3)).double()
    with torch.no_grad():
        model.wre.weight.normal_(0.0, 1.0)
    attn = model.blocks[0].attn
    x = torch.randn(1, 9, 32, dtype=torch.float64)
    target = torch.randn(2, 9, 9, dtype=torch.float64)
    w = attn.attention_weights(x, model.position_operands(9))[0]
    (w * target).sum().backward()
    got = {n: p.grad.clone() for n, p in attn.named_parameters() if p.grad is not None}
    got["table"] = model.wre.weight.grad.clone()
    model.zero_grad()
    expect = torch.softmax(naive_relative_logits(attn, model.wre.weight, x, 3), dim=-1)
    (expect * target).sum().backward()
    assert set(got) >= {"qkv.weight", "rel_q.weight", "rel_k.weight", "table"}
    for name, g in got.items():
        ref = model.wre.weight.grad if name == "table" else dict(attn.named_parameters())[name].grad
        assert torch.allclose(g, ref, atol=1e-10), name
