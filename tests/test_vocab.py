"""The closed word-level vocabulary and the batch helper."""

import numpy as np
import pytest
import torch

from physlm.data import BatchSource, make_batch
from physlm.data.vocab import SPECIALS, Vocab, split_words


def test_specials_come_first_with_fixed_ids():
    v = Vocab(["b", "a"])
    assert v.itos[:4] == ["<pad>", "<eos>", "<bos>", "<dom>"] == list(SPECIALS)
    assert (v.pad_id, v.eos_id, v.bos_id, v.dom_id) == (0, 1, 2, 3)
    assert len(v) == 6


def test_order_does_not_depend_on_insertion_order():
    words = ["Port", "Velmora", ",", "KX", ".", "was", "born"]
    assert Vocab(words).itos == Vocab(reversed(words)).itos == Vocab(set(words)).itos


def test_split_and_roundtrip():
    text = "Anya Vel-mora was born in Port Velmora, KX. She studied at O'Brien College."
    toks = split_words(text)
    assert toks[:5] == ["Anya", "Vel-mora", "was", "born", "in"]
    assert toks.count(",") == 1 and toks.count(".") == 2 and "O'Brien" in toks
    v = Vocab(toks)
    assert v.decode(v.encode(text)) == text
    assert v.encode(toks) == v.encode(text)
    assert v.tokens(v.encode("born in")) == ["born", "in"]


def test_closed_vocabulary_errors():
    v = Vocab(["a"])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        v.encode("a b")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([99])
    with pytest.raises(ValueError, match="special"):
        Vocab(["<eos>", "a"])
    with pytest.raises(ValueError, match="whitespace"):
        Vocab(["a b"])
    assert "a" in v and "b" not in v


def test_decode_can_skip_specials():
    v = Vocab(["x", "."])
    assert v.decode([v.eos_id, v.id("x"), v.id("."), v.pad_id], skip_specials=True) == "x."


def test_make_batch_shifts_and_masks_padding():
    rows = np.array([[1, 5, 6, 1, 0, 0], [1, 7, 1, 8, 9, 1]])
    b = make_batch(rows, pad_id=0)
    assert torch.equal(b["x"], torch.tensor(rows[:, :-1]))
    assert torch.equal(b["y"], torch.tensor(rows[:, 1:]))
    assert b["mask"].tolist() == [[True, True, True, False, False], [True] * 5]
    assert b["x"].dtype == torch.long and b["mask"].dtype == torch.bool
    with pytest.raises(ValueError, match="shape"):
        make_batch(np.zeros((2, 1), dtype=np.int64), 0)


def test_batch_source_protocol_is_structural():
    class Good:
        vocab_size = 3

        def batch(self, step):
            return {}

        def spec(self):
            return {}

    class Bad:
        vocab_size = 3

    assert isinstance(Good(), BatchSource)
    assert not isinstance(Bad(), BatchSource)
