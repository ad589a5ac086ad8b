"""Tests for physlm.measure.quantize: grids, RTN bounds, GPTQ's optimality, model plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from physlm.measure.quantize import (
    gptq_weight,
    quantize_model,
    rtn_weight,
    weight_bits_report,
)

torch.set_num_threads(1)


class TinyLM(nn.Module):
    """embedding -> linear -> relu -> linear -> logits, taking token ids."""

    def __init__(self, vocab: int = 40, d: int = 24, hidden: int = 48, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.wte = nn.Embedding(vocab, d)
        self.fc = nn.Linear(d, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.wte(idx))))


class OneLayer(nn.Module):
    """Token embedding feeding one linear layer: the layer's inputs X are embedding rows."""

    def __init__(self, emb: torch.Tensor, out: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.wte = nn.Embedding.from_pretrained(emb, freeze=False)
        self.lin = nn.Linear(emb.shape[1], out, bias=False, dtype=emb.dtype)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.lin(self.wte(idx))


def calib_batches(vocab: int, n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (4, 16), generator=g) for _ in range(n)]


def numpy_grid(row: np.ndarray, bits: int) -> tuple[float, float]:
    """Independent min/max grid: range widened to contain 0, zero point rounded."""
    lo, hi = min(row.min(), 0.0), max(row.max(), 0.0)
    scale = (hi - lo) / (2**bits - 1)
    return scale, float(np.round(-lo / scale))


def n_distinct_per_group(w: torch.Tensor, group: int | None) -> int:
    group = group or w.shape[1]
    return max(
        torch.unique(w[r, c : c + group]).numel()
        for r in range(w.shape[0])
        for c in range(0, w.shape[1], group)
    )


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_rtn_matches_independent_grid_and_error_bound(bits: int) -> None:
    w = torch.randn(12, 30, dtype=torch.float64)
    q = rtn_weight(w, bits).numpy()
    wn = w.numpy()
    for r in range(wn.shape[0]):
        scale, zero = numpy_grid(wn[r], bits)
        k = np.clip(np.round(wn[r] / scale) + zero, 0, 2**bits - 1)
        np.testing.assert_allclose(q[r], scale * (k - zero), rtol=0, atol=1e-12)
        assert np.all(np.abs(wn[r] - q[r]) <= scale / 2 + 1e-12)
        assert len(np.unique(q[r])) <= 2**bits


def test_rtn_keeps_zero_and_handles_constant_rows() -> None:
    w = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.7, 1.1], [-2.0, 0.0, 0.5]])
    q = rtn_weight(w, 4)
    assert torch.equal(q[0], torch.zeros(3))  # all-zero row stays zero, no NaN
    assert q[2, 1] == 0.0  # zero lies on the grid
    assert torch.isfinite(q).all()


@pytest.mark.parametrize("method", ["rtn", "gptq"])
@pytest.mark.parametrize("bits,group", [(2, None), (3, 8), (4, None), (4, 7)])
def test_at_most_2_to_bits_values_per_row_group(method: str, bits: int, group: int | None) -> None:
    model = TinyLM()
    q = quantize_model(model, bits, calib_batches(40), method=method, group_size=group)
    for lin in (q.fc, q.out):
        assert n_distinct_per_group(lin.weight.detach(), group) <= 2**bits
        assert lin.weight.dtype == torch.float32
    assert torch.equal(q.wte.weight, model.wte.weight)  # embeddings are left in float by default


@pytest.mark.parametrize("group,blocksize", [(None, 128), (None, 3), (4, 128), (4, 3), (3, 7)])
def test_gptq_column_is_rounded_least_squares_continuation(
    group: int | None, blocksize: int
) -> None:
    """GPTQ's defining property (Frantar et al. 2022, Eq. 2-3): once columns < k are fixed, the
    remaining weights are the least-squares fit of the row's output on the calibration data,
    and column k is the nearest grid point of that fit. Checked by an explicit lstsq; with
    groups, a group's grid is the min/max of that fit over the group's columns."""
    g = torch.Generator().manual_seed(0)
    d, n, bits = 10, 200, 3
    x = torch.randn(d, n, generator=g, dtype=torch.float64)
    x = torch.linalg.cholesky(torch.eye(d, dtype=x.dtype) + 0.8) @ x  # correlated inputs
    w = torch.randn(5, d, generator=g, dtype=torch.float64)
    q = gptq_weight(w, 2 * x @ x.T / n, bits, group, percdamp=0.0, blocksize=blocksize)
    for r in range(w.shape[0]):
        scale, zero = numpy_grid(w[r].numpy(), bits)
        for k in range(d):
            resid = (w[r, :k] - q[r, :k]) @ x[:k] + w[r, k:] @ x[k:]  # target for w'[k:] @ x[k:]
            v = torch.linalg.lstsq(x[k:].T, resid.unsqueeze(1)).solution[:, 0]
            if group is not None and k % group == 0:
                scale, zero = numpy_grid(v[:group].numpy(), bits)
            kk = np.clip(np.round(v[0].item() / scale) + zero, 0, 2**bits - 1)
            assert q[r, k].item() == pytest.approx(scale * (kk - zero), abs=1e-9)


