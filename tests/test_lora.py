"""LoRA through peft: what is trainable, the update's formula, training, caching, merging."""

import pytest
import torch
from toydata import CountingData

from physlm.lora import (
    LoraSetup,
    add_lora,
    count_trainable,
    finetune_args,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
    merge_lora,
    to_split_qkv,
    with_lora,
)
from physlm.model import GPT, ModelConfig, lm_loss
from physlm.runs import get_or_train
from physlm.train import TrainConfig, make_optimizer, train

V, D, L = 16, 32, 2
FUSED = ModelConfig(vocab_size=V, n_layer=L, n_head=2, n_embd=D, block_size=16)
SPLIT = FUSED.with_(split_qkv=True)



def base_model(cfg: ModelConfig = SPLIT, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg).eval()


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (3, 12), generator=torch.Generator().manual_seed(seed))


def expected_count(cfg: ModelConfig, setup: LoraSetup) -> int:
    """r (in + out) per adapted matrix: V x d embedding, d x d query/key/value per layer."""
    total = 0
    for target in setup.targets:
        if target == "embedding":
            total += setup.embedding_rank * (cfg.vocab_size + cfg.n_embd)
        else:
            total += cfg.n_layer * setup.rank * (cfg.n_embd + cfg.n_embd)
    return total


def frozen_weights(model: GPT) -> dict[str, torch.Tensor]:
    """The non-adapter weights under the names of the model without adapters."""
    state = model.state_dict()
    return {k.replace("base_layer.", ""): v for k, v in state.items() if "lora_" not in k}


SETUPS = [
    LoraSetup(rank=4, embedding_rank=16),
    LoraSetup(rank=2, targets=("query",)),
    LoraSetup(embedding_rank=3, targets=("embedding",)),
    LoraSetup(rank=3, embedding_rank=5, targets=("embedding", "query", "key", "value")),
]


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("extra", [{}, dict(bias=True, tie_embeddings=False)])
def test_only_the_adapters_train_and_their_count_is_r_times_in_plus_out(setup, extra):
    cfg = SPLIT.with_(**extra)
    model = add_lora(base_model(cfg), **setup.to_dict())
    assert count_trainable(model) == expected_count(cfg, setup)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(lora_parameters(model))
    module_of = {"embedding": "wte.", "query": ".attn.q.", "key": ".attn.k.", "value": ".attn.v."}
    for name in trainable:  # each adapter sits on a module the setup asked for
        assert any(module_of[t] in name or name.startswith(module_of[t]) for t in setup.targets)
    assert model.lora_setup == setup


def test_paper_defaults():
    """Part 3.1 Sec. 4: embedding rank 128, query/value rank 8 (or 16)."""
    s = LoraSetup()
    assert (s.embedding_rank, s.rank, s.targets) == (128, 8, ("embedding", "query", "value"))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_outputs_are_unchanged_at_init(dropout):
    base = base_model()
    x = tokens()
    adapted = with_lora(base, LoraSetup(rank=4, embedding_rank=8, dropout=dropout)).eval()
    with torch.no_grad():
        assert torch.equal(adapted(x), base(x))


def test_update_is_alpha_over_r_times_b_a():
    """Perturb the factors, then compare each adapted map with an independent B A product."""
    setup = LoraSetup(rank=4, embedding_rank=6, alpha=12.0)
    base = base_model()
    model = with_lora(base, setup)
    torch.manual_seed(3)
    for p in lora_parameters(model).values():
        p.data.normal_(0.0, 0.1)
    x = torch.randn(5, D)
    q = model.blocks[1].attn.q
    a, b = q.lora_A["default"].weight, q.lora_B["default"].weight  # (r, d), (d, r)
    want = x @ base.blocks[1].attn.q.weight.T + (12.0 / 4) * (x @ a.T @ b.T)
    torch.testing.assert_close(q(x), want)
    ids = torch.tensor([0, 5, 9])
    ea, eb = model.wte.lora_embedding_A["default"], model.wte.lora_embedding_B["default"]
    want = base.wte.weight[ids] + (12.0 / 6) * (eb @ ea[:, ids]).T  # A: (r', V), B: (d, r')
    torch.testing.assert_close(model.wte(ids), want)


def test_optimizer_steps_move_only_the_adapters():
    base = base_model()
    model = with_lora(base, LoraSetup(rank=4, embedding_rank=8)).train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in lora_parameters(model).items()}
    opt = make_optimizer(model, TrainConfig(steps=3, lr=1e-2, weight_decay=0.1))
    data = CountingData(vocab_size=V)
    for step in range(3):
        batch = data.batch(step)
        lm_loss(model(batch["x"]), batch["y"], batch["mask"]).backward()
        opt.step()
        opt.zero_grad()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n
    moved = [n for n, p in lora_parameters(model).items() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)  # both factors move once B (or A) is off zero
    for key, value in base.state_dict().items():  # the base model itself is untouched
        assert torch.equal(value, base_model().state_dict()[key]), key


