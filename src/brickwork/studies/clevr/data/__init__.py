"""CLEVR-format data for the thesis's compositional generalization study (§4.3.3).

In data-flow order: the vocabulary; scenes (generation, relationships); rendering and
per-object masks; programs and their depth; the symbolic executor; the question
generator; whole-dataset generation; loaders and writers (release and CLEVR-generator
formats); splits; statistics. See ``docs/clevr-data.md``.

Example:
    >>> from brickwork.studies.clevr.data import generate_scene, generate_questions, execute
    >>> scene = generate_scene(0, seed=0)
    >>> q = generate_questions(scene, 1, min_depth=3, max_depth=3)[0]
    >>> execute(q.program, scene) == q.answer
    True
"""

from brickwork.studies.clevr.data.camera import Camera
from brickwork.studies.clevr.data.executor import (
    SceneIndex,
    execute,
    execute_trace,
    is_well_posed,
)
from brickwork.studies.clevr.data.generate import generate_dataset
from brickwork.studies.clevr.data.io import (
    ClevrDataset,
    QuestionsFile,
    ScenesFile,
    load_questions,
    load_questions_file,
    load_scenes,
    load_scenes_file,
    write_questions,
    write_scenes,
)
from brickwork.studies.clevr.data.program import Program, ProgramNode, program_depth
from brickwork.studies.clevr.data.question import Question
from brickwork.studies.clevr.data.question_generator import FAMILIES, generate_questions
from brickwork.studies.clevr.data.render import (
    contact_sheet,
    object_id_map,
    object_masks,
    render_batch,
    render_scene,
)
from brickwork.studies.clevr.data.scene import (
    COGENT_A,
    COGENT_B,
    Scene,
    SceneConfig,
    SceneObject,
    compute_relationships,
    generate_scene,
    image_filename,
)
from brickwork.studies.clevr.data.splits import Splits, load_splits, make_splits
from brickwork.studies.clevr.data.stats import dataset_stats, plot_stats
from brickwork.studies.clevr.data.vocabulary import (
    ANSWERS,
    ATTRIBUTES,
    COLORS,
    FUNCTIONS,
    INVALID,
    MATERIALS,
    RELATIONS,
    SHAPES,
    SIZES,
    FunctionSpec,
    format_answer,
)

__all__ = [
    # vocabulary
    "ANSWERS",
    "ATTRIBUTES",
    "COLORS",
    "FUNCTIONS",
    "INVALID",
    "MATERIALS",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "FunctionSpec",
    "format_answer",
    # scenes
    "Camera",
    "COGENT_A",
    "COGENT_B",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "compute_relationships",
    "generate_scene",
    "image_filename",
    # rendering
    "contact_sheet",
    "object_id_map",
    "object_masks",
    "render_batch",
    "render_scene",
    # programs and execution
    "Program",
    "ProgramNode",
    "program_depth",
    "SceneIndex",
    "execute",
    "execute_trace",
    "is_well_posed",
    # questions and datasets
    "Question",
    "FAMILIES",
    "generate_questions",
    "generate_dataset",
    # files
    "ClevrDataset",
    "QuestionsFile",
    "ScenesFile",
    "load_questions",
    "load_questions_file",
    "load_scenes",
    "load_scenes_file",
    "write_questions",
    "write_scenes",
    # splits and statistics
    "Splits",
    "load_splits",
    "make_splits",
    "dataset_stats",
    "plot_stats",
]
