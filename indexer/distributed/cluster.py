"""Joining a Ray cluster, or starting one on this machine (``local``)."""

from __future__ import annotations

import os
from typing import Any

from indexer.errors import FindlingError

LOCAL = "local"
NAMESPACE = "findling"
# a local cluster keeps its shared-memory object store small: findling passes documents and
# candidates through it, never vectors of a whole collection
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


class RayUnavailableError(FindlingError):
    """Ray is not installed, or the cluster cannot be reached."""

    code = "ray_unavailable"


def import_ray() -> Any:
    """The ray module, or an error that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            "Ray is not installed", 'install the extra: pip install "findling[ray]"'
        ) from exc
    return ray


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Join the cluster at ``address`` (``ray start --head`` printed it; ``auto`` finds one
    on this machine), or start one here for ``local``; returns the ray module."""
    # findling works offline: no usage statistics are sent home
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address == LOCAL:
        # Ray's single-machine mode (its default on macOS and Windows): every process listens
        # on loopback only, so a cluster started for one machine is reachable from no other
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
    try:
        if address == LOCAL:
            ray.init(
                num_cpus=num_cpus,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                **options,
            )
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailableError(
            f"cannot join the Ray cluster at {address} ({exc})",
            "start one with `ray start --head` (then `ray start --address HEAD:6379` on the "
            "other machines), or use --ray local",
        ) from exc
    return ray


def disconnect() -> None:
    """Leave the cluster (a local one stops)."""
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()
