"""What describes a run in MLflow: its resolved config as params, and tags for filtering.

Example:
    >>> from mixsize_ray.config import load_config
    >>> cfg = load_config(None, ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+"])
    >>> p = run_params(cfg)
    >>> p["regime.sizes"], p["regime.p_16"], p["regime.mode"]
    ('[16, 32]', '0.5', 'B+')
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

# MLflow limits: 6000 characters per param value, 100 params per log_batch call.
MAX_PARAM_CHARS = 6000
PARAM_BATCH = 100


def param_value(value: Any) -> str:
    """One param as text: lists and mappings as JSON (``[16, 32]``), everything else with ``str``."""
    text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
    return text[:MAX_PARAM_CHARS]


SEARCH_TAG = "mixsize.search"  # on a search's parent run: the search's name (written by tune, read by report)


def run_params(cfg: Any) -> dict[str, str]:
    """``cfg.flat()`` (``section.key`` plus ``regime.p_<size>``) as MLflow param strings."""
    return {k: param_value(v) for k, v in cfg.flat().items()}


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the git checkout holding ``start`` (default: this package), or None."""
    start = Path(start) if start else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(start), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def run_tags(cfg: Any, run_dir: str | None = None) -> dict[str, str]:
    """Tags for filtering runs: mode, sampling, dataset, model, the git commit if known, the run folder,
    and ``mlflow.parentRunId`` when ``tracking.parent_run_id`` nests this run under a search's run."""
    tags = {
        "mode": cfg.regime.mode,
        "sampling": cfg.regime.sampling,
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "sizes": param_value(list(cfg.regime.sizes)),
        "train.name": cfg.train.name,
        "mlflow.source.name": "mixsize-ray train",
        "mlflow.source.type": "JOB",
    }
    if run_dir:
        tags["run_dir"] = run_dir
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if cfg.tracking.parent_run_id:
        tags["mlflow.parentRunId"] = cfg.tracking.parent_run_id
    return tags


def regime_table_columns(table_json: dict[str, Any]) -> dict[str, list[Any]]:
    """The solved (S, B, D) table as columns (one row per size) for ``MlflowClient.log_table``."""
    cols = ["size", "prob", "batch", "duplicates", "budget_ratio", "step_share", "image_share"]
    rows = table_json["entries"]
    out: dict[str, list[Any]] = {c: [r[c] for r in rows] for c in cols}
    out["notes"] = ["; ".join(r.get("notes") or []) for r in rows]
    return out
