import pytest
from pydantic import ValidationError

from serving.config import ServeConfig


def test_defaults_are_consistent():
    cfg = ServeConfig()
    assert cfg.max_ongoing_requests >= cfg.max_batch_size and cfg.min_replicas <= cfg.max_replicas


@pytest.mark.parametrize("fields, message", [
    ({"min_replicas": 3, "max_replicas": 2}, "min_replicas <= max_replicas must hold, but got 3 > 2"),
    ({"max_batch_size": 65, "max_ongoing_requests": 64}, "max_ongoing_requests >= max_batch_size must hold"),
    ({"ingress": "nginx"}, "ingress"),
    ({"max_body_bytes": 1023}, "max_body_bytes"),
    ({"unknown": 1}, "unknown"),
])
def test_inconsistent_settings_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        ServeConfig(**fields)


def test_at_the_limit():
    assert ServeConfig(max_batch_size=64, max_ongoing_requests=64).max_batch_size == 64
    assert ServeConfig(min_replicas=2, max_replicas=2).min_replicas == 2