def test_quantize_model_uses_calibration_hessian() -> None:
    emb = torch.randn(30, 12, dtype=torch.float64)
    model = OneLayer(emb, 6)
    calib = calib_batches(30)
    q = quantize_model(model, 4, calib, percdamp=0.0)
    x = torch.cat([emb[b.reshape(-1)] for b in calib])  # rows = tokens
    expected = gptq_weight(model.lin.weight, 2 * x.T @ x / x.shape[0], 4, percdamp=0.0)
    torch.testing.assert_close(q.lin.weight.detach(), expected, rtol=0, atol=1e-12)


def test_gptq_beats_rtn_on_correlated_inputs() -> None:
    g = torch.Generator().manual_seed(3)
    basis = torch.randn(4, 32, generator=g)
    emb = torch.randn(64, 4, generator=g) @ basis + 0.02 * torch.randn(64, 32, generator=g)
    model = OneLayer(emb, 16)
    calib = calib_batches(64)
    x = torch.cat([emb[b.reshape(-1)] for b in calib])

    def out_err(m: nn.Module) -> float:
        return torch.linalg.norm(x @ (m.lin.weight - model.lin.weight).T).item()

    for bits in (3, 4):
        gptq = out_err(quantize_model(model, bits, calib, method="gptq"))
        rtn = out_err(quantize_model(model, bits, calib, method="rtn"))
        assert gptq < 0.5 * rtn, (bits, gptq, rtn)


def test_sequential_gptq_sees_quantized_earlier_layers() -> None:
    model = TinyLM().double()
    calib = calib_batches(40)
    idx = torch.cat([b.reshape(-1) for b in calib])
    x1 = model.wte.weight[idx].detach()

    def hess(x: torch.Tensor) -> torch.Tensor:
        return 2 * x.T @ x / x.shape[0]

    for sequential in (True, False):
        q = quantize_model(model, 3, calib, sequential=sequential)
        q1 = gptq_weight(model.fc.weight, hess(x1), 3)
        torch.testing.assert_close(q.fc.weight.detach(), q1, rtol=0, atol=1e-12)
        w1 = q1 if sequential else model.fc.weight.detach()
        x2 = torch.relu(x1 @ w1.T + model.fc.bias.detach())
        q2 = gptq_weight(model.out.weight, hess(x2), 3)
        torch.testing.assert_close(q.out.weight.detach(), q2, rtol=0, atol=1e-12)


class Twice(nn.Module):
    """One linear layer applied twice per forward: its Hessian must see both inputs."""

    def __init__(self, vocab: int = 30, d: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.wte = nn.Embedding(vocab, d, dtype=torch.float64)
        self.lin = nn.Linear(d, d, dtype=torch.float64)
        self.head = nn.Linear(d, vocab, dtype=torch.float64)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.lin(torch.relu(self.lin(self.wte(idx)))))


