"""Work sent to Ray outside a running session is refused (it would start a private local cluster)."""
from __future__ import annotations

import pytest

from trainers.raytrain import run_on_ray, run_on_ray_train


def _double(payload: dict) -> int:
    return payload["n"] * 2


@pytest.mark.parametrize("send", [run_on_ray, run_on_ray_train])
def test_without_a_running_ray_session_nothing_is_sent(send):
    import ray

    assert not ray.is_initialized()  # module-scoped sessions of other modules are shut down by now
    with pytest.raises(RuntimeError, match=r"a running Ray session \(ray.init\) must hold, but got none"):
        send(_double, {"n": 1}, name="refused")
    assert not ray.is_initialized()
