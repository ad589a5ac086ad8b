"""check-device: its pieces on a CPU (FLOP count, parsing, report) and its refusal without CUDA."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from physlm import cli, device_check
from physlm.device_check import (
    Step,
    cfg_gpu_rate,
    cuda_test_files,
    matmul_weights,
    pytest_counts,
    train_flops_per_token,
    utilisation,
)
from physlm.model import GPT, ModelConfig, lm_loss

CONFIGS = [
    dict(),
    dict(mlp="gated", tie_embeddings=False),
    dict(n_layer=3, n_embd=48, n_head=3, vocab_size=50),
]


def closed_form_weights(cfg: ModelConfig) -> int:
    """Per layer q, k, v, out (4 d^2) and the MLP (2 d h, or 3 d h gated); the d x V head."""
    d, h = cfg.n_embd, cfg.hidden
    mlp = (3 if cfg.mlp == "gated" else 2) * d * h
    return cfg.n_layer * (4 * d * d + mlp) + d * cfg.vocab_size


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=64, n_layer=2, n_head=2, n_embd=32, block_size=16)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("kw", CONFIGS)
def test_flops_per_token_match_a_closed_form(kw):
    cfg = tiny(**kw)
    model = GPT(cfg)
    assert matmul_weights(model) == closed_form_weights(cfg)
    seq = 16
    expected = 6 * closed_form_weights(cfg) + 12 * cfg.n_layer * seq * cfg.n_embd
    assert train_flops_per_token(model, seq) == expected


def test_the_bench_model_is_gpt2_small_sized():
    """12 x 768 with a 50k vocab: ~85M matmul weights in the blocks, as GPT-2 small."""
    cfg = ModelConfig(**device_check.BENCH_MODEL)
    blocks = closed_form_weights(cfg) - cfg.n_embd * cfg.vocab_size
    assert blocks == 12 * (4 * 768**2 + 2 * 768 * cfg.hidden)
    assert 80e6 < blocks < 90e6


@pytest.mark.parametrize("kw", CONFIGS[:2])
def test_forward_flops_match_torchs_flop_counter(kw):
    """torch counts the matmuls that really run: forward = 2 W + 4 L T d per token, and the
    backward of the weight matmuls twice their forward (the 6 W of the training count)."""
    cfg = tiny(**kw)
    model = GPT(cfg)
    batch, seq = 3, 16
    x = torch.randint(0, cfg.vocab_size, (batch, seq))
    with FlopCounterMode(display=False) as fwd:
        loss = lm_loss(model(x), x)
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    tokens = batch * seq
    attention = 4 * cfg.n_layer * seq * cfg.n_embd
    assert fwd.get_total_flops() == tokens * (2 * matmul_weights(model) + attention)
    mm = torch.ops.aten.mm
    assert bwd.get_flop_counts()["Global"][mm] == 2 * fwd.get_flop_counts()["Global"][mm]


def test_utilisation():
    assert utilisation(6e9, 1000.0, 12e12) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="gemm_flops"):
        utilisation(1.0, 1.0, 0.0)


def test_parsers():
    assert pytest_counts("....\n3 passed, 2 skipped, 1 failed in 4.2s\n") == {
        "passed": 3,
        "skipped": 2,
        "failed": 1,
    }
    assert pytest_counts("") == {}
    out = "ours: 310.0 sentences/s\nbaseline: 3.1 sentences/s\ngpu: 12,345.6 sentences/s (H100)"
    assert cfg_gpu_rate(out) == pytest.approx(12345.6)
    assert cfg_gpu_rate("ours: 310.0 sentences/s") is None


def test_cuda_test_files(tmp_path):
    (tmp_path / "test_a.py").write_text(
        "cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='x')\n"
    )
    (tmp_path / "test_b.py").write_text("def test_b(): pass\n")
    (tmp_path / "test_kernels_x.py").write_text("def test_k(): pass\n")
    assert [p.name for p in cuda_test_files(tmp_path)] == ["test_a.py", "test_kernels_x.py"]


def test_a_failing_step_is_recorded_and_others_run(capsys):
    def boom(step):
        raise RuntimeError("no luck")

    def fine(step):
        step.ok = True

    steps = [device_check._run("boom", boom), device_check._run("fine", fine)]
    assert [s.ok for s in steps] == [False, True]
    assert "no luck" in steps[0].note


def test_bench_canon_is_skipped_with_a_note_where_it_does_not_exist(tmp_path):
    step = Step("bench canon")
    device_check.step_bench_canon(tmp_path)(step)
    assert step.ok and "does not exist" in step.note


def test_report_is_json_and_markdown(tmp_path):
    steps = [
        Step("bench cfg", ok=True, seconds=3.0, figures={"gpu_sentences_per_s": 20000.0}),
        Step("bf16 training MFU", ok=False, seconds=9.0, figures={"eager_mfu": 0.3}, note="low"),
    ]
    js, md = device_check.write_report(tmp_path, "a GPU", steps)
    data = json.loads(js.read_text())
    assert data["ok"] is False and [s["name"] for s in data["steps"]] == ["bench cfg",
                                                                          "bf16 training MFU"]
    text = md.read_text()
    assert "| bench cfg | ok | 3 | gpu_sentences_per_s=20000.0 |" in text
    assert "| bf16 training MFU | FAILED |" in text and "low" in text


def test_without_cuda_it_exits_with_a_clear_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["check-device", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "check-device needs a CUDA GPU" in err and "torch sees none" in err
    assert not list(tmp_path.iterdir())  # no report pretends to have checked anything


def test_bad_arguments_name_the_parameter():
    with pytest.raises(SystemExit):
        cli.main(["check-device", "--steps", "x"])
    assert cli.main(["check-device", "--steps", "5", "--warmup", "10"]) == 2


CHAPTER = '''# %% [markdown]
# # A chapter that checks its scale and cache

# %% tags=["parameters"]
scale = "cpu"

# %%
import os
assert scale == "smoke", scale
print("runs in", os.environ["PHYSLM_RUNS"])
'''


def test_chapters_run_at_smoke_into_scratch_notebooks(tmp_path):
    """The papermill command the step builds runs a chapter at smoke, into its scratch cache,
    leaving the chapter's published notebook alone."""
    root, work = tmp_path / "repo", tmp_path / "work"
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks" / "part9_check.py").write_text(CHAPTER)
    (root / "notebooks" / "part9_fails.py").write_text(CHAPTER.replace('"smoke"', '"paper"'))
    step = Step("chapters at smoke")
    device_check.step_chapters(root, work, timeout=120)(step)
    assert step.figures["part9_check"].startswith("ok")
    assert step.figures["part9_fails"].startswith("FAILED") and not step.ok
    assert "part9_fails" in step.note
    ran = json.loads((work / "chapters" / "part9_check.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in ran["cells"] for o in c.get("outputs", []))
    assert f"runs in {work / 'runs'}" in text
    assert not (root / "book").exists()
