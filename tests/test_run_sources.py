"""The run key hashes every source a run executes, so an edit there never serves an old run.

Each run kind (a plain model on a package data source, a data source defined in a chapter's
module, LoRA and full fine-tuning through `build` hooks) is trained for two steps under a
profiler that records every file of the repository whose Python code runs; each such file
must be among the run's hashed sources. Editing any hashed file (simulated through the one
function that reads them) must change the key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import physlm.runs as runs
from physlm.experiments.part3_1 import TwoPopulations, celebrity_streams, scale_for
from physlm.lora import LoraSetup, finetune_args
from physlm.model import ModelConfig
from physlm.runs import continue_from, get_or_train, run_key, run_sources
from physlm.tiny_run import CountingRows
from physlm.train import TrainConfig

REPO = runs.PACKAGE.parent
TWO_STEPS = TrainConfig(steps=2, warmup_steps=1, log_every=1)


def executed_files(fn) -> set[Path]:
    """Files under the repository (outside the venv and this test) whose code runs in fn()."""
    seen: set[str] = set()

    def profile(frame, event, arg):
        if event == "call":
            seen.add(frame.f_code.co_filename)

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    files = {Path(f).resolve() for f in seen if not f.startswith("<")}
    return {
        f for f in files
        if f.is_relative_to(REPO) and not f.is_relative_to(REPO / ".venv") and f.is_file()
        and f != Path(__file__).resolve()
    }  # fmt: skip


def tiny_model(vocab_size: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab_size, n_layer=1, n_head=2, n_embd=32, block_size=128)


def two_populations() -> TwoPopulations:
    return TwoPopulations(*celebrity_streams(scale_for("smoke")))


def kinds(root: Path) -> dict[str, dict]:
    """get_or_train arguments of each kind of run the chapters train."""
    counting = CountingRows()
    plain = dict(model_cfg=tiny_model(16), train_cfg=TWO_STEPS, data=counting)
    base = get_or_train(**plain, root=root / "base", progress=False)
    two = two_populations()
    return {
        "plain": plain,
        "chapter data source": dict(
            model_cfg=tiny_model(two.vocab_size), train_cfg=TWO_STEPS, data=two
        ),
        "lora": dict(
            train_cfg=TWO_STEPS,
            data=counting,
            **finetune_args(base.model, base.key, LoraSetup(rank=2, embedding_rank=2)),
        ),
        "full fine-tune": dict(train_cfg=TWO_STEPS, data=counting, **continue_from(base)),
    }


@pytest.fixture(scope="module")
def run_kinds(tmp_path_factory) -> dict[str, dict]:
    return kinds(tmp_path_factory.mktemp("kinds"))


def unhashed(args: dict, root: Path) -> list[str]:
    """Files a two-step run executes that its key does not hash."""
    ran = executed_files(lambda: get_or_train(**args, root=root, progress=False))
    assert runs.PACKAGE / "train.py" in ran  # the profiler saw the training itself
    hashed = set(run_sources(args["data"], args.get("build")))
    return sorted(f.relative_to(REPO).as_posix() for f in ran - hashed)


@pytest.mark.parametrize("kind", ["plain", "chapter data source", "lora", "full fine-tune"])
def test_every_file_a_run_executes_is_hashed(kind, run_kinds, tmp_path):
    missing = unhashed(run_kinds[kind], tmp_path)
    assert not missing, f"a {kind} run executes files outside its key: {missing}"


def test_the_check_finds_a_file_left_out(run_kinds, tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "CODE_FILES", tuple(p for p in runs.CODE_FILES if p != "model.py"))
    assert unhashed(run_kinds["plain"], tmp_path) == ["physlm/model.py"]


def test_the_sources_of_each_kind_name_its_own_modules(run_kinds):
    def names(kind):
        args = run_kinds[kind]
        return {runs._label(f) for f in run_sources(args["data"], args.get("build"))}

    core = {runs._label(f) for f in runs.core_sources()}
    assert {"model.py", "train.py", "checkpoint.py", "runs.py", "data/bios.py"} <= core
    assert "lora.py" in names("lora") and "lora.py" not in names("plain")
    assert "experiments/part3_1.py" in names("chapter data source")
    assert "experiments/part3_1.py" not in names("plain")
    assert "tiny_run.py" in names("plain")


@pytest.mark.parametrize("kind", ["chapter data source", "lora"])
def test_editing_any_hashed_file_changes_the_key(kind, run_kinds, monkeypatch):
    args = run_kinds[kind]
    model_cfg = args.get("model_cfg")
    key_args = (model_cfg, args["train_cfg"], args["data"], args.get("build_spec"))
    before = run_key(*key_args, build=args.get("build"))
    read = runs._source_bytes
    sources = run_sources(args["data"], args.get("build"))
    assert len(sources) > 5
    for edited in sources:
        monkeypatch.setattr(
            runs, "_source_bytes", lambda p, e=edited: read(p) + (b"#" if p == e else b"")
        )
        after = run_key(*key_args, build=args.get("build"))
        assert after != before, f"editing {edited.name} left the key of a {kind} run unchanged"
    monkeypatch.setattr(runs, "_source_bytes", read)
    assert run_key(*key_args, build=args.get("build")) == before


def test_a_data_source_defined_outside_the_package_is_hashed_by_its_file():
    class Local(CountingRows):
        pass

    here = Path(__file__).resolve()
    assert here in run_sources(Local())
    assert here not in run_sources(CountingRows())
    assert run_key(tiny_model(16), TWO_STEPS, Local()) != run_key(
        tiny_model(16), TWO_STEPS, CountingRows()
    )


def test_the_key_does_not_depend_on_where_the_checkout_is():
    """Hashed names are relative to the package, never a machine's absolute path."""
    labels = [runs._label(f) for f in run_sources(CountingRows())]
    assert all(not label.startswith("/") for label in labels)
