"""An autoscaling Ray cluster on this machine, made from cluster.yaml's own node types.

Ray's autoscaler (v2) runs in the head with the fake multi-node provider, which starts and stops
local "nodes" of the declared types (GPU included: a fake GPU node has a GPU resource and no CUDA) as
it would cloud instances. `ray.cluster_utils.AutoscalingCluster` and `ray up` with fake_multinode are
not usable here (the wheel lacks fake_multi_node/example.yaml, and both call `ray stop --force`), so
the head is a `ray start --head --block --autoscaling-config=...` of our own, in its own process
group and temp dir; everything it launched is stopped by killing its process tree (LocalCluster).
Each launched node gets a temp dir of its own under the head's (tests/service/fakeprovider.py).

Sizes are shrunk to fit 2 cores: every node type keeps its GPUs but gets NODE_CPUS logical CPUs, and
at most MAX_PER_TYPE nodes; min_workers and the cluster-wide max_workers are kept (capped).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.service.raycluster import LocalCluster, free_port

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
HEAD_TYPE = "ray.head.default"  # the fake provider's name for the head
HEAD_NODE_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # the fake provider's head id
NODE_CPUS = 1  # logical CPUs of every launched node
MAX_PER_TYPE = 2  # nodes of one type at most
IDLE_TIMEOUT_MINUTES = 0.1  # a launched node idle this long is removed (6 s)


def fake_node_types(cluster_yaml: Path = CLUSTER_YAML) -> dict:
    """cluster.yaml's worker node types, shrunk (module doc); the head is the fake provider's."""
    real = yaml.safe_load(cluster_yaml.read_text())
    types = {}
    for name, spec in real["available_node_types"].items():
        if name == real["head_node_type"]:
            continue
        resources = {"CPU": NODE_CPUS, **({"GPU": spec["resources"]["GPU"]} if spec["resources"].get("GPU") else {})}
        types[name] = {"resources": resources, "node_config": {}, "min_workers": spec.get("min_workers", 0),
                       "max_workers": min(spec["max_workers"], MAX_PER_TYPE)}
    return types


def autoscaling_config(gcs_address: str, head_cpus: int, node_temp_root: str,
                       cluster_yaml: Path = CLUSTER_YAML) -> dict:
    real = yaml.safe_load(cluster_yaml.read_text())
    types = fake_node_types(cluster_yaml)
    types[HEAD_TYPE] = {"resources": {"CPU": head_cpus}, "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "raysemble-fake",
        "max_workers": min(real["max_workers"], sum(t["max_workers"] for t in types.values())),
        "upscaling_speed": real.get("upscaling_speed", 1.0),
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {"type": "external", "module": "tests.service.fakeprovider.SeparateTempFakeProvider",
                     "node_temp_root": node_temp_root,
                     "gcs_address": gcs_address, "head_node_id": HEAD_NODE_ID, "launch_multiple": True,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types,
        "head_node_type": HEAD_TYPE,
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


class AutoscalingCluster(LocalCluster):
    """A head whose autoscaler launches fake nodes of cluster.yaml's types on demand."""

    def __init__(self, head_cpus: int = 1, token: str | None = None):
        super().__init__(num_cpus=head_cpus, token=token)
        self.env.update({"RAY_FAKE_CLUSTER": "1", "RAY_enable_autoscaler_v2": "1",
                         "RAY_CLOUD_INSTANCE_ID": HEAD_NODE_ID, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": HEAD_NODE_ID,
                         "AUTOSCALER_UPDATE_INTERVAL_S": "1",
                         # the head's autoscaler imports the provider from tests/service/fakeprovider.py
                         "PYTHONPATH": str(REPO)})
        self.config_path = Path(self.temp) / "autoscaling.yaml"
        self.config_path.write_text(json.dumps(autoscaling_config(f"127.0.0.1:{self.gcs_port}", head_cpus,
                                                                  self.temp)))

    def start_head(self, timeout_s: float = 120) -> None:
        self._start(["--head", f"--port={self.gcs_port}", f"--temp-dir={self.temp}",
                     "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}",
                     f"--autoscaling-config={self.config_path}"], "head")
        self.wait_for_nodes(1, timeout_s)

    def autoscaler_log(self, last: int = 60) -> str:
        """The head autoscaler's last instance transitions and launches: what a failed test prints."""
        path = Path(self.temp) / "session_latest" / "logs" / "monitor.log"
        wanted = ("instance_manager.py", "event_logger.py", "node_provider.py", "ERROR", "Traceback")
        lines = [line for line in path.read_text(errors="replace").splitlines() if any(w in line for w in wanted)] \
            if path.exists() else []
        return "\n".join(lines[-last:])

    def shutdown(self) -> None:
        log = Path(self.temp) / "session_latest" / "logs" / "monitor.log"
        if getattr(self, "tmp", None) and log.exists():  # kept beside the test's files, for a failure's reader
            shutil.copy(log, self.tmp / "monitor.log")
        super().shutdown()

    def kill_node(self, node_id: str) -> int:
        """Kill a launched node as a reclaimed instance dies: every process of it (its raylet, workers,
        agents: they carry the node id the fake provider gave them). Returns how many were killed."""
        import psutil

        victims = []
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get("RAY_OVERRIDE_NODE_ID_FOR_TESTING") == node_id:
                    victims.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        for p in victims:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        return len(victims)