def test_train_and_run_cache_handle_a_lora_model(tmp_path):
    base = base_model(FUSED)
    setup = LoraSetup(rank=4, embedding_rank=8)
    cfg = TrainConfig(steps=60, lr=3e-2, warmup_steps=0, log_every=15, checkpoint_every=20)
    args = finetune_args(base, "parent-key", setup)
    assert args["model_cfg"] == SPLIT
    model, metrics = train(
        args["model_cfg"],
        cfg,
        CountingData(vocab_size=V),
        tmp_path / "t",
        progress=False,
        build=args["build"],
    )
    losses = [m["loss"] for m in metrics if m["kind"] == "train"]
    assert losses[-1] < losses[0] - 0.1  # frozen random base: the adapters alone learn
    kept = frozen_weights(model)  # the trainer left the pretrained weights as they were
    assert kept.keys() == to_split_qkv(base).state_dict().keys()
    for key, value in to_split_qkv(base).state_dict().items():
        assert torch.equal(value, kept[key]), key

    data = CountingData(vocab_size=V)
    cut = get_or_train(
        train_cfg=cfg, data=data, root=tmp_path, progress=False, stop_after=30, **args
    )  # checkpoint at step 20, then resumed by the next call
    first = get_or_train(train_cfg=cfg, data=data, root=tmp_path, progress=False, **args)
    assert first.key == cut.key
    again = get_or_train(train_cfg=cfg, data=data, root=tmp_path, progress=False, **args)
    assert not first.cached and again.cached
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
        assert torch.equal(value, model.state_dict()[key]), key  # resumed = uninterrupted
    other = finetune_args(base, "parent-key", LoraSetup(rank=2, embedding_rank=8))
    assert (
        get_or_train(
            train_cfg=cfg, data=data, root=tmp_path, stop_after=1, progress=False, **other
        ).key
        != first.key
    )


def test_build_must_come_with_its_spec_and_match_model_cfg(tmp_path):
    base = base_model()
    cfg = TrainConfig(steps=2, warmup_steps=0)
    with pytest.raises(ValueError, match="build_spec"):
        get_or_train(
            SPLIT, cfg, CountingData(vocab_size=V), root=tmp_path, build=lambda: with_lora(base)
        )
    with pytest.raises(ValueError, match="model_cfg"):
        train(
            FUSED,
            cfg,
            CountingData(vocab_size=V),
            tmp_path,
            progress=False,
            build=lambda: with_lora(base),
        )


def test_merge_gives_a_plain_model_with_the_same_outputs():
    model = with_lora(base_model(), LoraSetup(rank=4, embedding_rank=8)).eval()
    torch.manual_seed(4)
    for p in lora_parameters(model).values():
        p.data.normal_(0.0, 0.1)
    merged = merge_lora(model)
    assert type(merged) is GPT and not lora_parameters(merged)
    assert merged.cfg == SPLIT.with_(tie_embeddings=False)  # the head keeps the base matrix
    x = tokens()
    with torch.no_grad():
        torch.testing.assert_close(merged(x), model(x), rtol=0.0, atol=1e-5)
        assert not torch.allclose(model(x), base_model()(x), atol=1e-3)


def test_adapter_state_round_trips_and_refuses_another_shape():
    setup = LoraSetup(rank=4, embedding_rank=8)
    model = with_lora(base_model(), setup).eval()
    for p in lora_parameters(model).values():
        p.data.normal_(0.0, 0.1)
    state = lora_state_dict(model)
    fresh = with_lora(base_model(), setup).eval()
    load_lora_state_dict(fresh, state)
    with torch.no_grad():
        assert torch.equal(fresh(tokens()), model(tokens()))
    with pytest.raises(ValueError, match="state"):
        load_lora_state_dict(with_lora(base_model(), LoraSetup(rank=2, embedding_rank=8)), state)
    with pytest.raises(ValueError, match="state"):
        load_lora_state_dict(with_lora(base_model(), LoraSetup(targets=("query",))), state)


def test_to_split_qkv_keeps_the_function_and_the_original():
    base = base_model(FUSED)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    split = to_split_qkv(base)
    assert split.cfg == SPLIT
    with torch.no_grad():
        torch.testing.assert_close(split(tokens()), base(tokens()), rtol=0.0, atol=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
    with pytest.raises(ValueError, match="split_qkv"):
        to_split_qkv(base_model(FUSED.with_(pos="relative")))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(rank=0), "rank"),
        (dict(rank=2.5), "rank"),
        (dict(embedding_rank=0), "embedding_rank"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=float("nan")), "alpha"),
        (dict(targets=("mlp",)), "targets"),
        (dict(targets="query"), "targets"),
        (dict(targets=()), "targets"),
        (dict(targets=("query", "query")), "targets"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_settings_name_the_parameter(bad, match):
    with pytest.raises(ValueError, match=match):
        add_lora(base_model(), **bad)


def test_bad_models_are_refused():
    with pytest.raises(ValueError, match="split_qkv"):
        add_lora(base_model(FUSED))
    add_lora(base_model(FUSED), targets=("embedding",))  # the embedding alone needs no split
    with pytest.raises(ValueError, match="model"):
        add_lora(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="already"):
        add_lora(add_lora(base_model()))
    with pytest.raises(ValueError, match="base_key"):
        finetune_args(base_model(), "")
