"""Old name of :mod:`brickwork.studies.clevr.data.question_generator` (``brickwork.cli.clevr`` imports it; beside ``question.py`` it read as the same thing); new code imports that module."""

from brickwork.studies.clevr.data.question_generator import (
    FAMILIES,
    MAX_DEPTH,
    family_min_depth,
    generate_questions,
)

__all__ = ["FAMILIES", "MAX_DEPTH", "family_min_depth", "generate_questions"]
