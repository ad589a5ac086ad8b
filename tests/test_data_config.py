"""`config_from` (a config or keyword arguments, not both), `check_ints` and `padded_batch`."""

from dataclasses import dataclass

import pytest

from physlm.data import config_from


@dataclass(frozen=True)
class Cfg:
    n: int = 1


def test_config_from_builds_or_passes_through():
    assert config_from(Cfg, None, {"n": 3}) == Cfg(3)
    given = Cfg(5)
    assert config_from(Cfg, given, {}) is given


def test_config_and_keywords_together_are_refused():
    with pytest.raises(ValueError, match="either a Cfg or keyword arguments"):
        config_from(Cfg, Cfg(2), {"n": 3})


def test_fit_per_row_counts_whole_biographies_and_names_the_parameter():
    from physlm.data import fit_per_row

    assert fit_per_row(100, 30, None) == 3
    assert fit_per_row(100, 30, 2) == 2
    with pytest.raises(ValueError, match="seq_len must be at least 30"):
        fit_per_row(20, 30, None)
    with pytest.raises(ValueError, match="bios_per_row=4 may not fit"):
        fit_per_row(100, 30, 4)


def test_padded_batch_puts_the_loss_on_the_flagged_tokens_only():
    from physlm.data import padded_batch

    b = padded_batch([([5, 6, 7, 8], [False, False, True, True]), ([5, 9], [False, True])], 0)
    assert b["x"].tolist() == [[5, 6, 7], [5, 9, 0]]
    assert b["y"].tolist() == [[6, 7, 8], [9, 0, 0]]
    assert b["mask"].tolist() == [[False, True, True], [True, False, False]]
    with pytest.raises(ValueError, match="sample 0 has 2 tokens but 1 target flags"):
        padded_batch([([1, 2], [True])], 0)


def test_check_ints_names_the_field_and_its_bound():
    from physlm.data import check_ints

    @dataclass(frozen=True)
    class Sizes:
        n: int = 3
        seed: int = 0

    check_ints(Sizes(), (("n", 3), ("seed", 0)))
    for bad, match in ((Sizes(n=2), "n must be an int >= 3, got 2"),
                       (Sizes(seed=True), "seed must be an int >= 0, got True"),
                       (Sizes(n=3.0), "n must be an int >= 3, got 3.0")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            check_ints(bad, (("n", 3), ("seed", 0)))
    with pytest.raises(ValueError, match="world n must be"):
        check_ints(Sizes(n=1), (("n", 3),), what="world ")
