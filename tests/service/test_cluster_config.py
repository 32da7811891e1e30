"""cluster.yaml against Ray's own cluster-launcher schema (ray/autoscaler/ray-schema.json) and the
checks `ray up` runs before it launches anything."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_raw_file_matches_rays_schema(config):
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)


def test_prepared_config_passes_rays_validation(config):
    # what `ray up` does before launching: merge the AWS defaults, then validate
    validate_config(prepare_config(copy.deepcopy(config)))


def test_a_broken_config_is_caught(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_1x_a10g"]["not_a_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_cpu_head_and_gpu_workers_that_scale_from_zero(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    gpu = {name: t for name, t in types.items() if t["node_config"]["InstanceType"].startswith("g5.")}
    assert "gpu_1x_a10g" in gpu and gpu["gpu_1x_a10g"]["node_config"]["InstanceType"] == "g5.xlarge"
    for t in gpu.values():
        assert t["min_workers"] == 0 and t["max_workers"] >= 1
    # CPU work beyond the head must have a worker type without GPUs to scale into
    cpu = [t for name, t in types.items() if name != config["head_node_type"] and name not in gpu]
    assert cpu and all(t["min_workers"] == 0 and not t["node_config"]["InstanceType"].startswith(("g", "p"))
                       for t in cpu)
    assert sum(t["max_workers"] for name, t in types.items() if name != config["head_node_type"]) \
        <= config["max_workers"]
    assert config["provider"]["type"] == "aws"


def test_setup_installs_pinned_torch_before_raysemble(config):
    commands = config["setup_commands"]
    torch = next(i for i, c in enumerate(commands) if "torch==" in c)
    project = next(i for i, c in enumerate(commands) if "raysemble" in c and "install" in c)
    assert torch < project
    assert any("ray start --head" in c for c in config["head_start_ray_commands"])
    assert any("ray start --address" in c for c in config["worker_start_ray_commands"])
    assert any("raysemble api" in c and "s3://" in c for c in config["head_start_ray_commands"])
    assert "s3://" in CLUSTER_YAML.read_text() and "storage_path" in CLUSTER_YAML.read_text()
