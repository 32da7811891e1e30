"""Starting (or joining) Ray for serving, with the fast HTTP ingress switched on.

Ray Serve's default path is client -> Python HTTP proxy actor -> ingress replica. With
`ingress: haproxy`, Ray 2.60 runs its bundled HAProxy on the configured host:port instead and
each ingress replica serves HTTP itself (direct ingress); HAProxy health-checks the replicas and
follows rolling updates. These switches are read by Ray's processes when they start, so they
apply when raysemble starts Ray; a cluster started elsewhere (RAY_ADDRESS) keeps its own.
"""
from __future__ import annotations

import os
import socket

from serving.config import ServeConfig

# throughput-optimised Serve: user code on the replica's main loop (no thread hop per request),
# buffered access logs, GC frozen after start, gRPC between deployments
FAST_INGRESS = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
_PORT_VARS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT",
              "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT", "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT")
_HAPROXY_FILES = {"RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg", "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
                  "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
                  "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": "metrics.sock"}


# Ports handed out for later use lie between Ray's worker ports (10002-19999 by default) and the kernel's
# ephemeral range (from 32768): a port the kernel picked for "any free port" was free only at that
# moment, and by the time HAProxy bound it, minutes later, a Ray worker's outgoing connection had taken
# it ("cannot bind socket (Address already in use)"). Nothing takes these by chance.
PORT_RANGE = (20000, 32767)


def free_port(host: str = "127.0.0.1") -> int:
    import random

    low, high = PORT_RANGE
    for port in random.sample(range(low, high + 1), 200):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # the range is crowded: any port the kernel gives
        s.bind((host, 0))
        return s.getsockname()[1]


def ingress_env(config: ServeConfig, haproxy_dir: str | None = None, drain_s: float | None = None) -> dict[str, str]:
    """Environment for Ray's processes. HAProxy's side ports (stats, metrics, fallback proxy) get free
    ports rather than Ray's fixed defaults, so two local instances do not collide; haproxy_dir keeps
    its files out of the shared /tmp/haproxy-serve (keep it short: it holds unix sockets);
    drain_s shortens how long a replica being replaced keeps serving before it stops (Ray: 30 s)."""
    if config.ingress != "haproxy":
        return {}
    env = dict(FAST_INGRESS)
    env.update({var: str(free_port("0.0.0.0")) for var in _PORT_VARS})  # HAProxy binds its side ports on all
    if haproxy_dir is not None:
        env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"] = haproxy_dir
        env.update({var: os.path.join(haproxy_dir, name) for var, name in _HAPROXY_FILES.items()})
    if drain_s is not None:
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = str(drain_s)
    return env


def start_ray(config: ServeConfig, num_cpus: int | None = None, temp_dir: str | None = None,
              haproxy_dir: str | None = None, drain_s: float | None = None) -> bool:
    """Join RAY_ADDRESS, or start a local Ray with the ingress environment. True if it started one."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
        return False
    os.environ.update(ingress_env(config, haproxy_dir, drain_s))
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _temp_dir=temp_dir)
    return True
