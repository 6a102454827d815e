"""From question text to a CLEVR program: a learned program generator whose decoding is
constrained by the layouts' types, trained on few programs plus answers, and answering
with a trained NMN study's registered modules. See ``docs/clevr-parse.md``.

In data-flow order: the prefix grammar and its constraint; the generator (the monotone
transducer by default, ``transducer.py``; the pointer and seq2seq as comparisons); training
(supervised, recombined questions made from the labelled ones — ``recombine.py`` — then
REINFORCE on answers); parsing one question and the registry; answering
with a study run; the study behind ``bench/clevr_parse.py``.

Example:
    >>> from brickwork.studies.clevr.parse import from_prefix
    >>> p = from_prefix(["count", "filter_shape[cube]", "scene"])
    >>> [str(n) for n in p], p.depth
    (['scene', 'filter_shape[cube]', 'count'], 2)
"""

from brickwork.studies.clevr.parse.answering import (
    StudyRun,
    answer_programs,
    attention_masks,
    image_features,
    rebuild_encoder,
)
from brickwork.studies.clevr.parse.checks import LabelChecks
from brickwork.studies.clevr.parse.grammar import (
    ALLOWED,
    SIGNATURES,
    TOKENS,
    PortStack,
    from_prefix,
    prefix_tokens,
)
from brickwork.studies.clevr.parse.model import ProgramGenerator, words_of
from brickwork.studies.clevr.parse.parser import (
    Parsed,
    load_generator,
    parse_question,
    register_generator,
)
from brickwork.studies.clevr.parse.recombine import Phrasal, object_phrases
from brickwork.studies.clevr.parse.study import ParseStudyConfig, run_parse_study
from brickwork.studies.clevr.parse.train import (
    SELECTIONS,
    ParseConfig,
    evaluate_programs,
    labelled_indices,
    pseudo_labelled,
    recombined_samples,
    train_program_generator,
)
from brickwork.studies.clevr.parse.transducer import (
    canonical_order,
    reading_order,
    transducer_alignment,
)

__all__ = [
    # grammar
    "ALLOWED",
    "SIGNATURES",
    "TOKENS",
    "PortStack",
    "from_prefix",
    "prefix_tokens",
    # generator
    "ProgramGenerator",
    "canonical_order",
    "reading_order",
    "transducer_alignment",
    "words_of",
    # training
    "ParseConfig",
    "SELECTIONS",
    "evaluate_programs",
    "labelled_indices",
    "pseudo_labelled",
    "train_program_generator",
    # self-labels' checks
    "LabelChecks",
    # recombination
    "Phrasal",
    "object_phrases",
    "recombined_samples",
    # parsing and registry
    "Parsed",
    "load_generator",
    "parse_question",
    "register_generator",
    # answering
    "StudyRun",
    "answer_programs",
    "attention_masks",
    "image_features",
    "rebuild_encoder",
    # study
    "ParseStudyConfig",
    "run_parse_study",
]
