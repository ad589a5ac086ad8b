"""Attention maps equal what each module computes; the boundary measure finds planted structure."""

import pytest
import torch

from physlm.measure.attention import attention_maps, boundary_attention, distance_baseline
from physlm.model import GPT, ModelConfig


def _model(pos: str, **kw) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=11, n_layer=2, n_head=2, n_embd=16, block_size=12, pos=pos, **kw)
    model = GPT(cfg)
    with torch.no_grad():  # a trained-looking model: scores far from uniform
        for p in model.parameters():
            if p.dim() >= 2:
                p.mul_(20.0)
        if pos == "position_only":
            for b in model.blocks:
                b.attn.pos_logits.normal_(0, 2.0)
    return model.eval()


def _values(attn, x):
    B, T, C = x.shape
    if hasattr(attn, "qkv"):
        v = attn.qkv(x)[..., 2 * C :]
    else:
        v = attn.v(x)
    return v.view(B, T, attn.cfg.n_head, -1).transpose(1, 2)


@pytest.mark.parametrize(
    "pos, kw",
    [
        ("learned", {}),
        ("rope", {"rope_fraction": 1.0}),
        ("rope", {"rope_fraction": 0.5, "qk_norm": True}),
        ("rope", {"split_qkv": True}),
        ("none", {}),
        ("relative", {}),
        ("position_only", {}),
        ("uniform", {}),
    ],
)
def test_maps_reproduce_every_attention_output(pos, kw):
    model = _model(pos, **kw)
    idx = torch.randint(0, 11, (3, 10), generator=torch.Generator().manual_seed(1))
    seen = []
    hooks = [
        b.attn.register_forward_hook(lambda m, args, out: seen.append((args[0], out)))
        for b in model.blocks
    ]
    maps = attention_maps(model, idx)
    for h in hooks:
        h.remove()
    assert maps.shape == (2, 3, 2, 10, 10)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 2, 10))
    assert float(maps.triu(1).abs().max()) == 0.0  # causal
    for layer, block in enumerate(model.blocks):
        x, out = seen[layer]
        y = maps[layer] @ _values(block.attn, x)
        B, H, T, d = y.shape
        again = block.attn.proj(y.transpose(1, 2).reshape(B, T, H * d))
        torch.testing.assert_close(again, out, atol=1e-5, rtol=1e-4)


def test_maps_reject_bad_input():
    with pytest.raises(ValueError, match="idx must be a LongTensor"):
        attention_maps(_model("rope"), torch.zeros(4))


def test_distance_baseline_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(2, 3, 2, 6, 6, generator=g).tril()
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] * 5 + [False]])
    base = distance_baseline(maps, valid)
    for layer in range(2):
        for head in range(2):
            for d in range(6):
                vals = [
                    float(maps[layer, b, head, i, i - d])
                    for b in range(3)
                    for i in range(d, 6)
                    if valid[b, i] and valid[b, i - d]
                ]
                want = sum(vals) / len(vals) if vals else 0.0
                assert abs(float(base[layer, head, d]) - want) < 1e-6


def _uniform_causal(B: int, T: int) -> torch.Tensor:
    m = torch.ones(T, T).tril()
    return (m / m.sum(-1, keepdim=True)).expand(1, B, 1, T, T).clone()


def test_boundary_attention_finds_a_planted_preference_and_no_false_one():
    g = torch.Generator().manual_seed(0)
    B, T = 16, 12
    ends = torch.rand(B, T, generator=g) < 0.3
    valid = torch.ones(B, T, dtype=torch.bool)
    plain = _uniform_causal(B, T)
    to_end, to_other = boundary_attention(plain, ends, valid)
    assert abs(float(to_end - to_other)) < 0.02  # nothing planted: no preference

    planted = plain.clone()
    for b in range(B):
        for i in range(T):
            if ends[b, i]:
                w = torch.zeros(T)
                prev = [j for j in range(i) if ends[b, j]]
                w[prev if prev else [i]] = 1.0
                planted[0, b, 0, i] = w / w.sum()
    to_end, to_other = boundary_attention(planted, ends, valid)
    assert float(to_end - to_other) > 0.1


def test_boundary_attention_checks_shapes():
    with pytest.raises(ValueError, match="ends and valid must have shape"):
        boundary_attention(torch.zeros(1, 2, 1, 4, 4), torch.zeros(2, 3, dtype=torch.bool),
                           torch.ones(2, 3, dtype=torch.bool))
