"""Fixtures for the serving tests: small bundles, and one real Ray + Serve for the whole directory."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from serving.cluster import free_port, start_ray
from serving.config import ServeConfig

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local test Ray; the data plane has its own token


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """(ensemble dir, student dir): a mixed ensemble (3 MLPs, a logistic regression and gradient
    boosting) + 1 student, digits, 2 epochs each: every serving test serves members of several families."""
    from serving.demo import make_bundles

    return make_bundles(tmp_path_factory.mktemp("bundles"), members=3, epochs=2, hidden=32,
                        others=({"family": "logreg"}, {"family": "hist_gb", "max_iter": 20, "rounds": 1}))


@pytest.fixture(scope="session")
def digits_x():
    from serving.demo import digits

    return digits()[0]


@pytest.fixture(scope="module")
def serve_port():
    """A local Ray (2 CPUs) with Serve's HAProxy ingress on a free loopback port."""
    import ray
    from ray import serve

    temp = tempfile.mkdtemp(prefix="rss-", dir="/tmp")  # short: Ray and HAProxy put unix sockets here
    saved = dict(os.environ)
    port = free_port()
    cfg = ServeConfig(port=port)
    start_ray(cfg, num_cpus=2, temp_dir=temp, haproxy_dir=os.path.join(temp, "hap"), drain_s=2)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def table_bundles(tmp_path_factory):
    """(ensemble dir, student dir) of a raw table (numbers with gaps, words, a flag, a word target):
    mlp + hist_gb + logreg members, each with its own encoding, and an MLP student."""
    from serving.demo import make_table_bundles

    members = ({"family": "mlp", "hidden": 16, "epochs": 4}, {"family": "hist_gb", "max_iter": 20, "rounds": 1},
               {"family": "logreg"})
    return make_table_bundles(tmp_path_factory.mktemp("table-bundles"), members)
