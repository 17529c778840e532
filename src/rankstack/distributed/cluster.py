"""Ray for rankstack: the one place that imports Ray, and a cluster connection the way laptops and CI want it."""

from __future__ import annotations

import logging
from typing import Any

from rankstack.errors import RankstackError


def ray_module() -> Any:
    """The `ray` module, or a RankstackError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RankstackError("rankstack.distributed needs Ray: pip install 'rankstack[ray]'") from None
    return ray


def init(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
         object_store_mb: int | None = None, **options: Any) -> None:
    """Connect to a Ray cluster: `address` ("auto" on a node of a cluster started with `ray start`, or
    "ray://head:10001"), else a local cluster on this machine with `num_cpus` / `num_gpus` (default: all) and an
    object store of `object_store_mb` MB (default: Ray's). No dashboard, and the workers' logs stay in Ray's log
    files. Nothing happens when Ray is already initialised. `options` go to `ray.init`."""
    ray = ray_module()
    if ray.is_initialized():
        return
    settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        settings.update(num_cpus=num_cpus, num_gpus=num_gpus)
        if object_store_mb is not None:
            settings["object_store_memory"] = int(object_store_mb) << 20
    settings.update(options)
    ray.init(address=address, **settings)
    quiet_data()


def ensure() -> Any:
    """The `ray` module, initialised (a local cluster with Ray's defaults when nothing was started)."""
    ray = ray_module()
    if not ray.is_initialized():
        init()
    return ray


def quiet_data() -> None:
    """Ray Data without progress bars and progress logs (rankstack shows its own progress)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
