"""The NMN study on CLEVR-format data (thesis ch. 4): typed and classic module kinds,
the image and question encoders, the FiLM baseline, training modes and the study.

In data-flow order: vocabularies; attention modules; answer modules; image encoder;
FiLM; program layouts and the full model; study data; training; the study.

Example:
    >>> from brickwork.studies.clevr.nmn import nmn_kinds
    >>> sorted(nmn_kinds("typed", channels=8).kinds())[:3]
    ['And', 'Or', 'compare']
"""

from brickwork.studies.clevr.nmn.vocab import ANSWER_INDEX, K, Tokenizer, valid_answers
from brickwork.studies.clevr.nmn.modules import (
    INTERFACES,
    Find,
    Relate,
    Same,
    Scene,
    Unique,
    activate,
    attend,
    mask_type,
)
from brickwork.studies.clevr.nmn.answers import COMPARISONS, Compare, Measure, Query, QuestionEncoder
from brickwork.studies.clevr.nmn.encoder import ImageEncoder, cell_targets, encode, train_encoder
from brickwork.studies.clevr.nmn.film import FiLM
from brickwork.studies.clevr.nmn.layouts import (
    NMN,
    LayoutCache,
    layout_program,
    merge_prior,
    nmn_kinds,
    program_layout,
)
from brickwork.studies.clevr.nmn.data import FIND_VALUES, StudyConfig, StudyData, prepare_data
from brickwork.studies.clevr.nmn.plan import study_plan
from brickwork.studies.clevr.nmn.train import (
    accuracy,
    error_by_depth,
    makespan,
    time_to_reach,
    train_e2e,
    train_film,
    train_modular,
    train_sgm_module,
)
from brickwork.studies.clevr.nmn.study import plot_study, run_study, summarize_depths

__all__ = [
    "ANSWER_INDEX", "K", "Tokenizer", "valid_answers",
    "INTERFACES", "Find", "Relate", "Same", "Scene", "Unique", "activate", "attend", "mask_type",
    "COMPARISONS", "Compare", "Measure", "Query", "QuestionEncoder",
    "ImageEncoder", "cell_targets", "encode", "train_encoder",
    "FiLM",
    "NMN", "LayoutCache", "layout_program", "merge_prior", "nmn_kinds", "program_layout",
    "FIND_VALUES", "StudyConfig", "StudyData", "prepare_data",
    "study_plan",
    "accuracy", "error_by_depth", "makespan", "time_to_reach", "train_e2e", "train_film",
    "train_modular", "train_sgm_module",
    "plot_study", "run_study", "summarize_depths",
]
