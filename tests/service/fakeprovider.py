"""Ray's fake multi-node provider, with a temp dir per launched node.

Its nodes otherwise share the head's temp dir, and so its unpacked runtime_env working dirs: a node
that starts (or dies) then removes directories other nodes' workers run in, which separate machines
never do. Loaded by the head's autoscaler (the `module` of the provider section), so it must import
from the repository root (tests/service/autoscaling.py puts it on the head's PYTHONPATH).
"""
from __future__ import annotations

import tempfile

import ray._private.parameter as parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


# Ray's own class, taken once at import: a swap below always wraps this one, never another swap
_RAY_PARAMS = parameter.RayParams


class SeparateTempFakeProvider(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        root = self.provider_config["node_temp_root"]

        def params(**kwargs):
            return _RAY_PARAMS(temp_dir=tempfile.mkdtemp(prefix="n", dir=root), **kwargs)

        # the autoscaler launches node types from several threads at once. The base class builds
        # RayParams by attribute lookup: swapped for this call only, under the lock every launch takes
        # (read outside it, a second launch saw the first one's swap, wrapped it, and put it back for
        # good: every later launch then failed, "multiple values for keyword argument 'temp_dir'")
        with self.lock:
            parameter.RayParams = params
            try:
                super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
            finally:
                parameter.RayParams = _RAY_PARAMS
