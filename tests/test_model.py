"""The model: shapes, hand-counted parameters, causality, every switch."""

import math

import pytest
import torch
from causality import assert_shape_and_causality

from physlm.model import GPT, ModelConfig, apply_rope, count_params, gpt2_shape, lm_loss


def hand_count(cfg: ModelConfig) -> int:
    """Parameter count written out from the architecture, independent of the module tree."""
    d, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    norm = d if cfg.norm == "rms" or not cfg.bias else 2 * d
    attn = 4 * d * d + (4 * d if cfg.bias else 0)
    if cfg.qk_norm:
        hd = cfg.head_dim
        attn += 2 * (hd if cfg.norm == "rms" or not cfg.bias else 2 * hd)
    h = cfg.hidden
    if cfg.mlp == "gelu":
        mlp = 2 * d * h + ((h + d) if cfg.bias else 0)
    elif cfg.mlp == "gated":
        mlp = 3 * d * h + ((2 * h + d) if cfg.bias else 0)
    else:
        mlp = 0
    block = norm + attn + (norm + mlp if cfg.mlp != "none" else 0)
    emb = V * d * (1 if cfg.tie_embeddings else 2)
    pos = cfg.block_size * d if cfg.pos == "learned" else 0
    return emb + pos + L * block + norm


CONFIGS = [
    dict(),
    dict(mlp="gated"),
    dict(mlp="none"),
    dict(pos="learned", bias=True),
    dict(pos="none", tie_embeddings=False),
    dict(qk_norm=True, norm="rms"),
    dict(qk_norm=True, bias=True),
    dict(split_qkv=True),
    dict(split_qkv=True, pos="learned", bias=True, qk_norm=True),
    dict(split_qkv=True, pos="none"),
]


@pytest.mark.parametrize("changes", CONFIGS)
def test_parameter_count_matches_hand_count(changes):
    cfg = ModelConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=32, block_size=16, **changes)
    model = GPT(cfg)
    assert count_params(model) == hand_count(cfg)


@pytest.mark.parametrize("changes", CONFIGS)
def test_output_shape_and_causality(changes):
    """No output position may depend on a later token."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, n_layer=2, n_head=2, n_embd=32, block_size=16, **changes)
    assert_shape_and_causality(GPT(cfg).eval())


@pytest.mark.parametrize("pos", ["rope", "learned", "none"])
def test_encoder_outputs_depend_on_later_tokens(pos):
    """causal=False: an earlier position's output moves when only later tokens change, and the
    encoder computes exactly softmax(q.k) attention over every position (checked by hand)."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=30, n_layer=2, n_head=2, n_embd=32, block_size=16, pos=pos, causal=False
    )
    model = GPT(cfg).eval()
    x = torch.randint(0, 30, (2, 12))
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % 30
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    assert not torch.allclose(y[:, :7], y2[:, :7], atol=1e-5)
    # the same weights, causal: the earlier outputs stay
    decoder = GPT(cfg.with_(causal=True)).eval()
    decoder.load_state_dict(model.state_dict())
    assert_shape_and_causality(decoder)
    # one attention layer by hand: full (unmasked) softmax over all 12 positions
    att = model.blocks[0].attn
    h = torch.randn(2, 12, 32)
    rope = (model.rope_c[:12], model.rope_s[:12], model.rope_r) if pos == "rope" else None
    q, k, v = att.qkv(h).view(2, 12, 3, 2, 16).permute(2, 0, 3, 1, 4)
    if rope is not None:
        c, s_, r = rope
        q, k = q * c + (q @ r) * s_, k * c + (k @ r) * s_
    w = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
    expect = att.proj((w @ v).transpose(1, 2).reshape(2, 12, 32))
    with torch.no_grad():
        assert torch.allclose(att(h, rope), expect, atol=1e-5)


@pytest.mark.parametrize(
    "changes", [dict(pos="relative"), dict(pos="uniform"), dict(canon="AC")]
)
def test_encoder_refuses_what_only_a_decoder_has(changes):
    with pytest.raises(ValueError, match="causal=False"):
        ModelConfig(vocab_size=30, n_embd=32, causal=False, **changes)
    with pytest.raises(ValueError, match="causal must be a bool"):
        ModelConfig(vocab_size=30, n_embd=32, causal=0)


def test_gpt2_shape_notation():
    cfg = gpt2_shape(4, 3, vocab_size=10)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == (4, 3, 192)


def test_gated_mlp_has_about_the_same_parameters_as_gelu():
    base = ModelConfig(vocab_size=10, n_embd=96)
    a = count_params(GPT(base))
    b = count_params(GPT(base.with_(mlp="gated")))
    assert abs(a - b) / a < 0.02


def test_count_params_excludes_unused_embedding_rows():
    cfg = ModelConfig(vocab_size=100, n_embd=16, n_head=2)
    model = GPT(cfg)
    used = torch.tensor([1, 2, 3, 3, 7])
    assert count_params(model) - count_params(model, used) == (100 - 4) * 16
    untied = GPT(cfg.with_(tie_embeddings=False))
    assert count_params(untied) - count_params(untied, used) == 2 * (100 - 4) * 16


