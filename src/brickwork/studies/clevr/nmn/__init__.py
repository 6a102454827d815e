"""The NMN study on CLEVR-format data (thesis ch. 4): typed and classic module kinds,
the image and question encoders, the FiLM baseline, training modes and the study.

In data-flow order: vocabularies; attention modules; answer modules; image encoder;
FiLM; program layouts and the full model; study data; evaluation; training (end to end,
SGM, modular); variants, cost, reports, jobs, plots; the study.

Example:
    >>> from brickwork.studies.clevr.nmn import nmn_kinds
    >>> sorted(nmn_kinds("typed", channels=8).kinds())[:3]
    ['And', 'Or', 'compare']
"""

from brickwork.studies.clevr.nmn.answers import (
    COMPARISONS,
    Compare,
    Measure,
    Query,
    QuestionEncoder,
)
from brickwork.studies.clevr.nmn.cost import time_to_reach
from brickwork.studies.clevr.nmn.data import FIND_VALUES, StudyConfig, StudyData, prepare_data
from brickwork.studies.clevr.nmn.encoder import ImageEncoder, cell_targets, encode, train_encoder
from brickwork.studies.clevr.nmn.end_to_end import train_e2e, train_film
from brickwork.studies.clevr.nmn.evaluate import accuracy, error_by_depth
from brickwork.studies.clevr.nmn.film import FiLM
from brickwork.studies.clevr.nmn.layouts import (
    NMN,
    LayoutCache,
    layout_program,
    merge_prior,
    nmn_kinds,
    program_layout,
)
from brickwork.studies.clevr.nmn.modular import train_modular
from brickwork.studies.clevr.nmn.modules import (
    INTERFACES,
    Find,
    Relate,
    Same,
    Scene,
    Unique,
    activate,
    mask_type,
)
from brickwork.studies.clevr.nmn.plan import study_plan
from brickwork.studies.clevr.nmn.plots import plot_study
from brickwork.studies.clevr.nmn.report import summarize_depths
from brickwork.studies.clevr.nmn.sgm import train_sgm_module
from brickwork.studies.clevr.nmn.study import run_study
from brickwork.studies.clevr.nmn.variants import Variant
from brickwork.studies.clevr.nmn.vocab import ANSWER_INDEX, K, Tokenizer, valid_answers

__all__ = [
    "ANSWER_INDEX",
    "K",
    "Tokenizer",
    "valid_answers",
    "INTERFACES",
    "Find",
    "Relate",
    "Same",
    "Scene",
    "Unique",
    "activate",
    "mask_type",
    "COMPARISONS",
    "Compare",
    "Measure",
    "Query",
    "QuestionEncoder",
    "ImageEncoder",
    "cell_targets",
    "encode",
    "train_encoder",
    "FiLM",
    "NMN",
    "LayoutCache",
    "layout_program",
    "merge_prior",
    "nmn_kinds",
    "program_layout",
    "FIND_VALUES",
    "StudyConfig",
    "StudyData",
    "prepare_data",
    "study_plan",
    "accuracy",
    "error_by_depth",
    "time_to_reach",
    "train_e2e",
    "train_film",
    "train_modular",
    "train_sgm_module",
    "Variant",
    "plot_study",
    "run_study",
    "summarize_depths",
]
