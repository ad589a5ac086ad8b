"""The fused Canon kernel against the PyTorch reference: Triton's interpreter on CPU, and the
compiled kernel on CUDA where there is one. Interpreter cases are kept few and small (slow)."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton is not installed (the kernel needs it)")

import physlm.kernels  # noqa: E402
from physlm.model import canon_shifted_sum  # noqa: E402

SOURCE = Path(physlm.kernels.__file__).with_name("canon.py")


@pytest.fixture(scope="module")
def interpreted():
    """A private copy of physlm.kernels.canon whose kernels Triton's interpreter runs.

    Triton reads TRITON_INTERPRET when it decorates a kernel, so the copy is loaded with it
    set and the variable restored afterwards; the package's own module is left compiled.
    """
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        spec = importlib.util.spec_from_file_location("canon_interpreted", SOURCE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
    return module


def random_shapes(n: int, seed: int) -> list[tuple[int, int, int]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (
            int(torch.randint(1, 3, (1,), generator=g)),
            int(torch.randint(1, 150, (1,), generator=g)),
            int(torch.randint(1, 300, (1,), generator=g)),
        )
        for _ in range(n)
    ]


# Block edges (BLOCK_T = 64 tokens, BLOCK_C = 128 channels): exact multiples, one past, T < 4.
EDGES = [(1, 64, 128), (2, 65, 129), (1, 3, 5), (1, 1, 2)]


def compare(kernels, shape, dtype, residual, device="cpu", seed=0):
    """Kernel output and grads (x, weight) vs the fp32 reference on the same inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_()
    w = (torch.rand(shape[-1], 1, 4, generator=g) - 0.5).to(device).requires_grad_()
    up = torch.randn(shape, generator=g).to(device=device, dtype=dtype)
    y = kernels.canon_fused(x, w, residual)
    gx, gw = torch.autograd.grad(y, (x, w), up)
    x32 = x.detach().float().requires_grad_()
    w32 = w.detach().requires_grad_()
    y_ref = canon_shifted_sum(x32, w32, residual)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x32, w32), up.float())
    assert y.dtype == gx.dtype == dtype and gw.dtype == w.dtype and y.shape == x.shape
    # fp32: sums of 4 products in another order. bf16: one rounding of an fp32 sum, at most
    # half a unit in the last place (2^-8 relative) on a GPU; Triton's interpreter truncates
    # instead (a whole unit, 2^-7). grad_w is an fp32 sum of exact products.
    bf16_rtol = 2**-8 if device == "cuda" else 2**-7
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=bf16_rtol, atol=1e-5)
    torch.testing.assert_close(y.float(), y_ref, **tol)
    torch.testing.assert_close(gx.float(), gx_ref, **tol)
    scale = (up.float().abs() * x32.abs()).sum(dim=tuple(range(x.dim() - 1)))  # per channel
    assert ((gw - gw_ref).abs().reshape(-1, 4) <= 1e-5 * (scale[:, None] + 1)).all()


@pytest.mark.parametrize("shape", EDGES + random_shapes(3, seed=1))
def test_fp32_matches_reference(interpreted, shape):
    compare(interpreted, shape, torch.float32, residual=shape[1] % 2 == 0, seed=shape[1])


@pytest.mark.parametrize("shape", [(2, 65, 129)] + random_shapes(1, seed=2))
@pytest.mark.parametrize("residual", [True, False])
def test_bf16_matches_reference(interpreted, shape, residual):
    compare(interpreted, shape, torch.bfloat16, residual)


def test_leading_dims_and_frozen_weight(interpreted):
    """Input (T, m) without a batch dim; a weight that needs no grad gets none."""
    x = torch.randn(9, 6, requires_grad=True)
    w = torch.rand(6, 1, 4) - 0.5
    y = interpreted.canon_fused(x, w)
    torch.testing.assert_close(y, canon_shifted_sum(x, w), rtol=1e-6, atol=1e-6)
    (gx,) = torch.autograd.grad(y.sum(), (x,))
    torch.testing.assert_close(gx, torch.autograd.grad(canon_shifted_sum(x, w).sum(), (x,))[0])


def test_weight_only_grad(interpreted):
    x = torch.randn(1, 7, 3)
    w = (torch.rand(3, 1, 4) - 0.5).requires_grad_()
    (gw,) = torch.autograd.grad(interpreted.canon_fused(x, w).sum(), (w,))
    (gw_ref,) = torch.autograd.grad(canon_shifted_sum(x, w).sum(), (w,))
    torch.testing.assert_close(gw, gw_ref)


def test_bad_weight_shape_is_rejected(interpreted):
    with pytest.raises(ValueError, match=r"canon weight must have shape \(m, 1, 4\)"):
        interpreted.canon_fused(torch.randn(1, 5, 8), torch.randn(8, 4))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 1024, 768), (3, 1000, 2304), (2, 77, 131)])
def test_cuda_kernel_matches_reference(shape, dtype):
    from physlm.kernels import canon

    compare(canon, shape, dtype, residual=True, device="cuda")


@cuda
def test_model_runs_the_kernel_on_cuda():
    from physlm.kernels import canon
    from physlm.model import _fused_canon

    assert _fused_canon() is canon.canon_fused


@pytest.mark.skipif(bool(os.environ.get("TRITON_INTERPRET")), reason="interpreter on: no compiler")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_kernels_compile_for_a_gpu_without_one(dtype):
    """The interpreter runs kernels as Python, so it cannot catch what only the compiler
    rejects; Triton compiles to an H100/H200 (sm_90) binary on a machine with no GPU."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from physlm.kernels import canon

    shape = {"T": "i32", "M": "i32", "K": "constexpr", "RESIDUAL": "constexpr"}
    blocks = {"BT": "constexpr", "BC": "constexpr"}
    consts = {"K": 4, "RESIDUAL": True, "BT": canon.BLOCK_T, "BC": canon.BLOCK_C}
    forward = ASTSource(
        fn=canon._canon_forward,
        signature={"x_ptr": f"*{dtype}", "w_ptr": "*fp32", "y_ptr": f"*{dtype}"} | shape | blocks,
        constexprs=consts,
    )
    pointers = {"g_ptr": f"*{dtype}", "x_ptr": f"*{dtype}", "w_ptr": "*fp32"}
    pointers |= {"gx_ptr": f"*{dtype}", "gw_ptr": "*fp32"}
    wants = {"WANT_X": "constexpr", "WANT_W": "constexpr"}
    backward = ASTSource(
        fn=canon._canon_backward,
        signature=pointers | shape | wants | blocks,
        constexprs=consts | {"WANT_X": True, "WANT_W": True},
    )
    for source in (forward, backward):
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert compiled.asm["cubin"]