def test_tied_embeddings_share_storage():
    model = GPT(ModelConfig(vocab_size=20, n_embd=16, n_head=2))
    assert model.lm_head.weight.data_ptr() == model.wte.weight.data_ptr()


def test_rope_rotates_only_the_chosen_fraction_and_preserves_norms():
    cfg = ModelConfig(vocab_size=10, n_embd=64, n_head=2, rope_fraction=0.25)
    assert cfg.rotary_dim == 8
    from physlm.model import rope_tables

    cos, sin = rope_tables(cfg, 5, torch.device("cpu"))
    x = torch.randn(1, 2, 5, 32)
    y = apply_rope(x, cos, sin)
    assert torch.equal(y[..., 8:], x[..., 8:])
    assert torch.allclose(y[..., :8].norm(dim=-1), x[..., :8].norm(dim=-1), atol=1e-5)
    assert torch.equal(y[:, :, 0], x[:, :, 0])  # position 0 is not rotated


def test_rope_scores_depend_on_relative_position_only():
    cfg = ModelConfig(vocab_size=10, n_embd=16, n_head=1, rope_fraction=1.0)
    from physlm.model import rope_tables

    cos, sin = rope_tables(cfg, 12, torch.device("cpu"))
    q, k = torch.randn(16), torch.randn(16)
    qs = apply_rope(q.expand(1, 1, 12, 16), cos, sin)[0, 0]
    ks = apply_rope(k.expand(1, 1, 12, 16), cos, sin)[0, 0]
    assert math.isclose(float(qs[5] @ ks[2]), float(qs[9] @ ks[6]), rel_tol=1e-4)


def test_lm_loss_respects_mask():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 1] = 10.0
    targets = torch.tensor([[1, 2, 3]])
    mask = torch.tensor([[True, False, False]])
    assert lm_loss(logits, targets, mask).item() < 1e-3
    assert math.isclose(lm_loss(torch.zeros(1, 3, 4), targets).item(), math.log(4), rel_tol=1e-6)


def test_lm_loss_of_no_targets_is_a_zero_that_reaches_the_parameters():
    w = torch.ones(4, requires_grad=True)
    loss = lm_loss(w[None, :] * torch.ones(0, 4), torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and w.grad is not None


@pytest.mark.parametrize("pos", ["rope", "relative", "uniform"])
def test_logits_at_a_mask_are_the_full_logits_there(pos):
    torch.manual_seed(5)
    model = GPT(ModelConfig(vocab_size=20, n_layer=2, n_head=2, n_embd=16, block_size=12, pos=pos))
    idx = torch.randint(0, 20, (3, 12))
    at = torch.rand(3, 12) < 0.4
    full = model(idx)
    assert torch.allclose(model(idx, at=at), full[at], atol=1e-6)
    with pytest.raises(ValueError, match="at must have the shape of idx"):
        model(idx, at=at[:, :5])


def sliced_state(fused: dict) -> dict:
    """A split model's weights from a fused one: rows [0, d), [d, 2d), [2d, 3d) are q, k, v."""
    out = {}
    for key, value in fused.items():
        if ".qkv." in key:
            d = value.shape[0] // 3
            for i, name in enumerate("qkv"):
                out[key.replace(".qkv.", f".{name}.")] = value[i * d : (i + 1) * d]
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(
    "changes", [dict(), dict(pos="learned", bias=True, qk_norm=True), dict(pos="none")]
)
def test_split_qkv_computes_the_fused_function(changes):
    """Loaded with the fused weights cut into three, the split model gives the same logits."""
    cfg = ModelConfig(vocab_size=30, n_layer=2, n_head=2, n_embd=32, block_size=16, **changes)
    torch.manual_seed(0)
    fused = GPT(cfg).eval()
    split = GPT(cfg.with_(split_qkv=True)).eval()
    names = {n for n, _ in split.named_parameters()}
    assert {"blocks.0.attn.q.weight", "blocks.0.attn.v.weight"} <= names
    assert not any(".qkv." in n for n in names)
    split.load_state_dict(sliced_state(fused.state_dict()))
    x = torch.randint(0, 30, (3, 16))
    with torch.no_grad():
        torch.testing.assert_close(split(x), fused(x), rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("pos", ["relative", "position_only", "uniform"])
def test_split_qkv_is_refused_where_attention_has_no_fused_qkv(pos):
    with pytest.raises(ValueError, match="split_qkv"):
        ModelConfig(vocab_size=10, n_embd=32, n_head=2, pos=pos, split_qkv=True)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(pos="alibi"), "pos"),
        (dict(mlp="relu"), "mlp"),
        (dict(n_embd=30, n_head=4), "divisible"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(rope_fraction=0.0), "rope_fraction"),
        (dict(norm="batch"), "norm"),
        (dict(split_qkv=1), "split_qkv"),
    ],
)
def test_bad_config_names_the_parameter(bad, match):
    args = dict(vocab_size=10, n_embd=32, n_head=2) | bad
    with pytest.raises(ValueError, match=match):
        ModelConfig(**args)


def test_sequence_longer_than_block_size_is_refused():
    model = GPT(ModelConfig(vocab_size=10, n_embd=16, n_head=2, block_size=4))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 5, dtype=torch.long))
