"""Where the time of ``a3d prepare scenes`` goes, and what reusing rendered views saves.

Times, single-threaded (what each ``--workers`` process does), at the default settings:

* rendering one object view (the pool's unit of work),
* composing one scene from the pool and encoding its PNG and annotations,

then prints the cost of the default dataset (200 + 50 images) as built (a pool of views reused
across scenes) side by side with the baseline of rendering every instance afresh.

    python benchmarks/bm_prepare_scenes.py [--views 24] [--scenes 40]
"""

from __future__ import annotations

import argparse
import time

import torch

from a3d_core.data.prepare_scenes import ScenesRequest, _object_tasks, _record, _render_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=24, help="object views rendered for the timing")
    parser.add_argument("--scenes", type=int, default=40, help="scenes composed for the timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    request = ScenesRequest()

    tasks = _object_tasks(request, "train")
    started = time.perf_counter()
    pool, index = [], 0
    while len(pool) < args.views:
        pool += _render_task(tasks[index % len(tasks)])
        index += 1
    per_view = (time.perf_counter() - started) / len(pool)

    started = time.perf_counter()
    instances = 0
    for scene_index in range(args.scenes):
        instances += len(_record(request, pool, "train", scene_index).annotations)
    per_scene = (time.perf_counter() - started) / args.scenes
    per_image_instances = instances / args.scenes

    images = request.train_images + request.val_images
    pool_views = (
        sum(len(_object_tasks(request, split)) for split in request.split_sizes) * request.pool.views_per_object
    )
    rows = [
        ("render one view", f"{per_view * 1000:.0f} ms"),
        ("compose + encode one scene", f"{per_scene * 1000:.0f} ms ({per_image_instances:.2f} instances)"),
        (
            "default set, pool reused",
            f"{pool_views} views + {images} scenes = {pool_views * per_view + images * per_scene:.1f} s",
        ),
        (
            "baseline: render every instance",
            f"{images * per_image_instances:.0f} views + {images} scenes = "
            f"{images * (per_image_instances * per_view + per_scene):.1f} s",
        ),
    ]
    print(f"render size {request.render_size}, image {request.scene.width}x{request.scene.height}, one thread")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
