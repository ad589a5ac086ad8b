"""`config_from`: a stream takes a config object or keyword arguments, never both."""

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
