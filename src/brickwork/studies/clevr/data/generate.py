"""Generate a whole CLEVR-format dataset: scenes, images and questions, in parallel.

Scene ``i`` and its questions depend only on ``(seed, i)``, so the output is the
same for any number of processes. Nothing is random outside those seeds and no date
is recorded: the same arguments give byte-identical JSON files.

Example:
    >>> import tempfile
    >>> summary = generate_dataset(tempfile.mkdtemp(), n_scenes=3, questions_per_scene=2,
    ...                            max_depth=5, seed=0, processes=1)
    >>> summary["scenes"], summary["questions"]
    (3, 6)
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from brickwork._version import __version__
from brickwork.errors import DataError
from brickwork.modules import atomic_write_json
from brickwork.studies.clevr.data.io import release_paths
from brickwork.studies.clevr.data.question_generator import FAMILIES, generate_questions
from brickwork.studies.clevr.data.render import render_scene, save_png
from brickwork.studies.clevr.data.scene import SceneConfig, generate_scene, image_filename

logger = logging.getLogger(__name__)

#: split names become file and folder names: letters, digits, ``_`` and ``-`` only
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
#: largest sizes accepted (a dataset beyond these is a typo, not a request)
MAX_SCENES: Final = 10_000_000
MAX_QUESTIONS_PER_SCENE: Final = 1000
MAX_IMAGE_SIDE: Final = 4096
MAX_SUPERSAMPLE: Final = 16


def check_split_name(split: str) -> str:
    """Return ``split`` if it is usable in file names, else raise :class:`DataError`.

    Example:
        >>> check_split_name("val_ood")
        'val_ood'
    """
    if not isinstance(split, str) or not SPLIT_NAME.match(split):
        raise DataError(
            f"split name {split!r}: use only letters, digits, '_' and '-' (at most "
            "100 characters; it becomes part of file names), e.g. 'train'"
        )
    return split


def split_files(out_dir: str | Path, split: str) -> list[Path]:
    """The files of ``split`` already in ``out_dir``: its scenes/questions JSON and images.

    Example:
        >>> import tempfile
        >>> split_files(tempfile.mkdtemp(), "train")
        []
    """
    paths = release_paths(out_dir, check_split_name(split))
    found = [p for p in (paths["scenes"], paths["questions"]) if p.exists()]
    if paths["images"].is_dir():
        found += sorted(paths["images"].glob(f"CLEVR_{split}_*.png"))
    return found


def _remove_stale_images(images: Path, split: str, keep: set[str]) -> int:
    """Delete this split's CLEVR images not in ``keep``; returns how many went."""
    if not images.is_dir():
        return 0
    gone = 0
    for png in images.glob(f"CLEVR_{split}_*.png"):
        if png.name not in keep and png.is_file():
            png.unlink()
            gone += 1
    if gone:
        logger.info("removed %d old images of split %r from %s", gone, split, images)
    return gone


