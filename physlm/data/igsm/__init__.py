"""iGSM: the synthetic grade-school math of Parts 2.1 and 2.2, generated and checked here.

A problem (Part 2.1 Sec. 2) is a structure graph of items in layers (`structure`), a dependency
graph over its parameters with arithmetic mod 23 (`dependency`), a question about one
parameter, and the shortest solution in binary steps with one letter per quantity (`solution`),
rendered in the paper's text format (`render`) with our own made-up nouns (`names`). Problems
are drawn at an exact op count with the paper's difficulty presets and template-hash split
(`presets`, `generator`, `split`), checked from their text alone (`checker`), given wrong
starts and [BACK] for Part 2.2 (`retry`), labelled for V-probing (`labels`), summarised
(`stats`) and served to the trainer (`stream`, word-level tokens in `tokens`).
"""

from physlm.data.igsm.checker import CheckReport, ParseError, check, parse_problem
from physlm.data.igsm.generator import Problem, generate, problems, reask, sample_op
from physlm.data.igsm.labels import (
    ProbeLabels,
    define_points,
    probe_input,
    probe_labels,
    probe_positions,
)
from physlm.data.igsm.names import NameWorld, WorldConfig
from physlm.data.igsm.presets import OOD_OPS, PRESETS, IGSMConfig, igsm_preset
from physlm.data.igsm.retry import RetrySolution, with_retries
from physlm.data.igsm.split import solution_template, template_bin
from physlm.data.igsm.stats import describe
from physlm.data.igsm.stream import IGSMStream, IGSMStreamConfig
from physlm.data.igsm.tokens import IGSMVocab, igsm_vocab, name_world

__all__ = [
    "OOD_OPS",
    "PRESETS",
    "CheckReport",
    "IGSMConfig",
    "IGSMStream",
    "IGSMStreamConfig",
    "IGSMVocab",
    "NameWorld",
    "ParseError",
    "Problem",
    "ProbeLabels",
    "RetrySolution",
    "WorldConfig",
    "check",
    "define_points",
    "describe",
    "generate",
    "igsm_preset",
    "igsm_vocab",
    "name_world",
    "parse_problem",
    "probe_input",
    "probe_labels",
    "probe_positions",
    "problems",
    "reask",
    "sample_op",
    "solution_template",
    "template_bin",
    "with_retries",
]
