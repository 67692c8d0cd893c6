"""A local sqlite MLflow store per test module (real MLflow, no server)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    """``(uri, client, experiment_id)`` of a fresh sqlite store with one experiment."""
    from mlflow import MlflowClient

    from mixsize_ray.tracking.uri import artifact_location

    d = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{d}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("unit", artifact_location=artifact_location(uri))
    return uri, client, exp


class FlakyClient:
    """A real MlflowClient that raises ConnectionError while ``down`` is set (a server that went away)."""

    def __init__(self, client):
        self.client, self.down, self.calls = client, False, 0

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls += 1
            if self.down:
                raise ConnectionError("Connection refused (test: server down)")
            return attr(*args, **kwargs)

        return call
