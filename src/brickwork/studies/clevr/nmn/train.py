"""Old import path of the study's training functions (``bench/nmn_recorded.py`` uses it); new code imports them from the module of their concept."""

from brickwork.studies.clevr.nmn.end_to_end import LR, train_e2e, train_film, train_loop
from brickwork.studies.clevr.nmn.evaluate import accuracy, error_by_depth
from brickwork.studies.clevr.nmn.modular import find_modules, freeze, recorded_finds, train_modular
from brickwork.studies.clevr.nmn.sgm import train_sgm_module

__all__ = ["LR", "accuracy", "error_by_depth", "find_modules", "freeze", "recorded_finds",
           "train_e2e", "train_film", "train_loop", "train_modular", "train_sgm_module"]