def _check_count(name: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DataError(
            f"generate_dataset: {name} = {value!r}; expected a whole number in [{lo}, {hi}]"
        )


def _work(job: dict[str, Any]) -> dict[str, Any]:
    """A worker's job: scenes ``job["indices"]`` of ``job["cfg"]``, their questions and
    images → ``{"results": [(scene JSON, [question JSON, ...]), ...]}``."""
    indices, cfg = job["indices"], job["cfg"]
    scene_cfg = SceneConfig(**cfg["scene_config"]) if cfg["scene_config"] else SceneConfig()
    out = []
    for i in indices:
        scene = generate_scene(i, cfg["seed"], split=cfg["split"], config=scene_cfg)
        qs = generate_questions(
            scene,
            cfg["questions_per_scene"],
            min_depth=cfg["min_depth"],
            max_depth=cfg["max_depth"],
            families=cfg["families"],
            seed=cfg["seed"],
            phrasing=cfg.get("phrasing", "v1"),
            templates=cfg.get("templates"),
        )
        if cfg["images"] is not None:
            image = render_scene(scene, cfg["width"], cfg["height"], supersample=cfg["supersample"])
            save_png(image, Path(cfg["images"]) / scene.image_filename)
        out.append((scene.to_clevr_json(), [q.to_clevr_json() for q in qs]))
    return {"results": out}


def generate_dataset(
    out_dir: str | Path,
    n_scenes: int,
    questions_per_scene: int,
    max_depth: int,
    seed: int = 0,
    *,
    min_depth: int = 1,
    split: str = "train",
    families: Sequence[str] | None = None,
    width: int = 96,
    height: int = 64,
    supersample: int = 2,
    render: bool = True,
    scene_config: SceneConfig | None = None,
    processes: int = 2,
    chunk_size: int = 25,
    progress: bool = False,
    overwrite: bool = True,
    phrasing: str = "v1",
    templates: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write scenes, images and questions of one split in the CLEVR release layout.

    Args:
        out_dir: dataset root; gets ``images/<split>/``, ``scenes/``, ``questions/``.
        n_scenes: number of scenes (and images).
        questions_per_scene: questions per scene.
        max_depth: largest program depth.
        seed: dataset seed.
        min_depth: smallest program depth.
        split: split name used in file names.
        families: question families (all of :data:`FAMILIES` by default).
        width: image width (3:2 with ``height`` looks like CLEVR).
        height: image height.
        supersample: antialiasing factor of the renderer.
        render: also draw the images.
        scene_config: placement and CoGenT condition (CLEVR's defaults).
        processes: worker processes.
        chunk_size: scenes per work item.
        progress: show a tqdm bar.
        overwrite: replace a split already in ``out_dir``; its images that the new
            dataset does not have are removed (all of them with ``render=False``: they
            would not match the new scenes). With ``False`` such a split is refused.
        phrasing: question text version: ``"v1"`` (default; files byte-identical to
            earlier releases) or ``"v2"`` (varied phrasing, ``template_id`` per question;
            recorded in ``info.config.phrasing``). The programs are the same.
        templates: with ``"v2"``, the template ids to use (``None``: all), e.g. every id
            but :data:`~brickwork.studies.clevr.data.phrasing.HELD_OUT`.

    Returns:
        A summary: paths, counts and seconds taken.

    Raises:
        DataError: a size out of range, a bad split name, a depth the generator cannot
            reach, the split already present with ``overwrite=False``, or no question
            generated at all (the JSON files are not written then, so no empty dataset
            looks valid).
    """
    t0 = time.perf_counter()
    check_split_name(split)
    _check_counts(
        n_scenes=n_scenes,
        questions_per_scene=questions_per_scene,
        width=width,
        height=height,
        supersample=supersample,
        processes=processes,
        chunk_size=chunk_size,
    )
    paths = release_paths(out_dir, split)
    if not overwrite:
        _refuse_existing(out_dir, split)
    cfg_scene = scene_config or SceneConfig()
    fams = list(families) if families is not None else list(FAMILIES)
    cfg = {
        "seed": seed,
        "split": split,
        "questions_per_scene": questions_per_scene,
        "min_depth": min_depth,
        "max_depth": max_depth,
        "families": fams,
        "width": width,
        "height": height,
        "supersample": supersample,
        "images": str(paths["images"]) if render else None,
        "scene_config": {k: v for k, v in cfg_scene.__dict__.items()},
        "phrasing": phrasing,
        "templates": sorted(templates) if templates is not None else None,
    }
    # validate the arguments once, before any worker starts or anything is written
    try:
        generate_questions(
            generate_scene(0, seed, config=cfg_scene),
            0,
            min_depth=min_depth,
            max_depth=max_depth,
            families=fams,
            phrasing=phrasing,
            templates=templates,
        )
    except ValueError as exc:
        raise DataError(f"generate_dataset: {exc}") from None
    if render:
        paths["images"].mkdir(parents=True, exist_ok=True)
    jobs = [
        {"indices": list(range(a, min(a + chunk_size, n_scenes))), "cfg": cfg}
        for a in range(0, n_scenes, chunk_size)
    ]
    scenes, questions = _gather(_run_jobs(jobs, processes, progress))
    if questions_per_scene > 0 and not questions:
        raise DataError(
            f"generate_dataset: no question could be generated for {n_scenes} scenes "
            f"at depths {min_depth}..{max_depth} (families {', '.join(fams)}); "
            "try a smaller --min-depth/--max-depth or more families; the scenes and "
            "questions files were not written"
        )
    _remove_stale_images(
        paths["images"],
        split,
        {image_filename(split, i) for i in range(n_scenes)} if render else set(),
    )
    info = _info(
        split,
        seed,
        n_scenes,
        questions_per_scene,
        min_depth,
        max_depth,
        fams,
        width,
        height,
        supersample,
        cfg_scene,
    )
    if phrasing != "v1":  # v1 files stay byte-identical to those written before v2
        info["config"]["phrasing"] = phrasing
        info["config"]["templates"] = cfg["templates"]
    for kind, items in (("scenes", scenes), ("questions", questions)):
        atomic_write_json(paths[kind], {"info": info, kind: items}, indent=None, sort_keys=False)
    seconds = time.perf_counter() - t0
    logger.info("generated %d scenes, %d questions in %.1f s", len(scenes), len(questions), seconds)
    return {
        "root": str(Path(out_dir)),
        "scenes_file": str(paths["scenes"]),
        "questions_file": str(paths["questions"]),
        "images_dir": str(paths["images"]) if render else None,
        "scenes": len(scenes),
        "questions": len(questions),
        "seconds": seconds,
    }


_LIMITS = {
    "n_scenes": (1, MAX_SCENES),
    "questions_per_scene": (0, MAX_QUESTIONS_PER_SCENE),
    "width": (1, MAX_IMAGE_SIDE),
    "height": (1, MAX_IMAGE_SIDE),
    "supersample": (1, MAX_SUPERSAMPLE),
    "processes": (1, 1024),
    "chunk_size": (1, MAX_SCENES),
}


def _check_counts(**values: int) -> None:
    """Each count within its :data:`_LIMITS` range, else the DataError naming it."""
    for name, value in values.items():
        _check_count(name, value, *_LIMITS[name])


def _gather(
    results: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scenes and questions of the workers' results, in scene order; question indices
    follow it."""
    scenes: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    for res in results:
        for scene_json, qs in res["results"]:
            scenes.append(scene_json)
            for q in qs:
                q["question_index"] = len(questions)
                questions.append(q)
    return scenes, questions


def _refuse_existing(out_dir: str | Path, split: str) -> None:
    old = split_files(out_dir, split)
    if old:
        raise DataError(
            f"{out_dir}: already holds split {split!r} ({len(old)} files, e.g. "
            f"{old[0]}); pass overwrite=True (CLI: --force) to replace it, or "
            "choose another folder or split"
        )


def _run_jobs(jobs: list[dict[str, Any]], processes: int, progress: bool) -> list[dict[str, Any]]:
    """:func:`_work` over ``jobs``, on ``processes`` workers when there is more than one
    job; results in the order of ``jobs``."""
    from tqdm.auto import tqdm

    if processes > 1 and len(jobs) > 1:
        from brickwork.training import make_executor  # torch: only where workers run

        with make_executor("local", workers=min(processes, len(jobs))) as ex:
            return ex.map(_work, jobs, progress=progress, desc="clevr generate")
    return [_work(job) for job in tqdm(jobs, disable=not progress, desc="clevr generate")]


def _info(
    split: str,
    seed: int,
    n_scenes: int,
    questions_per_scene: int,
    min_depth: int,
    max_depth: int,
    fams: list[str],
    width: int,
    height: int,
    supersample: int,
    cfg_scene: SceneConfig,
) -> dict[str, Any]:
    """The ``info`` block of the split's scenes and questions files."""
    return {
        "split": split,
        "version": "1.0",
        "license": "Creative Commons Attribution (CC BY 4.0)",
        "generator": "brickwork.studies.clevr.data",
        "brickwork_version": __version__,
        "seed": seed,
        "config": {
            "n_scenes": n_scenes,
            "questions_per_scene": questions_per_scene,
            "min_depth": min_depth,
            "max_depth": max_depth,
            "families": fams,
            "width": width,
            "height": height,
            "supersample": supersample,
            "scene": cfg_scene.to_json(),
        },
        "families": list(FAMILIES),
        "depth": "longest chain of nodes from a scene node to the output, scene not counted",
    }


__all__ = [
    "MAX_QUESTIONS_PER_SCENE",
    "MAX_SCENES",
    "SPLIT_NAME",
    "check_split_name",
    "generate_dataset",
    "split_files",
]
