"""Ray for rankstack: the one place that imports Ray, and a cluster connection the way laptops and CI want it."""

from __future__ import annotations

import logging
import socket
from typing import Any

from rankstack.errors import RankstackError

PROBE_SECONDS = 5.0  # how long a cluster address may take to accept a connection before it counts as unreachable


def ray_module() -> Any:
    """The `ray` module, or a RankstackError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RankstackError("rankstack.distributed needs Ray: pip install 'rankstack[ray]'") from None
    return ray


def init(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
         object_store_mb: int | None = None, **options: Any) -> bool:
    """Connect to a Ray cluster: `address` ("auto" on a node of a cluster started with `ray start`,
    "head-host:6379", or "ray://head:10001"), else a local cluster on this machine with `num_cpus` / `num_gpus`
    (default: all) and an object store of `object_store_mb` MB (default: Ray's). No dashboard, and the workers' logs
    stay in Ray's log files. Nothing happens when Ray is already initialised. `options` go to `ray.init`.
    Whether this call connected (False: Ray was already initialised); a RankstackError when the address does not
    answer, instead of Ray's long retries."""
    ray = ray_module()
    if ray.is_initialized():
        return False
    settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address is None:
        settings.update(num_cpus=num_cpus, num_gpus=num_gpus)
        if object_store_mb is not None:
            settings["object_store_memory"] = int(object_store_mb) << 20
    else:
        probe(address)
    settings.update(options)
    try:
        ray.init(address=address, **settings)
    except ConnectionError as e:
        raise RankstackError(f"cannot connect to the Ray cluster at {address!r}: {e}") from None
    quiet_data()
    return True


def probe(address: str) -> None:
    """RankstackError unless `address` (host:port, or ray://host:port; "auto" is looked up by Ray itself) accepts
    a TCP connection within PROBE_SECONDS."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RankstackError(f"a Ray address is 'auto', 'host:port' or 'ray://host:port', got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as e:
        raise RankstackError(f"the Ray cluster at {address!r} does not answer ({e.strerror or e}): start it with "
                             "`ray start --head`, or check the address") from None


def shutdown() -> None:
    """Disconnect from Ray (a local cluster that `init` started stops with it)."""
    ray = ray_module()
    if ray.is_initialized():
        ray.shutdown()


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