def test_layer_called_twice_collects_both_inputs() -> None:
    model = Twice()
    calib = calib_batches(30)
    idx = torch.cat([b.reshape(-1) for b in calib])
    x1 = model.wte.weight[idx].detach()
    x2 = torch.relu(model.lin(x1)).detach()
    x = torch.cat([x1, x2])
    q = quantize_model(model, 3, calib, skip=("head",))
    expected = gptq_weight(model.lin.weight, 2 * x.T @ x / x.shape[0], 3)
    torch.testing.assert_close(q.lin.weight.detach(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_int8_output_close_and_int4_further(method: str) -> None:
    model = TinyLM()
    calib = calib_batches(40)
    test = calib_batches(40, n=2, seed=9)
    with torch.no_grad():
        ref = torch.cat([model(b) for b in test])

        def rel_err(bits: int) -> float:
            q = quantize_model(model, bits, calib, method=method)
            return ((torch.cat([q(b) for b in test]) - ref).norm() / ref.norm()).item()

        e8, e4 = rel_err(8), rel_err(4)
    assert e8 < 5e-3
    assert e4 > 4 * e8


def test_original_untouched_and_deterministic() -> None:
    model = TinyLM()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calib = calib_batches(40)
    a = quantize_model(model, 4, calib, group_size=8)
    b = quantize_model(model, 4, iter(calib), group_size=8)  # a one-shot iterator works too
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert a is not model and not torch.equal(a.fc.weight, model.fc.weight)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert model.training and a.training


def test_dead_inputs_get_zero_weights() -> None:
    emb = torch.randn(20, 8, dtype=torch.float64)
    emb[:, 3] = 0.0  # feature 3 is never active
    model = OneLayer(emb, 5)
    q = quantize_model(model, 4, calib_batches(20))
    assert torch.isfinite(q.lin.weight).all()
    assert torch.equal(q.lin.weight[:, 3], torch.zeros(5, dtype=torch.float64))


def test_embeddings_option_and_bits_report() -> None:
    model = TinyLM(vocab=40, d=24, hidden=48)
    calib = calib_batches(40)
    q = quantize_model(model, 4, calib, group_size=16, skip=("out",))
    r = weight_bits_report(q)
    assert r.quantized_params == 48 * 24
    assert r.grids == 48 * 2  # 24 input columns -> groups of 16 and 8
    assert r.float_params == 40 * 24 + 48 + 48 * 40 + 40
    assert r.total_bits == 48 * 24 * 4 + r.grids * (16 + 4) + r.float_params * 16
    qe = quantize_model(model, 8, calib, method="rtn", embeddings=True)
    assert not torch.equal(qe.wte.weight, model.wte.weight)
    assert n_distinct_per_group(qe.wte.weight.detach(), None) <= 256
    re = weight_bits_report(qe)
    assert re.float_params == 48 + 40 and re.grids == 40 + 48 + 40
    assert weight_bits_report(model).quantized_params == 0


def test_tied_weight_counts_once() -> None:
    model = TinyLM(vocab=40, d=24, hidden=24)
    model.out.weight = model.wte.weight  # tied: out is [40, 24] like the embedding
    q = quantize_model(model, 4, calib_batches(40), embeddings=True)
    assert q.out.weight is q.wte.weight
    assert n_distinct_per_group(q.wte.weight.detach(), None) <= 16
    r = weight_bits_report(q)
    assert r.quantized_params == 40 * 24 + 24 * 24 and r.float_params == 24 + 40


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bits": 5}, "bits"),
        ({"bits": 16}, "bits"),
        ({"method": "awq"}, "method"),
        ({"calib": []}, "calib"),
        ({"calib": None}, "calib"),
        ({"calib": [[1, 2, 3]]}, "calib"),
        ({"group_size": 0}, "group_size"),
        ({"percdamp": -0.1}, "percdamp"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, match: str) -> None:
    args = {"bits": 4, "calib": calib_batches(40, n=1), "method": "gptq"} | kwargs
    with pytest.raises(ValueError, match=match):
        quantize_model(TinyLM(), **args)


def test_rtn_needs_no_calibration() -> None:
    q = quantize_model(TinyLM(), 4, None, method="rtn")
    assert n_distinct_per_group(q.fc.weight.detach(), None) <= 16


def test_tiny_gpt_int8_keeps_logits() -> None:
    from physlm.model import GPT, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=32, block_size=16)
    model = GPT(cfg).eval()
    g = torch.Generator().manual_seed(0)
    calib = [torch.randint(0, 50, (4, 16), generator=g) for _ in range(4)]
    test = torch.randint(0, 50, (4, 16), generator=g)
    with torch.no_grad():
        ref = model(test)
        q8, q4 = (quantize_model(model, b, calib) for b in (8, 4))
        e8 = ((q8(test) - ref).norm() / ref.norm()).item()
        e4 = ((q4(test) - ref).norm() / ref.norm()).item()
    assert e8 < 1e-2 and e4 > e8
    assert torch.equal(q8.wte.weight, model.wte.weight)  # tied embedding / head stay float
    r = weight_bits_report(q8)
    per_block = 32 * 96 + 32 * 32 + 32 * 128 + 128 * 32
    assert r.quantized_params == 2 * per_block
    assert r.params == sum(p.numel() for p in model.parameters())
