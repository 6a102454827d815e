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
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from brickwork._version import __version__
from brickwork.studies.clevr.data.io import atomic_write_json, release_paths
from brickwork.studies.clevr.data.questions import FAMILIES, generate_questions
from brickwork.studies.clevr.data.render import render_scene, save_png
from brickwork.studies.clevr.data.scene import SceneConfig, generate_scene

logger = logging.getLogger(__name__)


def _work(job: tuple[list[int], dict[str, Any]]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    indices, cfg = job
    scene_cfg = SceneConfig(**cfg["scene_config"]) if cfg["scene_config"] else SceneConfig()
    out = []
    for i in indices:
        scene = generate_scene(i, cfg["seed"], split=cfg["split"], config=scene_cfg)
        qs = generate_questions(scene, cfg["questions_per_scene"], min_depth=cfg["min_depth"],
                                max_depth=cfg["max_depth"], families=cfg["families"],
                                seed=cfg["seed"])
        if cfg["images"] is not None:
            image = render_scene(scene, cfg["width"], cfg["height"], supersample=cfg["supersample"])
            save_png(image, Path(cfg["images"]) / scene.image_filename)
        out.append((scene.to_clevr_json(), [q.to_clevr_json() for q in qs]))
    return out


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

    Returns:
        A summary: paths, counts and seconds taken.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    paths = release_paths(out_dir, split)
    if render:
        paths["images"].mkdir(parents=True, exist_ok=True)
    cfg_scene = scene_config or SceneConfig()
    fams = list(families) if families is not None else list(FAMILIES)
    cfg = {
        "seed": seed, "split": split, "questions_per_scene": questions_per_scene,
        "min_depth": min_depth, "max_depth": max_depth, "families": fams,
        "width": width, "height": height, "supersample": supersample,
        "images": str(paths["images"]) if render else None,
        "scene_config": {k: v for k, v in cfg_scene.__dict__.items()},
    }
    # validate the arguments once, before any worker starts
    generate_questions(generate_scene(0, seed, config=cfg_scene), 0, min_depth=min_depth,
                       max_depth=max_depth, families=fams)
    jobs = [(list(range(a, min(a + chunk_size, n_scenes))), cfg)
            for a in range(0, n_scenes, chunk_size)]
    scenes: list[dict[str, Any]] = []
    questions: list[dict[str, Any]] = []
    bar = tqdm(total=n_scenes, disable=not progress, desc="clevr generate", unit="scene")

    def collect(results: list[tuple[dict[str, Any], list[dict[str, Any]]]]) -> None:
        for scene_json, qs in results:
            scenes.append(scene_json)
            for q in qs:
                q["question_index"] = len(questions)
                questions.append(q)
        bar.update(len(results))

    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            for results in pool.imap(_work, jobs):
                collect(results)
    else:
        for job in jobs:
            collect(_work(job))
    bar.close()
    info = {
        "split": split,
        "version": "1.0",
        "license": "Creative Commons Attribution (CC BY 4.0)",
        "generator": "brickwork.studies.clevr.data",
        "brickwork_version": __version__,
        "seed": seed,
        "config": {
            "n_scenes": n_scenes, "questions_per_scene": questions_per_scene,
            "min_depth": min_depth, "max_depth": max_depth, "families": fams,
            "width": width, "height": height, "supersample": supersample,
            "scene": cfg_scene.to_json(),
        },
        "families": list(FAMILIES),
        "depth": "longest chain of nodes from a scene node to the output, scene not counted",
    }
    atomic_write_json(paths["scenes"], {"info": info, "scenes": scenes})
    atomic_write_json(paths["questions"], {"info": info, "questions": questions})
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


__all__ = ["generate_dataset"]
