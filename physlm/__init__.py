"""physlm: a reproducible companion to the Physics of Language Models papers."""

__version__ = "0.1.0"
