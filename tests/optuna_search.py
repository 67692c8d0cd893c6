"""A real, small search folder for dashboard tests: ``search.json`` as `mixsize-ray tune` writes it and an
Optuna study with a few finished trials in a real sqlite ``optuna.db`` (Optuna directly, no Ray); and the
check that a stopped dashboard left its port closed."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

STUDY = "dash-20250101-000000"


def make_search(folder: Path, trials: int = 4, study: str = STUDY) -> str:
    """Write the study and ``search.json`` into ``folder`` (created); return the storage URL."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'optuna.db'}"
    storage = optuna.storages.RDBStorage(url)
    s = optuna.create_study(study_name=study, storage=storage, direction="maximize")
    s.optimize(lambda t: t.suggest_float("p_16", 0.05, 0.9) + (t.suggest_categorical("mode", ["B+", "D+"]) == "B+"),
               n_trials=trials)
    storage.remove_session()
    meta = {"name": study, "study_name": study, "storage_url": url, "num_samples": trials, "fingerprint": "0" * 16,
            "created": "2025-01-01T00:00:00", "tracking_uri": None, "parent_run_id": None}
    (folder / "search.json").write_text(json.dumps(meta, indent=2))
    return url


def assert_port_closed(port: int) -> None:
    """Nothing listens on ``port`` and a server could bind it again (as servers do, past TIME_WAIT)."""
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))

